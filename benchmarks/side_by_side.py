"""Training speed of this checkout against the package at other git revisions, in one process.

Each revision's ``sktorch_mlp`` folder is extracted with ``git archive`` into a temporary
folder, under another package name (the package imports itself relatively), and imported
beside this checkout's. Every network is then fitted with each version in turn, the order
alternating from one repeat to the next, so that the machine's slow spells hit every version
alike; the times are the epochs after the first, from ``history_[:, "dur"]``.

Run: ``python benchmarks/side_by_side.py 143f4be 0cbade3 --repeats 10`` (about 3 minutes on a
2-core CPU). With ``--whole-fits``, each version's default model is instead fitted to the end
(early stopping included) and the whole fit is timed: what a user waits for, epochs and all.
``--data friedman1`` trains on 8,000 rows of ``make_friedman1`` instead of California housing's
training split: ten numeric columns, none of them two-valued.
"""

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import make_friedman1
from speed import PLAIN_ARCHITECTURE, california_training_split

REPOSITORY = Path(__file__).resolve().parents[1]

NETWORKS = {
    "(256, 256), dropout 0.1": dict(
        hidden_layer_sizes=(256, 256), dropout=0.1, batch_size=128, lr=1e-3, **PLAIN_ARCHITECTURE
    ),
    "(256, 256), dropout 0": dict(
        hidden_layer_sizes=(256, 256), dropout=0.0, batch_size=128, lr=1e-3, **PLAIN_ARCHITECTURE
    ),
    "default model": dict(early_stopping=False),
}


def friedman1_training_rows():
    X, y = make_friedman1(n_samples=10_000, random_state=0)
    return X[:8_000], y[:8_000]


DATA = {
    "california": ("California housing training split", california_training_split),
    "friedman1": ("friedman1, 8,000 rows", friedman1_training_rows),
}


def import_revision(revision, folder):
    """Import the package as it is at ``revision``, as ``sktorch_at_<commit>``."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "sktorch_mlp"], cwd=REPOSITORY, check=True, capture_output=True
    ).stdout
    target = Path(folder) / commit
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    name = f"sktorch_at_{commit}"
    (target / "sktorch_mlp").rename(target / name)
    sys.path.insert(0, str(target))
    return commit, importlib.import_module(name).TorchMLPRegressor


def later_epochs(estimator_class, params, X, y, epochs):
    model = estimator_class(max_epochs=epochs, random_state=0, device="cpu", **params).fit(X, y)
    return list(model.history_[1:, "dur"])


def whole_fit(estimator_class, X, y):
    """Seconds and epochs of one default fit, to the end."""
    start = time.perf_counter()
    model = estimator_class(random_state=0, device="cpu").fit(X, y)
    return time.perf_counter() - start, model.n_iter_


def report_whole_fits(versions, X, y, repeats, data_name):
    fits = {name: [] for name in versions}
    for repeat in range(repeats):
        order = list(versions.items())
        for name, estimator_class in order if repeat % 2 == 0 else order[::-1]:
            fits[name].append(whole_fit(estimator_class, X, y))
    names = list(versions)
    print(
        f"{data_name}, default model fitted to the end, {repeats} fit(s) "
        f"per version, torch threads {torch.get_num_threads()}."
    )
    print()
    print("| version | fit s (each) | epochs | ms per epoch | fit time / " + names[0] + " |")
    print("|---|---:|---:|---:|---:|")
    first = np.mean([seconds for seconds, _ in fits[names[0]]])
    for name in names:
        seconds = np.array([s for s, _ in fits[name]])
        epochs = [e for _, e in fits[name]]
        per_epoch = 1e3 * seconds.sum() / sum(epochs)
        each = ", ".join(f"{s:.1f}" for s in seconds)
        print(
            f"| {name} | {each} | {', '.join(map(str, epochs))} | {per_epoch:.0f} "
            f"| {seconds.mean() / first:.2f}x |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="+", help="git revisions to compare with the checkout")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--whole-fits", action="store_true", help="time whole default fits, early stopping on"
    )
    parser.add_argument("--data", choices=DATA, default="california", help="the training rows")
    args = parser.parse_args()

    from sktorch_mlp import TorchMLPRegressor

    data_name, load = DATA[args.data]
    X, y = load()
    with tempfile.TemporaryDirectory() as folder:
        versions = dict(import_revision(revision, folder) for revision in args.revisions)
        versions["checkout"] = TorchMLPRegressor
        if args.whole_fits:
            report_whole_fits(versions, X, y, args.repeats, data_name)
            return
        times = {(network, name): [] for network in NETWORKS for name in versions}
        for repeat in range(args.repeats):
            order = list(versions.items())
            for network, params in NETWORKS.items():
                for name, estimator_class in order if repeat % 2 == 0 else order[::-1]:
                    times[network, name] += later_epochs(estimator_class, params, X, y, args.epochs)

    names = list(versions)
    print(
        f"{data_name}, {args.epochs} epochs per fit, {args.repeats} fits "
        f"per version, torch threads {torch.get_num_threads()}; ms per epoch after the first, "
        "fastest (median)."
    )
    print()
    print(f"| network | {' | '.join(names)} | speed-up of the checkout over {names[0]} |")
    print(f"|---|{'---:|' * len(names)}---:|")
    for network in NETWORKS:
        cells = []
        for name in names:
            values = np.array(times[network, name]) * 1e3
            cells.append(f"{values.min():.0f} ({np.median(values):.0f})")
        first = min(times[network, names[0]])
        speed_up = first / min(times[network, "checkout"])
        print(f"| {network} | {' | '.join(cells)} | {speed_up:.2f}x |")


if __name__ == "__main__":
    main()
