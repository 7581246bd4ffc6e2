"""Raw DataFrames: categorical columns embedded, missing numbers filled and flagged."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._network.embeddings import CategoryEmbedding, TableEmbedding


def tiny_model(**params):
    defaults = dict(
        hidden_layer_sizes=(16,), ensemble_size=2, max_epochs=4, batch_size=32, random_state=0
    )
    return TorchMLPRegressor(**{**defaults, **params})


@pytest.fixture(scope="module")
def houses():
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame(
        {
            "size": rng.normal(100, 30, n),
            "age": rng.normal(20, 5, n),
            "city": rng.choice(["Lyon", "Nice", "Paris"], n).astype(object),
            "kind": pd.Categorical(rng.choice(["flat", "house"], n)),
        }
    )
    frame.loc[::9, "age"] = np.nan
    frame.loc[::13, "city"] = None
    price = frame["size"] * 2 + frame["city"].map({"Paris": 100, "Lyon": 40}).fillna(0)
    return frame, price.to_numpy()


@pytest.fixture(scope="module")
def fitted(houses):
    X, y = houses
    return tiny_model().fit(X, y)


def test_categorical_columns_are_found_from_their_dtype(fitted):
    np.testing.assert_array_equal(fitted.is_categorical_, [False, False, True, True])
    assert [list(c) for c in fitted.categories_] == [["Lyon", "Nice", "Paris"], ["flat", "house"]]
    assert list(fitted.feature_names_in_) == ["size", "age", "city", "kind"]
    embedding = fitted.net_.module_.embedding
    assert isinstance(embedding, TableEmbedding)
    # Tables: the categories, an unknown and a missing entry.
    assert fitted._net_config["category_sizes"] == [5, 4]


def test_an_array_or_a_pipeline_output_has_no_categorical_columns(houses):
    X, y = houses
    numeric = X[["size"]].to_numpy()
    model = tiny_model().fit(numeric, y)
    assert model.categories_ == [] and not model.is_categorical_.any()
    assert not isinstance(model.net_.module_.embedding, TableEmbedding)


def test_categories_map_by_value_across_fit_pickle_and_predict(houses, fitted):
    X, _ = houses
    expected = fitted.predict(X)
    # The same values in another category order, as text, and after a pickle round trip.
    reordered = X.assign(kind=pd.Categorical(X["kind"], categories=["house", "flat", "boat"]))
    np.testing.assert_array_equal(fitted.predict(reordered), expected)
    np.testing.assert_array_equal(fitted.predict(X.assign(kind=X["kind"].astype(str))), expected)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), expected)
    assert [list(c) for c in restored.categories_] == [list(c) for c in fitted.categories_]
    # Rows predict alone as in a batch: the lookup depends on the row only.
    np.testing.assert_allclose(fitted.predict(X.iloc[[5]]), expected[[5]], rtol=1e-12)


def test_categories_change_the_prediction_and_train(houses):
    X, y = houses
    model = tiny_model(max_epochs=30).fit(X, y)
    paris, lyon = X.assign(city="Paris"), X.assign(city="Lyon")
    # The target is 60 higher in Paris than in Lyon; training found most of that.
    assert np.mean(model.predict(paris) - model.predict(lyon)) > 20


def test_unseen_and_missing_categories_predict_finitely(houses, fitted):
    X, _ = houses
    rows = X.iloc[:3]
    unseen_a = fitted.predict(rows.assign(city="Marseille"))
    unseen_b = fitted.predict(rows.assign(city="Brest"))
    missing = fitted.predict(rows.assign(city=None))
    assert np.isfinite(unseen_a).all() and np.isfinite(missing).all()
    np.testing.assert_array_equal(unseen_a, unseen_b)  # both the unknown entry
    assert not np.array_equal(missing, unseen_a)  # missing was seen in training: its own entry


def test_missing_values_seen_only_at_predict_map_to_the_unknown_entry(houses, fitted):
    X, _ = houses
    rows = X.iloc[:3]
    # "kind" had no missing values in training: missing is then unknown.
    np.testing.assert_array_equal(
        fitted.predict(rows.assign(kind=pd.Categorical([None] * 3, categories=["flat"]))),
        fitted.predict(rows.assign(kind="castle")),
    )


def test_unknown_entries_start_at_zero():
    embedding = CategoryEmbedding([3, 5], embedding_dim=4)
    weight = embedding.weight.detach()
    assert weight[0].eq(0).all() and weight[3].eq(0).all()
    assert weight[1:3].ne(0).all() and weight[4:].ne(0).all()
    out = embedding(torch.tensor([[0.0, 4.0]]))
    torch.testing.assert_close(out, torch.cat([weight[0], weight[3 + 4]])[None])


def test_missing_numbers_are_filled_and_flagged_only_where_training_had_them(houses, fitted):
    X, _ = houses
    # Two numeric columns and one indicator (age had NaN in training; size had none).
    assert fitted._net_config["n_features"] == 2 + 1 + 2
    median_age = np.nanmedian(X["age"])
    rows = X.iloc[1:4].copy()  # rows without NaN
    expected = fitted.predict(rows)
    # NaN in "size" (none in training): filled with its median; only that row changes.
    with_nan = rows.copy()
    with_nan.iloc[0, 0] = np.nan
    predicted = fitted.predict(with_nan)
    np.testing.assert_array_equal(predicted[1:], expected[1:])
    filled = rows.copy()
    filled.iloc[0, 0] = np.nanmedian(X["size"])
    np.testing.assert_allclose(predicted[0], fitted.predict(filled)[0], rtol=1e-12)
    # NaN in "age" (had NaN in training) is not the median: its indicator is set.
    at_median = rows.assign(age=median_age)
    assert not np.allclose(fitted.predict(rows.assign(age=np.nan)), fitted.predict(at_median))
    assert np.isfinite(fitted.predict(rows.assign(age=np.nan))).all()


def test_missing_numbers_in_an_array_are_handled_too():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 3))
    X[::7, 1] = np.nan
    y = np.nan_to_num(X).sum(axis=1)
    model = tiny_model().fit(X, y)
    assert model._net_config["n_features"] == 4
    assert np.isfinite(model.predict(X)).all()
    assert X[0, 1] != X[0, 1]  # the caller's array is left as it was


def test_strict_mode_refuses_missing_values_as_before(houses):
    X, y = houses
    with pytest.raises(ValueError, match="Input X contains NaN"):
        tiny_model(handle_missing="error").fit(X, y)
    model = tiny_model(handle_missing="error").fit(X.fillna({"age": 0}), y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict(X)
    assert not model.__sklearn_tags__().input_tags.allow_nan


def test_column_whose_type_changes_after_fit_is_refused(houses, fitted):
    X, _ = houses
    with pytest.raises(ValueError, match=r"column 'city' held text when the model was fitted"):
        fitted.predict(X.assign(city=1))
    with pytest.raises(ValueError, match=r"Column 'size' was numeric when the model was fitted"):
        fitted.predict(X.assign(size=X["size"].astype(str)))


@pytest.mark.parametrize(
    "categorical_features", [["city", "kind"], [2, 3], [False, False, True, True]]
)
def test_categorical_features_by_name_index_or_mask(houses, fitted, categorical_features):
    X, y = houses
    model = tiny_model(categorical_features=categorical_features).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), fitted.predict(X))


def test_numbers_can_be_categories_in_an_array():
    rng = np.random.default_rng(2)
    postcode = rng.choice([69001, 75001, 13001], 150)
    X = np.column_stack([rng.normal(size=150), postcode])
    y = (postcode == 75001) * 5.0 + X[:, 0]
    model = tiny_model(categorical_features=[1]).fit(X, y)
    np.testing.assert_array_equal(model.categories_[0], [13001, 69001, 75001])
    assert model.categories_[0].dtype.kind in "if"  # numbers, as OneHotEncoder keeps them
    assert np.isfinite(model.predict(np.array([[0.0, 99999]]))).all()  # unseen postcode


def test_partial_fit_and_warm_start_keep_the_first_categories(houses):
    X, y = houses
    model = tiny_model().partial_fit(X.iloc[:120], y[:120])
    categories = [list(c) for c in model.categories_]
    later = X.iloc[120:].assign(city=X["city"].iloc[120:].replace("Nice", "Brest"))
    model.partial_fit(later, y[120:])
    assert [list(c) for c in model.categories_] == categories
    assert np.isfinite(model.predict(later)).all()
    warm = tiny_model(warm_start=True).fit(X, y)
    warm.fit(later, y[120:])
    assert [list(c) for c in warm.categories_] == categories
    assert warm.n_iter_ == 8


def test_several_outputs_and_return_std_from_a_raw_frame(houses):
    X, y = houses
    model = tiny_model().fit(X, np.column_stack([y, -y]))
    y_pred, y_std = model.predict(X.iloc[:5], return_std=True)
    assert y_pred.shape == y_std.shape == (5, 2)
    assert np.isfinite(y_std).all() and (y_std > 0).all()


def test_skops_round_trip_of_a_model_with_categories(houses, fitted, tmp_path):
    sio = pytest.importorskip("skops.io")
    from sktorch_mlp._persistence import SKOPS_EXPECTED_TYPES

    X, _ = houses
    path = tmp_path / "model.skops"
    sio.dump(fitted, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert set(untrusted) <= SKOPS_EXPECTED_TYPES
    restored = sio.load(path, trusted=untrusted)
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
