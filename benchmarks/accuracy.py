"""Accuracy of TorchMLPRegressor() with its defaults against the usual alternatives.

5-fold cross-validated RMSE, with the same folds and the same preprocessing Pipeline for every
model (median-impute + standardize numeric columns, one-hot encode the others), and the mean fit
time per fold. Models: TorchMLPRegressor(), scikit-learn's MLPRegressor(),
HistGradientBoostingRegressor() and Ridge(), each with its defaults (and random_state=0).
Data sets: the bundled California housing (target in $100,000), scikit-learn's diabetes, and
make_friedman1 with 10,000 rows.

Run from the repository root::

    python benchmarks/accuracy.py --markdown accuracy.md

The results of a run are recorded in docs/benchmarks.md.

``--torch-params '{"dropout": 0.0}'`` evaluates other settings of TorchMLPRegressor (used to
choose the defaults); ``--models`` and ``--datasets`` restrict the run.

``--suite`` runs the suite of real tables instead (``benchmarks/suite.py``), against CatBoost,
LightGBM, HistGradientBoosting, MLPRegressor, RealMLP and TabM; it needs the ``bench`` extra::

    python benchmarks/accuracy.py --suite --markdown suite.md --plot docs/_static/suite.png

``--folds 0`` runs the first fold only; ``--peers`` chooses the peers (``none`` for none);
``--label`` names a TorchMLPRegressor setting in the results cache; a label ending in " raw"
fits it on the table as it is, without the Pipeline (categorical columns and missing values handled
by the estimator), like the peers "HistGradientBoostingRegressor raw" and "CatBoostRegressor raw".
"""

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np
import sklearn
import skorch
import torch
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_validate
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp import __version__ as sktorch_mlp_version
from sktorch_mlp._preprocessing import make_tabular_preprocessor
from sktorch_mlp.datasets import load_california_housing


def california():
    return load_california_housing(return_X_y=True)


def diabetes():
    return load_diabetes(return_X_y=True, as_frame=True)


def friedman1():
    import pandas as pd

    X, y = make_friedman1(n_samples=10_000, random_state=0)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), y


DATASETS = {"california_housing": california, "diabetes": diabetes, "friedman1_10k": friedman1}


def make_models(torch_params):
    return {
        "TorchMLPRegressor": TorchMLPRegressor(**{"random_state": 0, **torch_params}),
        "MLPRegressor": MLPRegressor(random_state=0),
        "HistGradientBoostingRegressor": HistGradientBoostingRegressor(random_state=0),
        "Ridge": Ridge(),
    }


def evaluate(X, y, model, folds):
    pipeline = Pipeline([("prep", make_tabular_preprocessor()), ("model", model)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = cross_validate(
            pipeline, X, y, cv=folds, scoring="neg_root_mean_squared_error", n_jobs=1
        )
    rmse = -result["test_score"]
    return {
        "rmse": float(rmse.mean()),
        "rmse_std": float(rmse.std()),
        "fit_s": float(result["fit_time"].mean()),
    }


def report(results, args):
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU "
        f"(TorchMLPRegressor on device='cpu', torch threads {torch.get_num_threads()}).",
        f"Versions: Python {platform.python_version()}, torch {torch.__version__}, "
        f"skorch {skorch.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, sktorch_mlp {sktorch_mlp_version}.",
        "Command: `python benchmarks/accuracy.py"
        + (f" --torch-params '{args.torch_params}'" if args.torch_params != "{}" else "")
        + "`",
        "",
        "5-fold CV RMSE (mean ± std over folds; same folds, `KFold(5, shuffle=True, "
        "random_state=0)`, and same preprocessing for every model), mean fit time per fold.",
        "",
        "| data set | model | CV RMSE | fit s/fold | RMSE / MLPRegressor | RMSE / HistGB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for dataset, by_model in results.items():
        for model, r in by_model.items():
            ratios = [
                f"{r['rmse'] / by_model[ref]['rmse']:.3f}" if ref in by_model else "n/a"
                for ref in ("MLPRegressor", "HistGradientBoostingRegressor")
            ]
            lines.append(
                f"| {dataset} | {model} | {r['rmse']:.4f} ± {r['rmse_std']:.4f} | "
                f"{r['fit_s']:.1f} | {ratios[0]} | {ratios[1]} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument(
        "--models", default="TorchMLPRegressor,MLPRegressor,HistGradientBoostingRegressor,Ridge"
    )
    parser.add_argument(
        "--torch-params", default="{}", help="JSON dict of TorchMLPRegressor parameters"
    )
    parser.add_argument(
        "--folds",
        help="number of folds; with --suite, the folds to run "
        "(comma-separated indices, default all 5)",
    )
    parser.add_argument("--suite", action="store_true", help="run the suite of real tables")
    parser.add_argument("--peers", default="all", help="with --suite: comma-separated peers")
    parser.add_argument("--label", help="with --suite: name of this TorchMLPRegressor setting")
    parser.add_argument("--peers-only", action="store_true", help="with --suite: skip ours")
    parser.add_argument("--rerun", default="", help="with --suite: peers to run again")
    parser.add_argument("--plot", help="with --suite: save the RMSE-against-time plot here")
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument("--json", help="also write the raw results to this file")
    args = parser.parse_args()

    torch_params = json.loads(args.torch_params)
    if "hidden_layer_sizes" in torch_params:
        torch_params["hidden_layer_sizes"] = tuple(torch_params["hidden_layer_sizes"])
    if args.suite:
        return run_suite(args, torch_params)
    folds = KFold(int(args.folds or 5), shuffle=True, random_state=0)
    results = {}
    for dataset in args.datasets.split(","):
        X, y = DATASETS[dataset]()
        models = make_models(torch_params)
        results[dataset] = {}
        for name in args.models.split(","):
            start = time.perf_counter()
            results[dataset][name] = evaluate(X, y, models[name], folds)
            seconds = time.perf_counter() - start
            print(f"{dataset:20s} {name:30s} {results[dataset][name]} ({seconds:.0f} s)")
    text = report(results, args)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text + "\n")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


def run_suite(args, torch_params):
    import suite

    datasets = (
        list(suite.SUITE) if args.datasets == ",".join(DATASETS) else args.datasets.split(",")
    )
    folds = [int(f) for f in args.folds.split(",")] if args.folds else list(range(5))
    all_peers = suite.make_peers()
    peers = {"all": list(all_peers), "none": []}.get(args.peers, args.peers.split(","))
    ours = "TorchMLPRegressor" + (f" {args.label}" if args.label else "")
    jobs = {name: (*all_peers[name], False) for name in peers}
    if not args.peers_only:
        jobs[ours] = (
            lambda: TorchMLPRegressor(**{"random_state": 0, **torch_params}),
            "torch",
            True,
        )
    cache = suite.run(jobs, datasets, folds, suite.load_cache(), rerun=args.rerun.split(","))
    text = suite.report(cache, ours, [p for p in all_peers if p != ours], datasets, folds)
    if torch_params:
        text += f"\n\n`{ours}`: `--torch-params '{args.torch_params}'`"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text + "\n")
    if args.plot:
        suite.plot(cache, [ours, *all_peers], datasets, folds, args.plot)


if __name__ == "__main__":
    main()
