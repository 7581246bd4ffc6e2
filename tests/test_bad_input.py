"""Wrong data and wrong parameters: a clear error, and a fitted model left as it was.

Every case fails on an already fitted model; the test then checks that the model still
predicts exactly what it predicted before. docs/reliability.md tabulates these cases.
"""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError

from sktorch_mlp import TorchMLPRegressor

rng = np.random.default_rng(0)
X = rng.normal(size=(30, 3))
y = X @ np.array([1.0, 2.0, -1.0])


def tiny_model(**params):
    defaults = dict(
        hidden_layer_sizes=(8,),
        max_epochs=2,
        batch_size=8,
        ensemble_size=1,
        embedding="none",
        random_state=0,
    )
    return TorchMLPRegressor(**{**defaults, **params})


@pytest.fixture(scope="module")
def fitted():
    model = tiny_model().fit(X, y)
    return model, model.predict(X)


def with_value(array, value, index=(0, 0)):
    array = np.array(array, dtype=np.result_type(array, value))
    array[index[: array.ndim]] = value
    return array


def frame_with(column):
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["a"] = column
    return frame


# (call on a fitted model, exception type, pattern the message must match)
FIT_CASES = {
    "X with NaN, missing values refused": (
        lambda m: m.set_params(handle_missing="error").fit(with_value(X, np.nan), y),
        ValueError,
        "Input X contains NaN",
    ),
    "X with inf": (
        lambda m: m.fit(with_value(X, np.inf), y),
        ValueError,
        "Input X contains infinity",
    ),
    "y with NaN": (lambda m: m.fit(X, with_value(y, np.nan)), ValueError, "Input y contains NaN"),
    "y with inf": (
        lambda m: m.fit(X, with_value(y, -np.inf)),
        ValueError,
        "Input y contains infinity",
    ),
    "X too large for float32": (
        lambda m: m.fit(with_value(X, 1e39), y),
        ValueError,
        r"Input X contains a value too large for dtype\('float32'\).*Divide X",
    ),
    "y too large for float32": (
        lambda m: m.fit(X, y * 1e300),
        ValueError,
        r"Input y contains a value too large for dtype\('float32'\).*multiply the predictions",
    ),
    "X too small for float32": (
        lambda m: m.fit(np.column_stack([X, X[:, 0] * 1e-45]), y),
        ValueError,
        r"too small for dtype\('float32'\).*column\(s\) \[3\] of X.*Multiply them",
    ),
    "y too small for float32": (
        lambda m: m.fit(X, y * 1e-300),
        ValueError,
        r"too small for dtype\('float32'\).*divide the predictions",
    ),
    "sparse X with NaN, missing values refused": (
        lambda m: m.set_params(handle_missing="error").fit(sp.csr_matrix(with_value(X, np.nan)), y),
        ValueError,
        "Input X contains NaN",
    ),
    "X and y of different lengths": (
        lambda m: m.fit(X, y[:-1]),
        ValueError,
        r"inconsistent numbers of samples: \[30, 29\]",
    ),
    "no rows": (
        lambda m: m.fit(np.empty((0, 3)), np.empty(0)),
        ValueError,
        r"0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1 is required",
    ),
    "no columns": (
        lambda m: m.fit(np.empty((30, 0)), y),
        ValueError,
        r"0 feature\(s\) \(shape=\(30, 0\)\) while a minimum of 1 is required",
    ),
    "one row with early stopping": (
        lambda m: m.fit(X[:1], y[:1]),
        ValueError,
        "n_samples=1.*early_stopping=False",
    ),
    "1-D X": (
        lambda m: m.fit(X[:, 0], y),
        ValueError,
        "(?s)Expected 2D array, got 1D array.*reshape",
    ),
    "3-D X": (lambda m: m.fit(X[:, :, None], y), ValueError, "Found array with dim 3"),
    "3-D y": (lambda m: m.fit(X, y[:, None, None]), ValueError, "dim 3"),
    "X None": (lambda m: m.fit(None, y), ValueError, "Expected 2D array"),
    "y None": (lambda m: m.fit(X, None), ValueError, "requires y to be passed"),
    "strings in X": (
        lambda m: m.fit(np.full((30, 3), "a"), y),
        ValueError,
        "could not convert string to float",
    ),
    "strings in y": (
        lambda m: m.fit(X, np.full(30, "a")),
        ValueError,
        "could not convert string to float",
    ),
    "text column, no categorical features": (
        lambda m: m.set_params(categorical_features=None).fit(frame_with(["x", "y"] * 15), y),
        ValueError,
        r"column\(s\) \['a'\] hold categories or text.*categorical_features.*OneHotEncoder",
    ),
    "categorical column, no categorical features": (
        lambda m: m.set_params(categorical_features=[]).fit(
            frame_with(pd.Categorical(["x", "y"] * 15)), y
        ),
        ValueError,
        r"\['a'\] hold categories or text",
    ),
    "text column of an array": (
        lambda m: m.fit(np.array(frame_with(["x", "y"] * 15), dtype=object), y),
        ValueError,
        r"could not convert string to float",
    ),
    "categorical column with only missing values": (
        lambda m: m.fit(frame_with(pd.Series([None] * 30, dtype=object).astype("category")), y),
        ValueError,
        r"categorical column 'a' holds only missing values.*Drop the column, or fill it",
    ),
    "categorical column of mixed types": (
        lambda m: m.fit(frame_with(["x", 1] * 15), y),
        TypeError,
        r"column 'a' mixes values of types \['int', 'str'\].*astype\(str\)",
    ),
    "categorical features naming a missing column": (
        lambda m: m.set_params(categorical_features=["z"]).fit(frame_with(X[:, 0]), y),
        ValueError,
        r"names columns \['z'\] that X does not have; X's columns are \['a', 'b', 'c'\]",
    ),
    "categorical features out of range": (
        lambda m: m.set_params(categorical_features=[3]).fit(X, y),
        ValueError,
        r"column indices \[3\] outside X's 3 columns",
    ),
    "categorical features mask of another length": (
        lambda m: m.set_params(categorical_features=[True, False]).fit(X, y),
        ValueError,
        r"one entry per column of X: X has 3 columns, the mask 2",
    ),
    "categorical features of a sparse X": (
        lambda m: m.set_params(categorical_features=[0]).fit(sp.csr_matrix(X), y),
        ValueError,
        r"need a dense X",
    ),
    "date column": (
        lambda m: m.fit(frame_with(pd.date_range("2020-01-01", periods=30)), y),
        ValueError,
        r"\['a'\] hold dates, times or intervals.*days since",
    ),
    "datetime64 array": (
        lambda m: m.fit(np.full((30, 3), np.datetime64("2020-01-01")), y),
        ValueError,
        "X holds dates, times or intervals",
    ),
    "complex X": (
        lambda m: m.fit(X + 1j, y),
        ValueError,
        r"X holds complex numbers.*np.column_stack\(\[X.real, X.imag\]\)",
    ),
    "complex y": (lambda m: m.fit(X, y + 1j), ValueError, "y holds complex numbers"),
    "complex column": (
        lambda m: m.fit(frame_with(X[:, 0] + 1j), y),
        ValueError,
        r"column\(s\) \['a'\] hold complex numbers",
    ),
    "text target": (
        lambda m: m.fit(X, pd.Series(["low", "high"] * 15)),
        ValueError,
        "y holds categories or text. A regressor predicts numbers.*classifier",
    ),
    "a dict as X": (lambda m: m.fit({"a": 1}, y), TypeError, "float"),
    "sample_weight too short": (
        lambda m: m.fit(X, y, sample_weight=np.ones(5)),
        ValueError,
        r"sample_weight.shape == \(5,\), expected \(30,\)",
    ),
    "negative sample_weight": (
        lambda m: m.fit(X, y, sample_weight=-np.ones(30)),
        ValueError,
        "Negative values in data passed to `sample_weight`",
    ),
    "all-zero sample_weight": (
        lambda m: m.fit(X, y, sample_weight=np.zeros(30)),
        ValueError,
        "at least one non-zero",
    ),
    "NaN in sample_weight": (
        lambda m: m.fit(X, y, sample_weight=with_value(np.ones(30), np.nan)),
        ValueError,
        "Input sample_weight contains NaN",
    ),
    "2-D sample_weight": (
        lambda m: m.fit(X, y, sample_weight=np.ones((30, 2))),
        ValueError,
        "Sample weights must be 1D array or scalar",
    ),
    "partial_fit with another feature count": (
        lambda m: m.partial_fit(X[:, :2], y),
        ValueError,
        "X has 2 features, but TorchMLPRegressor is expecting 3 features",
    ),
    "partial_fit with another output count": (
        lambda m: m.partial_fit(X, np.column_stack([y, y])),
        ValueError,
        r"y has 2 output\(s\), but TorchMLPRegressor was fitted with 1",
    ),
    "cuda without a GPU": pytest.param(
        lambda m: m.set_params(device="cuda").fit(X, y),
        ValueError,
        r"CUDA is not available.*device='auto' or device='cpu'",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="needs no CUDA"),
    ),
    "warm start with another architecture": (
        lambda m: m.set_params(warm_start=True, hidden_layer_sizes=(4,)).fit(X, y),
        ValueError,
        "network's shape changed.*warm_start=False",
    ),
}

