"""Training over chunks with partial_fit keeps the semantics of the fit API."""

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_regression
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sktorch_mlp import TorchMLPRegressor

N_FEATURES = 4


def streaming_model(**params):
    """A tiny network, one member, no embedding: each call takes milliseconds."""
    defaults = dict(
        hidden_layer_sizes=(16,),
        embedding="none",
        ensemble_size=1,
        batch_size=32,
        lr=1e-2,
        random_state=0,
    )
    return TorchMLPRegressor(**{**defaults, **params})


@pytest.fixture(scope="module")
def table():
    """400 rows of a smooth nonlinear target, as a DataFrame with named columns."""
    X, y = make_regression(n_samples=400, n_features=N_FEATURES, noise=1.0, random_state=0)
    y = y + 20 * np.sin(X[:, 0])
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(N_FEATURES)]), pd.Series(y, name="y")


def chunks(X, y, n_chunks):
    rows = np.array_split(np.arange(len(X)), n_chunks)
    return [(X.iloc[part], y.iloc[part]) for part in rows]


@pytest.mark.parametrize("input_transform", ["quantile", "standard"])
def test_first_call_on_a_fresh_model_is_one_epoch_of_fit(table, input_transform):
    X, y = table
    weights = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    streamed = streaming_model(input_transform=input_transform)
    streamed.partial_fit(X, y, sample_weight=weights)
    fitted = streaming_model(
        input_transform=input_transform,
        early_stopping=False,
        max_epochs=1,
        lr_schedule="constant",
        ema_decay=0.0,  # partial_fit keeps the trained weights, not their moving average
    ).fit(X, y, sample_weight=weights)

    np.testing.assert_array_equal(streamed.predict(X), fitted.predict(X))
    assert streamed.loss_curve_ == fitted.loss_curve_
    assert streamed.train_scores_ == fitted.train_scores_
    assert streamed.validation_scores_ is fitted.validation_scores_ is None


def test_calls_over_chunks_set_the_fitted_attributes_like_fit(table):
    X, y = table
    model = streaming_model()
    for n_calls, (X_chunk, y_chunk) in enumerate(chunks(X, y, 4), start=1):
        model.partial_fit(X_chunk, y_chunk)
        assert model.n_iter_ == n_calls == len(model.loss_curve_) == len(model.train_scores_)
        assert model.best_epoch_ == n_calls
        assert model.validation_scores_ is None
        assert model.n_features_in_ == N_FEATURES
        np.testing.assert_array_equal(model.feature_names_in_, X.columns)
        assert model.n_outputs_ == 1
    assert model.predict(X).shape == (len(X),)

    # fit starts over, as it does after fit.
    model.set_params(max_epochs=2, early_stopping=False).fit(X, y)
    assert model.n_iter_ == 2


def test_multi_output_chunks_keep_their_output_count(table):
    X, y = table
    Y = np.column_stack([y, -y])
    model = streaming_model()
    for rows in np.array_split(np.arange(len(X)), 3):
        model.partial_fit(X.iloc[rows], Y[rows])
    assert model.n_outputs_ == 2
    assert model.predict(X).shape == (len(X), 2)


@pytest.mark.parametrize(
    "change",
    [
        lambda X: X.rename(columns={"x0": "renamed"}),
        lambda X: X[X.columns[::-1]],
    ],
    ids=["renamed", "reordered"],
)
def test_chunk_with_other_columns_raises_and_leaves_the_model_unchanged(table, change):
    X, y = table
    model = streaming_model().partial_fit(X.iloc[:200], y.iloc[:200])
    predictions, net, loss_curve = model.predict(X), model.net_, list(model.loss_curve_)

    with pytest.raises(ValueError, match="feature names should match"):
        model.partial_fit(change(X.iloc[200:]), y.iloc[200:])
    assert model.net_ is net
    assert model.n_iter_ == 1 and model.loss_curve_ == loss_curve
    np.testing.assert_array_equal(model.predict(X), predictions)
    model.partial_fit(X.iloc[200:], y.iloc[200:])  # the stream goes on
    assert model.n_iter_ == 2


