"""Time of fit's early-stopping split against scikit-learn's ``train_test_split``.

``merge_and_split`` (``sktorch_mlp/_validation_split.py``) hashes each row, sorts the hashes,
merges identical rows and gathers the rows in their new order; ``train_test_split`` draws a
permutation and gathers the rows. Both hold out 10% of generated float32 rows (features
uniform in [0, 1), one float64 target), as ``fit`` does before training: without weights,
with random weights, with half of the rows copies of the other half, and with half of the rows
sharing the features of the other half but not their targets. The table in docs/benchmarks.md
comes from this script.

Run: ``python benchmarks/validation_split.py`` (about a minute on a 2-core CPU).
"""

import argparse
import os
import platform
import time
from functools import partial

import numpy as np
import sklearn
from sklearn.model_selection import train_test_split
from speed import cpu_model

from sktorch_mlp._validation_split import merge_and_split


def best_of(repeats, functions):
    """Best wall time in ms of each function, run in turn ``repeats`` times (interleaved)."""
    best = [np.inf] * len(functions)
    for _ in range(repeats):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[index] = min(best[index], time.perf_counter() - start)
    return [1e3 * seconds for seconds in best]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10**6)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.random((args.rows, args.features), dtype=np.float32)
    y = rng.random((args.rows, 1))
    half = len(X[1::2])
    copies_X, copies_y = X.copy(), y.copy()
    copies_X[1::2], copies_y[1::2] = X[::2][:half], y[::2][:half]
    cases = {
        "no weights, no copies": (X, y, None),
        "random weights": (X, y, rng.random(args.rows)),
        "half the rows copies of the other half": (copies_X, copies_y, None),
        "the same, targets differing": (copies_X, y, None),
    }
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {cpu_model()}. "
        f"numpy {np.__version__}, scikit-learn {sklearn.__version__}."
    )
    print(
        f"Command: `python benchmarks/validation_split.py --rows {args.rows} "
        f"--features {args.features} --repeats {args.repeats}`\n"
    )
    print("| data | train_test_split (ms) | merge_and_split (ms) | ratio |")
    print("|---|---|---|---|")
    for name, (X_case, y_case, weights) in cases.items():
        # Before, the weights travelled through the split as an extra target column.
        y_with_weights = y_case if weights is None else np.column_stack([y_case, weights])
        ours, theirs = best_of(
            args.repeats,
            [
                partial(merge_and_split, X_case, y_case, weights, 0.1, np.random.RandomState(0)),
                partial(
                    train_test_split,
                    X_case,
                    y_with_weights,
                    test_size=0.1,
                    random_state=np.random.RandomState(0),
                ),
            ],
        )
        print(f"| {name} | {theirs:.0f} | {ours:.0f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
