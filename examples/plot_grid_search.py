"""
=============================================
Tuning the network with a grid search
=============================================

:class:`~sktorch_mlp.TorchMLPRegressor` is a scikit-learn estimator, so
:class:`~sklearn.model_selection.GridSearchCV` can tune its parameters through a
:class:`~sklearn.pipeline.Pipeline`. This example searches the network size and
the dropout rate by cross-validated root mean squared error (RMSE), and shows the
results as a table.

To keep the run short on a CPU, the search uses a subsample of 4,000 rows and
trains single networks (``ensemble_size=1``) instead of the default ensemble of
four, for at most 100 epochs. Each fit stops early, when the loss on its own
validation split stops improving.
"""

# %%
# A subsample of the data, with a held-out test set
# -------------------------------------------------
# The grid search only sees the training rows. The test rows give an unbiased
# estimate of the error of the model it selects.
from sklearn.model_selection import train_test_split

from sktorch_mlp.datasets import load_california_housing

X, y = load_california_housing(return_X_y=True)
X, y = X.sample(4000, random_state=0), y.sample(4000, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

# %%
# The pipeline
# ------------
# Numeric columns are imputed and standardized, ``ocean_proximity`` is one-hot
# encoded, and the regressor is the step named ``"mlp"``. Parameters of a step
# are addressed as ``<step>__<parameter>``, e.g. ``mlp__dropout``.
#
# A search fits one model per candidate and fold, so it pays to make each fit
# cheap. ``ensemble_size=1`` trains one network instead of the default four
# (the ensemble is for the final model, once the parameters are chosen), and
# ``max_epochs=100`` (default 200) bounds the time of a fit. The other
# parameters keep their defaults: quantile-transformed inputs and periodic
# embeddings.
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sktorch_mlp import TorchMLPRegressor

numeric_features = X.columns.drop("ocean_proximity").tolist()
preprocess = ColumnTransformer(
    [
        (
            "numeric",
            make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
            numeric_features,
        ),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["ocean_proximity"]),
    ]
)
model = Pipeline(
    [
        ("prep", preprocess),
        # ensemble_size=1 and max_epochs=100 only keep this example quick on a CPU.
        ("mlp", TorchMLPRegressor(ensemble_size=1, max_epochs=100, random_state=0)),
    ]
)

# %%
# The grid search
# ---------------
# Four candidates, each scored by 3-fold cross-validation: 12 fits, plus one
# refit of the best candidate on all the training rows. scikit-learn maximizes
# scores, so the RMSE scorer is ``"neg_root_mean_squared_error"``: the negated
# RMSE, where higher is better.
from sklearn.model_selection import GridSearchCV, KFold

param_grid = {
    "mlp__hidden_layer_sizes": [(32,), (128, 128)],
    "mlp__dropout": [0.0, 0.2],
}
search = GridSearchCV(
    model,
    param_grid,
    scoring="neg_root_mean_squared_error",
    cv=KFold(n_splits=3, shuffle=True, random_state=0),
)
search.fit(X_train, y_train)

# %%
# The results as a table
# ----------------------
# ``cv_results_`` holds one row per candidate. The scores are negated back into
# RMSE, in units of $100,000.
import pandas as pd

results = pd.DataFrame(search.cv_results_)
results["mean_rmse"] = -results["mean_test_score"]
results["std_rmse"] = results["std_test_score"]
table = results[
    [
        "param_mlp__hidden_layer_sizes",
        "param_mlp__dropout",
        "mean_rmse",
        "std_rmse",
        "rank_test_score",
        "mean_fit_time",
    ]
].sort_values("rank_test_score")
print(table.to_string(index=False))

# %%
# The selected model on the test set
# ----------------------------------
# The cross-validated score of the best candidate was used to pick it, so it is
# slightly optimistic. The held-out test rows give the final estimate. For the
# final model, you would refit the selected parameters with the default
# ensemble (``search.best_estimator_.set_params(mlp__ensemble_size=4)``, then
# ``fit``), usually on more rows; this example skips it to stay short.
from sklearn.metrics import root_mean_squared_error

print("Best parameters:", search.best_params_)
print(f"Cross-validated RMSE: {-search.best_score_:.3f}")
print(f"Test RMSE:            {root_mean_squared_error(y_test, search.predict(X_test)):.3f}")

# %%
# Plot the mean cross-validated RMSE of each candidate, with one standard
# deviation across folds as error bars.
import matplotlib.pyplot as plt

labels = [
    f"{sizes}, dropout={dropout}"
    for sizes, dropout in zip(
        table["param_mlp__hidden_layer_sizes"], table["param_mlp__dropout"], strict=True
    )
]
fig, ax = plt.subplots(figsize=(7, 3))
ax.barh(labels, table["mean_rmse"], xerr=table["std_rmse"], color="tab:blue")
ax.invert_yaxis()
ax.set(xlabel="cross-validated RMSE (x $100,000)", title="Grid search candidates, best first")
fig.tight_layout()
plt.show()