def test_passes_over_chunks_lower_the_loss_and_approach_fit(table):
    X, y = table
    X_train, y_train, X_test, y_test = X.iloc[:300], y.iloc[:300], X.iloc[300:], y.iloc[300:]
    n_passes, n_chunks = 12, 3
    streamed = streaming_model(input_transform="standard")
    for _ in range(n_passes):
        for X_chunk, y_chunk in chunks(X_train, y_train, n_chunks):
            streamed.partial_fit(X_chunk, y_chunk)
    fitted = streaming_model(
        input_transform="standard", early_stopping=False, lr_schedule="constant", max_epochs=12
    ).fit(X_train, y_train)

    per_pass = np.reshape(streamed.loss_curve_, (n_passes, n_chunks)).mean(axis=1)
    assert per_pass[-1] < 0.2 * per_pass[0]
    assert np.all(np.diff(per_pass[:4]) < 0)
    assert streamed.score(X_test, y_test) > fitted.score(X_test, y_test) - 0.03


def test_set_params_between_calls_changes_the_learning_rate_and_keeps_adam_state(table):
    X, y = table
    model = streaming_model(batch_size=400).partial_fit(X, y)
    model.set_params(lr=1e-4).partial_fit(X, y)
    optimizer = model.net_.optimizer_
    assert optimizer.param_groups[0]["lr"] == 1e-4
    assert all(state["step"] == 2 for state in optimizer.state.values())


def test_zero_weights_in_a_chunk_remove_those_rows(table):
    X, y = table
    rng = np.random.default_rng(0)
    outliers = rng.random(len(X)) < 0.2
    y_noisy = y.where(~outliers, 1e4)
    # Full-batch steps: the order rows are shuffled in cannot change a chunk's gradient.
    clean, weighted = streaming_model(batch_size=400), streaming_model(batch_size=400)
    for _ in range(3):
        for rows in np.array_split(np.arange(len(X)), 4):
            keep = rows[~outliers[rows]]
            clean.partial_fit(X.iloc[keep], y.iloc[keep])
            weighted.partial_fit(
                X.iloc[rows], y_noisy.iloc[rows], sample_weight=(~outliers[rows]).astype(float)
            )
    np.testing.assert_allclose(weighted.predict(X), clean.predict(X), rtol=1e-4, atol=1e-3)


def test_chunked_csv_loop_with_preprocessing_fitted_on_a_sample(tmp_path):
    rng = np.random.default_rng(0)
    n_rows = 2_000
    table = pd.DataFrame(
        {
            "size": rng.gamma(2.0, 50.0, n_rows),
            "age": rng.uniform(0, 80, n_rows),
            "region": rng.choice(["north", "south", "east", "west"], n_rows),
        }
    )
    region_effect = table["region"].map({"north": 0, "south": 50, "east": -20, "west": 10})
    table["price"] = 2 * table["size"] - table["age"] + region_effect + rng.normal(0, 5, n_rows)
    path = tmp_path / "houses.csv"
    table.to_csv(path, index=False)

    # One row in five, read without loading the file; the header (row 0) is kept.
    sample = pd.read_csv(path, skiprows=lambda row: row > 0 and row % 5 != 1)
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), ["size", "age"]),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), ["region"]),
        ]
    ).fit(sample.drop(columns="price"))
    model = streaming_model(input_transform="standard")
    n_calls = 0
    for _ in range(8):
        for chunk in pd.read_csv(path, chunksize=300):
            model.partial_fit(preprocess.transform(chunk.drop(columns="price")), chunk["price"])
            n_calls += 1
    assert n_calls == 8 * 7 == model.n_iter_  # 6 chunks of 300 rows, one of 200
    assert model.n_features_in_ == 6
    X_all = preprocess.transform(table.drop(columns="price"))
    assert model.score(X_all, table["price"]) > 0.95


def test_dask_array_blocks_loop():
    da = pytest.importorskip("dask.array")
    import dask

    X = da.random.default_rng(0).standard_normal((600, N_FEATURES), chunks=(150, N_FEATURES))
    y = X[:, 0] - 2 * X[:, 1]
    model = streaming_model(input_transform="standard")
    for _ in range(2):
        for block in range(X.numblocks[0]):
            X_block, y_block = dask.compute(X.blocks[block], y.blocks[block])
            model.partial_fit(X_block, y_block)
    assert model.n_iter_ == 2 * 4
    assert model.score(X[:200].compute(), y[:200].compute()) > 0.9