PREDICT_CASES = {
    "X with inf": (
        lambda m: m.predict(with_value(X, np.inf)),
        ValueError,
        "Input X contains infinity",
    ),
    "another feature count": (
        lambda m: m.predict(X[:, :2]),
        ValueError,
        "X has 2 features, but TorchMLPRegressor is expecting 3 features as input",
    ),
    "no rows": (lambda m: m.predict(np.empty((0, 3))), ValueError, r"0 sample\(s\)"),
    "1-D X": (lambda m: m.predict(X[0]), ValueError, "Expected 2D array, got 1D array"),
    "3-D X": (lambda m: m.predict(X[:, :, None]), ValueError, "Found array with dim 3"),
    "complex X": (lambda m: m.predict(X + 1j), ValueError, "X holds complex numbers"),
    "strings in X": (
        lambda m: m.predict(np.full((3, 3), "a")),
        ValueError,
        "could not convert string to float",
    ),
    "text column": (
        lambda m: m.predict(frame_with(["x", "y"] * 15)),
        ValueError,
        r"\['a'\] hold categories or text",
    ),
    "score with NaN in y": (
        lambda m: m.score(X, with_value(y, np.nan)),
        ValueError,
        "Input contains NaN",
    ),
}


def _params(cases):
    return [
        pytest.param(*case.values, marks=case.marks, id=name)
        if isinstance(case, type(pytest.param()))
        else pytest.param(*case, id=name)
        for name, case in cases.items()
    ]


