"""
===============================================
Conformal prediction intervals with MAPIE
===============================================

A point prediction says nothing about how far off it may be. Conformal
prediction turns any regressor into one that returns an interval, with a
guarantee on how often such intervals contain the true value. This example
wraps a :class:`~sklearn.pipeline.Pipeline` that ends with
:class:`~sktorch_mlp.TorchMLPRegressor` in MAPIE's
:class:`~mapie.regression.CrossConformalRegressor`, asks for 90% intervals on
the California housing data, and measures on held-out rows how often they
contain the true value (their coverage) and how wide they are.

MAPIE is an optional dependency: ``pip install "sktorch-mlp[mapie]"``.

Cross-conformal prediction fits the model once per cross-validation fold, and
once more on all the rows: six fits here. To run in under a minute on a
two-core CPU, the networks train on a subsample of 8,000 rows, as single
networks (``ensemble_size=1``) and for at most 60 epochs.
"""

# %%
# Data: a training subsample and a test set
# -----------------------------------------
# The test rows are kept aside: the coverage and the width of the intervals are
# measured on them. All 4,128 of them are kept, so the measured coverage is
# precise (its standard error is about 0.5 percentage points, see below).
from sklearn.model_selection import train_test_split

from sktorch_mlp.datasets import load_california_housing

X, y = load_california_housing(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
X_train = X_train.sample(n=8000, random_state=0)
y_train = y_train.loc[X_train.index]

# %%
# The model and its conformal wrapper
# -----------------------------------
# The pipeline imputes the missing ``total_bedrooms`` values and one-hot encodes
# ``ocean_proximity``; the regressor rescales every column itself. MAPIE
# clones and fits the whole pipeline, so the preprocessing is refitted in each
# fold, on that fold's training rows only.
#
# How :class:`~mapie.regression.CrossConformalRegressor` builds an interval,
# with ``cv=5`` and ``method="plus"`` (the CV+ method of Barber et al., 2021):
#
# 1. ``fit_conformalize`` splits the training rows into 5 folds and fits one
#    copy of the pipeline on each set of 4 folds. Each training row is then
#    predicted by the model that did not see it, and its absolute residual
#    :math:`R_i = |y_i - \hat\mu_{-k(i)}(x_i)|` is its conformity score. It
#    also fits the pipeline on all the rows (a sixth fit, not used by the
#    intervals below).
# 2. ``predict_interval`` predicts a new row :math:`x` with each fold's model,
#    and takes the lower bound as the 10% quantile of
#    :math:`\hat\mu_{-k(i)}(x) - R_i` over the training rows :math:`i`, and
#    the upper bound as the 90% quantile of :math:`\hat\mu_{-k(i)}(x) + R_i`
#    (:math:`\alpha` and :math:`1 - \alpha`, for :math:`\alpha = 0.1`). Were
#    the five models identical, that would be the prediction plus or minus the
#    90% quantile of the scores. The point prediction is the mean of the fold
#    models' predictions.
#
# Unlike split conformal prediction, no rows are set aside for calibration:
# every row trains four of the five models and calibrates the fifth. The price
# is in fitting time (six models instead of one) and in a weaker guarantee:
# CV+ intervals cover at least :math:`1 - 2\alpha` = 80% in theory, and about
# :math:`1 - \alpha` = 90% in practice.
from mapie.regression import CrossConformalRegressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from sktorch_mlp import TorchMLPRegressor

numeric_features = X.columns.drop("ocean_proximity").tolist()
preprocess = ColumnTransformer(
    [
        ("numeric", SimpleImputer(strategy="median"), numeric_features),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["ocean_proximity"]),
    ]
)
# ensemble_size=1 and max_epochs=60 only keep this example quick: MAPIE fits the
# pipeline six times.
mlp = TorchMLPRegressor(ensemble_size=1, max_epochs=60, random_state=0)
model = Pipeline([("prep", preprocess), ("mlp", mlp)])

mapie_regressor = CrossConformalRegressor(
    model, confidence_level=0.9, method="plus", cv=5, random_state=0
)
mapie_regressor.fit_conformalize(X_train, y_train)

# %%
# Coverage and width on the test rows
# -----------------------------------
# ``predict_interval`` returns the point predictions, of shape ``(n_rows,)``,
# and the intervals, of shape ``(n_rows, 2, n_levels)``: lower and upper bound
# for each confidence level asked for (one here). The coverage is the fraction
# of test rows whose true value lies in its interval. With 4,128 test rows, a
# coverage of exactly 90% would be measured with a binomial standard error of
# :math:`\sqrt{0.9 \times 0.1 / 4128} \approx 0.005`.
import numpy as np
from mapie.metrics.regression import regression_coverage_score, regression_mean_width_score
from sklearn.metrics import root_mean_squared_error

