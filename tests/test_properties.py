"""Property-based tests: whatever the data and the parameters, ``fit`` either gives a model
whose predictions are finite, or raises ValueError or TypeError with a message.

Hypothesis draws shapes, dtypes, NaN and inf positions, extreme values, sample weights and
parameter values (including learning rates far too large). Nothing else may come out: no
other exception, no NaN prediction, no RuntimeWarning about non-finite predictions.
"""

import functools
import warnings

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sktorch_mlp import TorchMLPRegressor

FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def rarely(draw):
    """True about one time in four (hypothesis shrinks towards False)."""
    return draw(st.sampled_from([False, False, False, True]))


@st.composite
def datasets(draw):
    # Mostly valid data, so that training itself is exercised; some of every kind of fault.
    n_samples = draw(st.sampled_from([20, 5, 2, 1, 0]) | st.integers(0, 25))
    n_features = draw(st.sampled_from([3, 1, 0]) | st.integers(0, 4))
    kind = draw(st.sampled_from(["float64", "float32", "int64", "bool", "complex", "str"]))
    shape = (n_samples, n_features)
    unit = st.floats(-10, 10)
    if kind == "float64":
        # Up to beyond float32's range, which the network trains in.
        X = draw(hnp.arrays(np.float64, shape, elements=unit))
        X *= draw(st.sampled_from([1.0, 1e-6, 1e6, 1e30, 1e40]))
    elif kind == "float32":
        X = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e6, 1e6, width=32)))
    elif kind == "int64":
        X = draw(hnp.arrays(np.int64, shape, elements=st.integers(-1000, 1000)))
    elif kind == "bool":
        X = draw(hnp.arrays(np.bool_, shape))
    elif kind == "complex":
        X = draw(hnp.arrays(np.complex128, shape, elements=st.complex_numbers(max_magnitude=10)))
    else:
        X = draw(hnp.arrays(np.dtype("U3"), shape, elements=st.sampled_from(["a", "1.5", "x"])))
    if kind.startswith("float") and X.size and rarely(draw):
        for value in draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), max_size=2)):
            X[draw(st.integers(0, n_samples - 1)), draw(st.integers(0, n_features - 1))] = value
    n_outputs = draw(st.sampled_from([None, 1, 2]))  # None: a 1-D target
    y_shape = (n_samples,) if n_outputs is None else (n_samples, n_outputs)
    y = draw(hnp.arrays(np.float64, y_shape, elements=unit))
    y *= draw(st.sampled_from([1.0, 1e-6, 1e6, 1e30, 1e300]))
    if y.size and rarely(draw):
        y.flat[draw(st.integers(0, y.size - 1))] = np.nan
    sample_weight = None
    if rarely(draw):
        weights = st.sampled_from([1.0, 0.0, 1e-300, 0.5, 3.0, 1e300])
        sample_weight = draw(hnp.arrays(np.float64, n_samples, elements=weights))
    return X, y, sample_weight


parameters = st.fixed_dictionaries(
    {
        "hidden_layer_sizes": st.lists(st.integers(1, 16), max_size=2).map(tuple),
        "dropout": st.floats(0, 0.9),
        "embedding": st.sampled_from(["none", "periodic", "piecewise"]),
        "ensemble_size": st.integers(1, 2),
        "lr": st.floats(1e-5, 1e9),
        "lr_schedule": st.sampled_from(["plateau", "cosine", "constant"]),
        "weight_decay": st.floats(0, 10),
        "batch_size": st.integers(1, 64),
        "max_epochs": st.integers(1, 3),
        "early_stopping": st.booleans(),
        "validation_fraction": st.floats(0.05, 0.9),
        "input_transform": st.sampled_from(["quantile", "standard", "none"]),
        "random_state": st.integers(0, 10),
    }
)


@FAST
@given(data=datasets(), params=parameters)
def test_fit_gives_finite_predictions_or_a_documented_error(data, params):
    X, y, sample_weight = data
    model = TorchMLPRegressor(**params)
    try:
        with warnings.catch_warnings():
            # Divergence and interrupts are reported with warnings: allowed here.
            warnings.simplefilter("ignore")
            model.fit(X, y, sample_weight=sample_weight)
    except (ValueError, TypeError) as exc:
        assert str(exc).strip(), "an error without a message"
        event(f"{type(exc).__name__}: {str(exc).splitlines()[0][:25]}")
        return
    event("fitted")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        y_pred = model.predict(X)
    assert y_pred.shape == y.shape
    assert np.isfinite(y_pred).all()


@FAST
@given(
    X_new=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
        elements=st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, 1e300])),
    )
)
def test_predict_gives_finite_predictions_or_a_documented_error(X_new):
    model, (X_train, expected) = _fitted_model()
    try:
        y_pred = model.predict(X_new)
    except (ValueError, TypeError) as exc:
        assert str(exc).strip()
    else:
        assert y_pred.shape == (len(X_new),)
        assert np.isfinite(y_pred).all()  # the quantile transform bounds any finite input
    np.testing.assert_array_equal(model.predict(X_train), expected)


@functools.cache
def _fitted_model():
    """A model fitted on 6 features once (hypothesis calls a test many times)."""
    X = np.random.default_rng(0).normal(size=(30, 6))
    model = TorchMLPRegressor(
        hidden_layer_sizes=(8,), ensemble_size=1, max_epochs=2, random_state=0
    ).fit(X, X.sum(axis=1))
    return model, (X, model.predict(X))