@pytest.mark.parametrize("call, error, match", _params(FIT_CASES))
def test_bad_fit_input_raises_and_keeps_the_fitted_model(fitted, call, error, match):
    model, expected = copy.deepcopy(fitted[0]), fitted[1]
    state = {key: value for key, value in vars(model).items() if key.endswith("_")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's own overflow notes
        with pytest.raises(error, match=match):
            call(model)
    assert all(vars(model)[key] is value for key, value in state.items())
    np.testing.assert_array_equal(model.predict(X), expected)


@pytest.mark.parametrize("call, error, match", _params(PREDICT_CASES))
def test_bad_predict_input_raises_and_keeps_the_fitted_model(fitted, call, error, match):
    model, expected = copy.deepcopy(fitted[0]), fitted[1]
    with pytest.raises(error, match=match):
        call(model)
    np.testing.assert_array_equal(model.predict(X), expected)


def test_predict_beyond_float32_range_is_bounded_and_silent(fitted):
    # With the quantile input transform (the default) any finite input maps into the training
    # range: a value float32 cannot hold predicts like the largest one it can, without a warning.
    model, _ = fitted
    largest_float32 = float(np.finfo(np.float32).max)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        beyond = model.predict(with_value(X[:2], 1e300))
        at_limit = model.predict(with_value(X[:2], largest_float32))
    np.testing.assert_array_equal(beyond, at_limit)
    assert np.isfinite(beyond).all()


def test_predict_before_fit_raises_not_fitted_error():
    with pytest.raises(NotFittedError, match="not fitted yet.*Call 'fit'"):
        tiny_model().predict(X)


def test_feature_names_follow_scikit_learn_conventions():
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    named = tiny_model().fit(frame, y)
    expected = named.predict(frame)
    with pytest.raises(ValueError, match="The feature names should match those"):
        named.predict(frame[["c", "b", "a"]])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_allclose(named.predict(X), expected)
    unnamed = tiny_model().fit(X, y)
    with pytest.warns(UserWarning, match="X has feature names, but TorchMLPRegressor was fitted"):
        unnamed.predict(frame)


def test_object_columns_holding_numbers_are_accepted():
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).astype(object)
    y_pred = tiny_model().fit(frame, y).predict(frame)
    np.testing.assert_array_equal(y_pred, tiny_model().fit(X, y).predict(X))


