"""Behaviour of TorchMLPRegressor that users rely on, beyond scikit-learn's common checks."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import OneHotEncoder

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._network.embeddings import PiecewiseLinearEmbedding


def small_model(**params):
    """A model that fits the tiny test data in well under a second."""
    defaults = dict(hidden_layer_sizes=(16,), max_epochs=5, batch_size=32, random_state=0)
    return TorchMLPRegressor(**{**defaults, **params})


def test_unfitted_estimator_holds_only_its_parameters():
    model = TorchMLPRegressor(hidden_layer_sizes=(8, 4), dropout=0.2)
    assert vars(model) == model.get_params()
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict(np.zeros((2, 3)))


@pytest.mark.parametrize(
    "to_input",
    [
        pytest.param(lambda X: X, id="float64"),
        pytest.param(lambda X: X.astype(np.float32), id="float32"),
        pytest.param(lambda X: np.round(X).astype(np.int64), id="int"),
        pytest.param(lambda X: X > 0, id="bool"),
        pytest.param(lambda X: X.tolist(), id="list"),
        pytest.param(np.asfortranarray, id="fortran"),
        pytest.param(lambda X: sp.csr_matrix(np.where(X > 0.5, X, 0)), id="sparse"),
        pytest.param(lambda X: pd.DataFrame(X, columns=list("abcde")), id="dataframe"),
    ],
)
def test_accepts_what_scikit_learn_accepts(regression_data, to_input):
    X, y = regression_data
    X_in = to_input(X)
    y_pred = small_model().fit(X_in, y).predict(X_in)
    assert y_pred.shape == y.shape
    assert y_pred.dtype == np.float64
    assert np.isfinite(y_pred).all()


def test_read_only_inputs(regression_data):
    X, y = (np.array(a) for a in regression_data)
    X.flags.writeable = False
    y.flags.writeable = False
    assert np.isfinite(small_model().fit(X, y).predict(X)).all()


def test_dataframe_feature_names_and_series_target(regression_data):
    X, y = regression_data
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    model = small_model().fit(frame, pd.Series(y, name="target"))
    assert list(model.feature_names_in_) == list(frame.columns)
    assert model.n_features_in_ == 5
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame[frame.columns[::-1]])


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_two_dimensional_target_gives_two_dimensional_predictions(regression_data, n_outputs):
    X, y = regression_data
    Y = np.column_stack([y * (k + 1) for k in range(n_outputs)])
    model = small_model().fit(X, Y)
    assert model.n_outputs_ == n_outputs
    assert model.predict(X).shape == (len(X), n_outputs)


def test_one_dimensional_target_gives_one_dimensional_predictions(regression_data):
    X, y = regression_data
    model = small_model().fit(X, y)
    assert model.n_outputs_ == 1
    assert model.predict(X).shape == (len(X),)


def test_fitted_attributes(regression_data):
    X, y = regression_data
    model = small_model(max_epochs=4, early_stopping=False).fit(X, y)
    assert model.n_iter_ == 4 == len(model.loss_curve_) == len(model.history_)
    assert model.best_epoch_ == 4
    assert model.validation_scores_ is None
    assert model.device_ == "cpu"
    assert isinstance(model.net_.module_, torch.nn.Module)
    assert all(np.isfinite(model.loss_curve_))


def test_network_architecture_and_initialization(regression_data):
    X, y = regression_data
    model = small_model(
        hidden_layer_sizes=(32, 16), dropout=0.3, embedding="none", ensemble_size=1, max_epochs=1
    ).fit(X, y)
    layers = list(model.net_.module_.modules())
    linear = [m for m in layers if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(5, 32), (32, 16), (16, 1)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in layers) == 2
    assert [m.p for m in layers if isinstance(m, torch.nn.Dropout)] == [0.3, 0.3]
    fresh = model.net_.module_.__class__(5, 1, (32, 16), 0.3)
    assert all(torch.count_nonzero(m.bias) == 0 for m in fresh.modules() if hasattr(m, "bias"))
    first = fresh.hidden[0].weight
    # Kaiming normal for ReLU: standard deviation sqrt(2 / fan_in).
    assert abs(first.std().item() - np.sqrt(2 / 5)) < 0.15


def test_default_network_is_an_ensemble_with_piecewise_linear_embeddings(regression_data):
    X, y = regression_data
    module = small_model(hidden_layer_sizes=(32, 16), max_epochs=1).fit(X, y).net_.module_
    assert isinstance(module.embedding, PiecewiseLinearEmbedding)
    assert module.hidden[0].weight.shape == (4, module.embedding.out_features, 32)
    assert module.output.weight.shape == (4, 16, 1)


def test_columns_of_two_values_skip_the_embedding(regression_data):
    X, y = regression_data
    X = np.column_stack([X, (X[:, 0] > 0).astype(float), np.full(len(X), 3.0)])
    model = small_model(hidden_layer_sizes=(8,), max_epochs=1).fit(X, y)
    embedding = model.net_.module_.embedding
    assert embedding.passthrough.tolist() == [X.shape[1] - 2, X.shape[1] - 1]
    # The flag and the constant are groups of their own, each one vector.
    assert embedding.groups == [[X.shape[1] - 2], [X.shape[1] - 1]]
    width, group_width = embedding.feature_widths[0], embedding.feature_widths[-1]
    assert embedding.out_features == (X.shape[1] - 2) * width + 2 * group_width
    # Continued training keeps the network's shape, whatever the new rows hold.
    model.set_params(warm_start=True).fit(X[:20] * 0 + 1, y[:20])
    assert model.net_.module_.embedding.groups == [[X.shape[1] - 2], [X.shape[1] - 1]]


def test_one_hot_columns_of_a_category_enter_as_one_vector_per_category(regression_data):
    X, y = regression_data
    category = np.arange(len(X)) % 3
    one_hot = OneHotEncoder(sparse_output=False).fit_transform(category[:, None])
    flag = (X[:, 1] > 0).astype(float)
    X = np.column_stack([X, one_hot, flag])
    model = small_model(hidden_layer_sizes=(8,), max_epochs=1).fit(X, y)
    embedding = model.net_.module_.embedding
    n = regression_data[0].shape[1]
    assert embedding.groups == [[n, n + 1, n + 2], [n + 3]]
    # Rows of one category get that category's vector, whatever the other columns hold.
    with torch.no_grad():
        inputs = torch.as_tensor(model._input_transformer.transform(X), dtype=torch.float32)
        groups = embedding(inputs)[:, -2 * embedding.feature_widths[-1] :]
    vectors = groups[:, : embedding.feature_widths[-1]]
    for value in range(3):
        rows = vectors[torch.as_tensor(category == value)]
        torch.testing.assert_close(rows, rows[:1].expand_as(rows))
    assert not torch.allclose(vectors[0], vectors[1])


def test_dropout_is_off_at_prediction(regression_data):
    X, y = regression_data
    model = small_model(dropout=0.5).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), model.predict(X))


def test_training_reduces_the_loss(regression_data):
    X, y = regression_data
    model = small_model(max_epochs=30, early_stopping=False, lr=1e-2).fit(X, y)
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]
    assert model.score(X, y) > 0.8


def test_same_random_state_gives_identical_predictions(regression_data):
    X, y = regression_data
    first = small_model(random_state=3).fit(X, y).predict(X)
    second = small_model(random_state=3).fit(X, y).predict(X)
    other = small_model(random_state=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_fit_leaves_torch_global_random_state_alone(regression_data):
    X, y = regression_data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    small_model().fit(X, y)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_target_scaling_is_inverted_exactly(regression_data):
    X, y = regression_data
    in_units = small_model().fit(X, y / 100).predict(X)
    in_dollars = small_model().fit(X, y * 1e3 + 5e5).predict(X)
    np.testing.assert_allclose(in_dollars, in_units * 1e5 + 5e5, rtol=1e-5)


def test_constant_target_is_predicted_exactly(regression_data):
    X, _ = regression_data
    y_pred = small_model().fit(X, np.full(len(X), 7.5)).predict(X)
    np.testing.assert_allclose(y_pred, 7.5)


def test_early_stopping_stops_and_keeps_the_best_epoch(regression_data):
    X, y = regression_data
    model = small_model(max_epochs=500, n_iter_no_change=3, tol=1.0).fit(X, y)
    assert model.n_iter_ == model.best_epoch_ + 3 < 500
    assert len(model.validation_scores_) == model.n_iter_
    assert all(score > 0 for score in model.validation_scores_)


def test_early_stopping_restores_the_best_weights(regression_data):
    X, y = regression_data
    # One network, one validation set (an ensemble's members each hold out their own rows:
    # test_validation_split.py::test_ensemble_members_train_on_every_row_and_validate_on_their_own).
    model = small_model(max_epochs=60, n_iter_no_change=5, lr=3e-2, ensemble_size=1).fit(X, y)
    valid = model.net_.train_split.keywords["valid_ds"]
    kept_rmse = np.sqrt(np.mean((model.net_.predict(valid.X) - valid.y) ** 2))
    valid_losses = model.history_[:, "valid_loss"]
    np.testing.assert_allclose(kept_rmse**2, valid_losses[model.best_epoch_ - 1], rtol=1e-4)


@pytest.mark.parametrize("dump, load", [(pickle.dumps, pickle.loads), (None, None)])
def test_pickle_and_joblib_round_trip(regression_data, tmp_path, dump, load):
    X, y = regression_data
    model = small_model().fit(X, y)
    if dump is None:
        joblib.dump(model, tmp_path / "model.joblib")
        restored = joblib.load(tmp_path / "model.joblib")
    else:
        restored = load(dump(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert restored.get_params() == model.get_params()


def test_model_trained_on_gpu_loads_on_a_machine_without_one(regression_data, monkeypatch):
    X, y = regression_data
    model = small_model().fit(X, y)
    expected = model.predict(X)
    # What a GPU-trained model records; its weights are saved as numpy arrays.
    model.device_ = "cuda:0"
    payload = pickle.dumps(model)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    restored = pickle.loads(payload)
    assert restored.device_ == "cpu"
    np.testing.assert_array_equal(restored.predict(X), expected)


def test_clone_of_fitted_model_is_unfitted(regression_data):
    X, y = regression_data
    model = small_model().fit(X, y)
    twin = clone(model)
    assert not hasattr(twin, "net_")
    assert twin.get_params() == model.get_params()


def test_set_params_then_refit(regression_data):
    X, y = regression_data
    model = small_model().fit(X, y)
    model.set_params(hidden_layer_sizes=(4, 4))
    model.fit(X, y)
    assert model.net_.module_.output.in_features == 4


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": (8, -1)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": "wide"}, "hidden_layer_sizes"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"lr": 0.0}, "lr"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"embedding_weight_decay": -1.0}, "embedding_weight_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"n_iter_no_change": 0}, "n_iter_no_change"),
        ({"tol": -1e-3}, "tol"),
        ({"device": "gpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"early_stopping": "yes"}, "early_stopping"),
        ({"mixed_precision": "float8"}, "mixed_precision"),
        ({"compile": "fast"}, "compile"),
    ],
)
def test_invalid_parameters_are_named_in_the_error(regression_data, params, match):
    X, y = regression_data
    with pytest.raises(ValueError, match=match):
        small_model(**params).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_requested_without_gpu_says_what_to_do(regression_data, device):
    X, y = regression_data
    with pytest.raises(ValueError, match="CUDA is not available.*device='auto' or device='cpu'"):
        small_model(device=device).fit(X, y)


def test_failed_fit_leaves_the_fitted_model_unchanged(regression_data):
    X, y = regression_data
    model = small_model().fit(X, y)
    expected = model.predict(X)
    net = model.net_
    bad_X = X[:, :3].copy()
    bad_X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.set_params(handle_missing="error").fit(bad_X, y)
    # Fails after the new data was validated, when the validation split is drawn.
    with pytest.raises(ValueError, match="n_samples=1"):
        model.fit(pd.DataFrame(X[:1, :3], columns=list("abc")), y[:1])
    assert model.net_ is net
    assert model.n_features_in_ == 5
    assert not hasattr(model, "feature_names_in_")
    np.testing.assert_array_equal(model.predict(X), expected)


def test_predict_rejects_wrong_feature_count(regression_data):
    X, y = regression_data
    model = small_model().fit(X, y)
    with pytest.raises(ValueError, match="5 features"):
        model.predict(X[:, :4])


def test_too_few_samples_for_a_validation_split():
    with pytest.raises(ValueError, match="n_samples=1"):
        TorchMLPRegressor().fit([[1.0, 2.0]], [3.0])
    model = TorchMLPRegressor(early_stopping=False, max_epochs=2).fit([[1.0, 2.0]], [3.0])
    assert model.predict([[1.0, 2.0]]).shape == (1,)


def test_fit_and_predict_leave_the_inputs_unchanged(regression_data):
    X, y = (np.array(a) for a in regression_data)
    weights = np.linspace(0.5, 2.0, len(y))
    copies = X.copy(), y.copy(), weights.copy()
    model = small_model().fit(X, y, sample_weight=weights)
    model.predict(X)
    for original, copy in zip((X, y, weights), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_text_and_categorical_columns_are_named_in_the_error(california_sample):
    X, y = california_sample
    with pytest.raises(ValueError, match=r"\['ocean_proximity'\].*categorical_features"):
        small_model(categorical_features=None).fit(X, y)
    model = small_model().fit(X.drop(columns="ocean_proximity").fillna(0), y)
    with pytest.raises(ValueError, match="ocean_proximity"):
        model.predict(X.drop(columns="longitude"))


def test_repeated_input_values_predict_as_in_training_whatever_their_rounding():
    # A standardized integer column: each value repeats, and float32 cannot hold it exactly.
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 5, 300), rng.normal(size=300)])
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = X[:, 0] + np.sin(X[:, 1])
    model = TorchMLPRegressor(
        hidden_layer_sizes=(16,), ensemble_size=1, max_epochs=3, random_state=0
    ).fit(X, y)
    # Training saw float32 inputs; float64 ones must land on the same quantiles, not beside.
    np.testing.assert_array_equal(
        model.predict(X), model.predict(X.astype(np.float32).astype(np.float64))
    )
