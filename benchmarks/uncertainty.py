"""How well ``predict(X, return_std=True)`` ranks and covers errors on California housing.

For the default model and for ``dropout=0.1``: test RMSE, the median standard deviation, the
fraction of test targets within ``y_pred +/- 1.96 * y_std``, the Spearman correlation of
``y_std`` with the absolute error, and the RMSE of the quarter of test rows with the lowest and
with the highest ``y_std``. The table in docs/uncertainty.md comes from this script.

Run: ``python benchmarks/uncertainty.py`` (about 10 minutes on a 2-core CPU).
"""

import time

import numpy as np
from scipy.stats import spearmanr
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._preprocessing import make_tabular_preprocessor
from sktorch_mlp.datasets import load_california_housing


def main():
    X, y = load_california_housing(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    print(
        "| model | test RMSE | median y_std | within 1.96 y_std | Spearman "
        "| RMSE low / high quarter |"
    )
    for params in [{}, {"dropout": 0.1}]:
        model = make_pipeline(
            make_tabular_preprocessor(), TorchMLPRegressor(random_state=0, **params)
        ).fit(X_train, y_train)
        start = time.perf_counter()
        y_pred, y_std = model.predict(X_test, return_std=True)
        seconds = time.perf_counter() - start
        error = np.abs(y_test.to_numpy() - y_pred)
        low, high = np.quantile(y_std, [0.25, 0.75])
        print(
            f"| TorchMLPRegressor({params}) | {np.sqrt(np.mean(error**2)):.3f} "
            f"| {np.median(y_std):.3f} | {np.mean(error <= 1.96 * y_std):.0%} "
            f"| {spearmanr(y_std, error).statistic:.2f} "
            f"| {np.sqrt(np.mean(error[y_std <= low] ** 2)):.2f} / "
            f"{np.sqrt(np.mean(error[y_std >= high] ** 2)):.2f} |  (return_std: {seconds:.1f} s)"
        )


if __name__ == "__main__":
    main()