PARAMETER_CASES = [
    ({"hidden_layer_sizes": (8, -1)}, r"each >= 1; got \(8, -1\)"),
    ({"dropout": 1.0}, r"'dropout' parameter .* range \[0.0, 1.0\). Got 1.0"),
    ({"lr": 0.0}, r"'lr' parameter .* range \(0.0, inf\). Got 0.0"),
    ({"device": "gpu"}, r"'device' parameter .* 'cuda:N'.*Got 'gpu'"),
    ({"hidden_layer_sizes": (8.5,)}, "hidden_layer_sizes must be an int or a sequence"),
    ({"hidden_layer_sizes": (True,)}, "hidden_layer_sizes must be an int or a sequence"),
    ({"hidden_layer_sizes": None}, "'hidden_layer_sizes' parameter"),
    ({"dropout": np.nan}, r"'dropout' parameter .* range \[0.0, 1.0\). Got nan"),
    ({"lr": -1.0}, r"'lr' parameter .* range \(0.0, inf\). Got -1.0"),
    ({"lr": np.inf}, r"'lr' parameter .* Got inf"),
    ({"ensemble_size": 0}, "'ensemble_size' parameter"),
    ({"batch_size": 2.5}, "'batch_size' parameter"),
    ({"embedding": "fourier"}, r"'embedding' parameter .* among \{.*\}. Got 'fourier'"),
    ({"lr_schedule": "step"}, "'lr_schedule' parameter"),
    ({"input_transform": "log"}, "'input_transform' parameter"),
    ({"device": "mps"}, r"'device' parameter .* 'cuda:N'"),
    ({"device": "cuda:-1"}, "'device' parameter"),
    ({"random_state": "seed"}, "'random_state' parameter"),
    ({"verbose": -1}, "'verbose' parameter"),
    ({"validation_fraction": 0.0}, "'validation_fraction' parameter"),
    ({"warm_start": "no"}, "'warm_start' parameter"),
]


@pytest.mark.parametrize(
    "params, match",
    PARAMETER_CASES,
    ids=[", ".join(f"{key}={value!r}" for key, value in p.items()) for p, _ in PARAMETER_CASES],
)
def test_invalid_parameter_values_raise_and_keep_the_fitted_model(fitted, params, match):
    model, expected = copy.deepcopy(fitted[0]), fitted[1]
    with pytest.raises(ValueError, match=match):
        model.set_params(**params).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), expected)


@pytest.mark.parametrize("scale", [1e-7, 1e-30, 1e30])
def test_targets_in_tiny_or_huge_units_train_like_unit_targets(scale):
    # Standardized inside, the target's units do not change what the network learns.
    reference = tiny_model(max_epochs=5, lr=1e-2).fit(X, y).predict(X)
    y_pred = tiny_model(max_epochs=5, lr=1e-2).fit(X, y * scale).predict(X)
    np.testing.assert_allclose(y_pred / scale, reference, rtol=1e-4, atol=1e-6)