y_pred, y_intervals = mapie_regressor.predict_interval(X_test)
lower, upper = y_intervals[:, 0, 0], y_intervals[:, 1, 0]
coverage = regression_coverage_score(y_test.to_numpy(), y_intervals)[0]
mean_width = regression_mean_width_score(y_intervals)[0]
print(f"Test RMSE of the point predictions: {root_mean_squared_error(y_test, y_pred):.3f}")
print(f"Coverage of the 90% intervals: {coverage:.1%} of {len(y_test)} test rows")
print(f"Mean interval width: {mean_width:.3f} (x $100,000)")

# %%
# The coverage printed above is a little over 90%, as is usual for CV+. The
# conformity scores (``mapie_regressor.conformity_scores``) are the residuals
# of single networks trained on four fifths of the rows; the point prediction
# averages the five of them, which is more accurate than any one (compare the
# RMSE of the scores with the test RMSE above). On top of that, the fold models
# disagree on a new row, and each interval spans their disagreement as well as
# the residuals: on average it is wider than twice the 90% quantile of the
# scores.
scores = mapie_regressor.conformity_scores
print(f"RMSE of the out-of-fold residuals (the scores): {np.sqrt(np.mean(scores**2)):.3f}")
print(f"Twice the 90% quantile of the scores: {2 * np.quantile(scores, 0.9):.3f}")

# %%
# What the coverage guarantee means
# ---------------------------------
# The guarantee is *marginal*: it is about the fraction of intervals that
# contain the true value, on average over new rows drawn like the training rows
# (exchangeable with them). It says nothing about any one row, nor about a
# group of rows. The absolute
# residual used as conformity score gives every row nearly the same width, so
# the intervals are too wide where the model is accurate and too narrow where it
# is not. Grouping the test rows by predicted value shows it: the coverage is
# well above 90% for some groups and below it for others, while the average is
# near it.
#
# The most expensive block groups show it most: the census recorded every value
# of $500,000 or more as $500,001, and the model under-predicts many of them.
import pandas as pd

groups = pd.qcut(y_pred, q=5)
covered = (lower <= y_test.to_numpy()) & (y_test.to_numpy() <= upper)
by_group = pd.Series(covered).groupby(groups, observed=True).mean()
print("Coverage by quintile of the predicted value:")
print(by_group.to_string(float_format="{:.1%}".format))
at_cap = y_test.to_numpy() >= 5
print(f"Coverage of the {at_cap.sum()} test rows at the $500,001 cap: {covered[at_cap].mean():.1%}")

# %%
# Intervals and coverage by predicted value
# -----------------------------------------
# On the left, the intervals of 80 random test rows, sorted by predicted value,
# with the true value of each (red when it falls outside). On the right, the
# coverage of each quintile of the predicted value against the 90% target.
import matplotlib.pyplot as plt

rng = np.random.default_rng(0)
rows = rng.choice(len(y_test), size=80, replace=False)
rows = rows[np.argsort(y_pred[rows])]
position = np.arange(len(rows))

fig, (ax_rows, ax_groups) = plt.subplots(1, 2, figsize=(11, 4.5))
ax_rows.vlines(position, lower[rows], upper[rows], color="tab:blue", alpha=0.5, label="interval")
ax_rows.plot(position, y_pred[rows], "_", color="tab:blue", label="prediction")
inside = covered[rows]
ax_rows.plot(position[inside], y_test.to_numpy()[rows][inside], ".", color="black", label="true")
ax_rows.plot(
    position[~inside], y_test.to_numpy()[rows][~inside], ".", color="tab:red", label="true, outside"
)
ax_rows.set(
    xlabel="Test row, by predicted value",
    ylabel="Median house value (x $100,000)",
    title="90% intervals of 80 test rows",
)
ax_rows.legend(loc="upper left")

labels = [f"{interval.left:.2f}-{interval.right:.2f}" for interval in by_group.index]
ax_groups.bar(labels, by_group.to_numpy(), color="tab:blue", alpha=0.7)
ax_groups.axhline(0.9, color="black", linestyle="--", label="target (90%)")
ax_groups.axhline(coverage, color="tab:orange", label=f"all test rows ({coverage:.1%})")
ax_groups.set(
    ylim=(0.5, 1.0),
    xlabel="Predicted value (x $100,000)",
    ylabel="Coverage",
    title="Coverage by quintile of the prediction",
)
ax_groups.legend(loc="lower left")
fig.tight_layout()
plt.show()

# %%
# Going further
# -------------
# - Other conformity scores make the width depend on the row:
#   ``conformity_score="gamma"`` scales it with the predicted value (the target
#   must be positive), and MAPIE's ``ResidualNormalisedScore`` learns it from
#   the features. The marginal guarantee is the same.
# - :class:`~mapie.regression.SplitConformalRegressor` fits the model once and
#   calibrates on rows set aside: cheaper, with a guarantee of :math:`1 -
#   \alpha`, but the model sees fewer rows.
# - A list of levels, ``confidence_level=[0.5, 0.8, 0.9]``, gives one interval
#   per level from the same fits.
#
# Reference: R. F. Barber, E. J. Candès, A. Ramdas and R. J. Tibshirani,
# "Predictive inference with the jackknife+", *Annals of Statistics* 49(1),
# 2021.
