"""
=====================================
Diagnosing a fit with display objects
=====================================

Two plots tell how a regressor did. Its training curves show how training went,
epoch by epoch; its prediction errors on held-out rows show where the fitted
model is wrong. This example draws the first with
:class:`~sktorch_mlp.TrainingCurveDisplay` and the second with scikit-learn's
:class:`~sklearn.metrics.PredictionErrorDisplay`, for two networks on the
California housing data: one that takes the features as they are and one with
piecewise-linear embeddings of each feature (the default).

Both displays follow scikit-learn's convention: ``from_estimator`` takes a
fitted estimator (here a :class:`~sklearn.pipeline.Pipeline` that ends with the
regressor) and returns an object that holds the matplotlib axes and artists.

To run in seconds on a CPU, the networks train on a subsample of 4,000 rows,
as single networks (``ensemble_size=1``) and for at most 40 epochs.
"""

# %%
# Data: a training subsample and a test set
# -----------------------------------------
# The test rows are kept aside: the prediction errors are measured on them.
from sklearn.model_selection import train_test_split

from sktorch_mlp.datasets import load_california_housing

X, y = load_california_housing(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
X_train = X_train.sample(n=4000, random_state=0)
y_train = y_train.loc[X_train.index]

# %%
# Two models
# ----------
# The preprocessing imputes the missing ``total_bedrooms`` values and one-hot
# encodes ``ocean_proximity``; the regressor rescales every column itself. The
# two models differ only in ``embedding``: ``"none"`` feeds the rescaled
# features to the first layer, ``"piecewise"`` first encodes each one on bins
# and maps the encoding linearly.
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import root_mean_squared_error
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from sktorch_mlp import TorchMLPRegressor

numeric_features = X.columns.drop("ocean_proximity").tolist()
impute = SimpleImputer(strategy="median")
encode = OneHotEncoder(handle_unknown="ignore")
preprocess = ColumnTransformer(
    [
        ("numeric", impute, numeric_features),
        ("categorical", encode, ["ocean_proximity"]),
    ]
)

models = {}
for embedding in ["none", "piecewise"]:
    # ensemble_size=1 and max_epochs=40 only keep this example quick.
    mlp = TorchMLPRegressor(
        embedding=embedding,
        ensemble_size=1,
        max_epochs=40,
        random_state=0,
    )
    model = Pipeline([("prep", preprocess), ("mlp", mlp)])
    models[embedding] = model.fit(X_train, y_train)
    test_rmse = root_mean_squared_error(y_test, model.predict(X_test))
    print(
        f"embedding={embedding!r}: {mlp.n_iter_} epochs, "
        f"weights of epoch {mlp.best_epoch_} kept, test RMSE {test_rmse:.3f}"
    )

# %%
# Training curves
# ---------------
# :meth:`TrainingCurveDisplay.from_estimator
# <sktorch_mlp.TrainingCurveDisplay.from_estimator>` draws the RMSE on the
# training batches (``train_scores_``) and on the 10% of the training rows held
# out for early stopping (``validation_scores_``), both in units of $100,000,
# and a dashed line at the epoch whose weights the model kept
# (``best_epoch_``). Drawn on the same axes, each with a ``name`` and a colour
# of its own (dotted for the training curve), the two models can be compared:
#
# - With piecewise-linear embeddings the validation error is lower from the first
#   epochs on. After 10 to 15 epochs it levels off while the training error
#   keeps falling: the network starts to fit the noise of its training rows,
#   and early stopping keeps the weights of the best validation epoch.
# - Without them, the validation error is higher and noisier, and still falls
#   at the last epoch: this model would need more epochs (``max_epochs``).
import matplotlib.pyplot as plt

from sktorch_mlp import TrainingCurveDisplay

fig, ax = plt.subplots(figsize=(7, 4.5))
colors = {"none": "tab:orange", "piecewise": "tab:blue"}
for embedding, model in models.items():
    TrainingCurveDisplay.from_estimator(
        model,
        ax=ax,
        name=f"embedding={embedding!r}",
        train_kwargs={"color": colors[embedding], "linestyle": ":"},
        validation_kwargs={"color": colors[embedding]},
    )
ax.set_ylim(top=0.9)
ax.set_title("RMSE per epoch")
plt.show()

# %%
# Prediction errors on the test rows
# ----------------------------------
# :class:`~sklearn.metrics.PredictionErrorDisplay` works with this regressor as
# with any scikit-learn regressor. On the left, the true value of each test row
# against its prediction: a perfect model puts every point on the diagonal.
# On the right, the residuals (true minus predicted values) against the
# prediction, which show whether the errors depend on the predicted value.
#
# The horizontal band at 5 on the left is the census cap: every block group
# worth $500,000 or more was recorded as $500,001, so the model cannot tell
# these expensive areas apart and under-predicts many of them. The same rows
# form the falling diagonal edge at the top of the residual plot.
from sklearn.metrics import PredictionErrorDisplay

model = models["piecewise"]
fig, (ax_actual, ax_residual) = plt.subplots(1, 2, figsize=(10, 4.5))
for kind, ax in [
    ("actual_vs_predicted", ax_actual),
    ("residual_vs_predicted", ax_residual),
]:
    # subsample=1000 (the default) draws 1,000 of the 4,128 test rows.
    PredictionErrorDisplay.from_estimator(
        model,
        X_test,
        y_test,
        kind=kind,
        ax=ax,
        random_state=0,
    )
ax_actual.set_title("Actual against predicted value")
ax_residual.set_title("Residual against predicted value")
fig.suptitle("embedding='piecewise', 1,000 test rows ($100,000)")
fig.tight_layout()
plt.show()
