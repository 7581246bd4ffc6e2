"""MAPIE's conformal intervals around a Pipeline that ends with TorchMLPRegressor."""

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._preprocessing import make_tabular_preprocessor

pytest.importorskip("mapie")
from mapie.metrics.regression import (  # noqa: E402
    regression_coverage_score,
    regression_mean_width_score,
)
from mapie.regression import CrossConformalRegressor  # noqa: E402

CONFIDENCE_LEVELS = (0.5, 0.8, 0.9)
N_TRAIN, N_TEST = 2000, 4000


def coverage_tolerance(level, n_train=N_TRAIN, n_test=N_TEST):
    """Three standard errors of the measured coverage around its nominal level.

    Two samples make the measured coverage vary: the training rows, whose
    out-of-fold residuals calibrate the intervals (given them, the coverage of a
    conformal interval varies with variance about level * (1 - level) / n_train),
    and the test rows, a binomial sample of it (variance level * (1 - level) /
    n_test). Over 12 data and model seeds, the coverage measured by this test had
    standard deviations 0.012, 0.008 and 0.009 at the three levels (these
    formulas give 0.014, 0.011 and 0.008) and means 0.5 to 0.9 points above the
    levels: CV+ is slightly conservative.
    """
    variance = level * (1 - level) * (1 / n_train + 1 / n_test)
    return 3 * np.sqrt(variance)


def coverage_is_nominal(y_true, y_intervals, levels=CONFIDENCE_LEVELS):
    """Whether the coverage at each level is within its tolerance of the level."""
    levels = np.asarray(levels)
    coverage = regression_coverage_score(y_true, y_intervals)
    return np.abs(coverage - levels) <= coverage_tolerance(levels)


def make_noisy_table(n_rows, random_state):
    """A DataFrame with two numeric columns and a categorical one, and a noisy target."""
    rng = np.random.default_rng(random_state)
    X = pd.DataFrame(
        {
            "x0": rng.uniform(-3, 3, n_rows),
            "x1": rng.uniform(-3, 3, n_rows),
            "group": rng.choice(["a", "b", "c"], n_rows),
        }
    )
    shift = X["group"].map({"a": 0.0, "b": 1.0, "c": -1.0})
    y = np.sin(X["x0"]) + 0.5 * X["x1"] + shift + rng.normal(scale=0.3, size=n_rows)
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def conformal_fit():
    """CV+ intervals at three levels for held-out rows; one fit (4 small networks) serves all."""
    X, y = make_noisy_table(N_TRAIN + N_TEST, random_state=0)
    X_train, y_train = X.iloc[:N_TRAIN], y[:N_TRAIN]
    X_test, y_test = X.iloc[N_TRAIN:], y[N_TRAIN:]
    mlp = TorchMLPRegressor((16,), ensemble_size=1, max_epochs=40, random_state=0)
    mapie = CrossConformalRegressor(
        make_pipeline(make_tabular_preprocessor(), mlp),
        confidence_level=list(CONFIDENCE_LEVELS),
        method="plus",
        cv=3,
        random_state=0,
    )
    mapie.fit_conformalize(X_train, y_train)
    y_pred, y_intervals = mapie.predict_interval(X_test)
    return y_test, y_pred, y_intervals


def test_intervals_have_one_lower_and_upper_bound_per_row_and_level(conformal_fit):
    y_test, y_pred, y_intervals = conformal_fit
    assert y_pred.shape == (N_TEST,)
    assert y_intervals.shape == (N_TEST, 2, len(CONFIDENCE_LEVELS))
    assert np.isfinite(y_intervals).all()
    assert (y_intervals[:, 0, :] <= y_intervals[:, 1, :]).all()


def test_coverage_on_held_out_rows_is_near_the_confidence_level(conformal_fit):
    y_test, _, y_intervals = conformal_fit
    coverage = regression_coverage_score(y_test, y_intervals)
    assert coverage_is_nominal(y_test, y_intervals).all(), coverage


def test_coverage_check_rejects_intervals_too_narrow_or_too_wide(conformal_fit):
    # The tolerance is tight enough to catch a miscalibration: intervals reduced
    # to the point prediction, or a quarter narrower or wider than MAPIE's.
    y_test, y_pred, y_intervals = conformal_fit
    point_only = np.repeat(y_pred[:, None, None], 2, axis=1).repeat(len(CONFIDENCE_LEVELS), axis=2)
    assert not coverage_is_nominal(y_test, point_only).any()
    centre = y_intervals.mean(axis=1, keepdims=True)
    for scale in (0.75, 1.25):
        rescaled = centre + scale * (y_intervals - centre)
        assert not coverage_is_nominal(y_test, rescaled)[-1], scale


def test_higher_confidence_gives_wider_intervals_that_contain_the_prediction(conformal_fit):
    _, y_pred, y_intervals = conformal_fit
    widths = regression_mean_width_score(y_intervals)
    assert (np.diff(widths) > 0).all(), widths
    per_row = y_intervals[:, 1, :] - y_intervals[:, 0, :]
    assert (np.diff(per_row, axis=1) >= 0).all()
    # CV+ bounds are quantiles over the fold models' predictions, and the point
    # prediction is their mean, so at a low level (50%) a few rows whose fold
    # models disagree can have it outside their narrow interval; at 80% and 90%
    # the intervals are wide enough to contain it.
    for level in (0.8, 0.9):
        lower, upper = y_intervals[:, :, CONFIDENCE_LEVELS.index(level)].T
        assert ((lower <= y_pred) & (y_pred <= upper)).all(), level
