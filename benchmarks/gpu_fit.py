"""The default model on California housing, fitted on a GPU and on the CPU; loaded on a CPU.

Fits ``TorchMLPRegressor(random_state=0)``, otherwise with its defaults, behind the package's
tabular preprocessing, on the bundled California housing table (80% to train, 20% to test),
once on ``--device`` (a GPU) and once on the CPU, and reports each fit's time, epochs and test
RMSE. Then it pickles the model trained on ``--device`` and loads it in a fresh process that
sees no GPU (``CUDA_VISIBLE_DEVICES=""``), whose predictions of the test rows must equal those
made on ``--device`` to float64 rounding (both predict in float64). The results go to a JSON
file; the exit status is 1 when a check failed.

Run from the repository root on a machine with a GPU::

    python benchmarks/gpu_fit.py --device cuda --json gpu_fit.json

``--rows`` and ``--max-epochs`` make a quick run that checks the script itself, as
``bash benchmarks/gpu_check.sh --dry-run`` does.
"""

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp import __version__ as sktorch_mlp_version
from sktorch_mlp._preprocessing import make_tabular_preprocessor
from sktorch_mlp.datasets import load_california_housing

# float64 predictions of the same weights on two devices differ by the order of their sums,
# a few units in the 16th digit; float32 arithmetic anywhere would show in the 7th.
RELATIVE_TOLERANCE = 1e-10


def california_split(n_rows=None):
    X, y = load_california_housing(return_X_y=True)
    if n_rows is not None:
        rows = np.random.default_rng(0).choice(len(X), size=min(n_rows, len(X)), replace=False)
        X, y = X.iloc[rows].reset_index(drop=True), y.iloc[rows].reset_index(drop=True)
    return train_test_split(X, y, test_size=0.2, random_state=0)


def timed_fit(device, X_train, y_train, X_test, y_test, max_epochs):
    params = {"device": device, "random_state": 0}
    if max_epochs is not None:
        params["max_epochs"] = max_epochs
    model = make_pipeline(make_tabular_preprocessor(), TorchMLPRegressor(**params))
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    predictions = model.predict(X_test)
    regressor = model[-1]
    summary = {
        "device": regressor.device_,
        "seconds": seconds,
        "epochs": int(regressor.n_iter_),
        "seconds_per_epoch": seconds / regressor.n_iter_,
        "test_rmse": float(np.sqrt(np.mean((np.asarray(y_test) - predictions) ** 2))),
    }
    return model, predictions, summary


def load_on_cpu(saved):
    """Runs in a fresh process that sees no GPU: load the pickle, predict, compare; print JSON."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open(saved, "rb") as file:
            payload = pickle.load(file)
    model, X, expected = payload["model"], payload["X"], payload["expected"]
    predictions = model.predict(X)
    difference = np.abs(predictions - expected)
    relative = difference / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
    result = {
        "cuda_available": torch.cuda.is_available(),
        "device": model[-1].device_,
        "warnings_on_load": [str(warning.message) for warning in caught],
        "max_abs_difference": float(difference.max()),
        "max_relative_difference": float(relative.max()),
        "relative_tolerance": RELATIVE_TOLERANCE,
    }
    result["passed"] = bool(
        not result["cuda_available"]
        and result["device"] == "cpu"
        and not result["warnings_on_load"]
        and np.allclose(predictions, expected, rtol=RELATIVE_TOLERANCE, atol=0)
    )
    print(json.dumps(result))


def machine(device):
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "sktorch_mlp": sktorch_mlp_version,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help='where the model is trained, e.g. "cuda"')
    parser.add_argument("--json", required=True, help="write the results to this file")
    parser.add_argument("--rows", type=int, help="use ROWS rows of the table only (a quick run)")
    parser.add_argument("--max-epochs", type=int, help="instead of the default 200 (a quick run)")
    parser.add_argument("--load-on-cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_on_cpu:
        load_on_cpu(args.load_on_cpu)
        return 0

    X_train, X_test, y_train, y_test = california_split(args.rows)
    model, predictions, on_device = timed_fit(
        args.device, X_train, y_train, X_test, y_test, args.max_epochs
    )
    _, _, on_cpu = timed_fit("cpu", X_train, y_train, X_test, y_test, args.max_epochs)
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / "model.pkl"
        with open(saved, "wb") as file:
            pickle.dump({"model": model, "X": X_test, "expected": predictions}, file)
        child = subprocess.run(
            [sys.executable, __file__, "--json", "-", "--load-on-cpu", str(saved)],
            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
            capture_output=True,
            text=True,
        )
    sys.stderr.write(child.stderr)
    if child.returncode == 0:
        loaded = json.loads(child.stdout.strip().splitlines()[-1])
    else:
        loaded = {"passed": False, "error": child.stderr.strip().splitlines()[-1:]}

    results = {
        "command": " ".join(["python benchmarks/gpu_fit.py", *sys.argv[1:]]),
        "machine": machine(on_device["device"]),
        "data": {"train_rows": len(X_train), "test_rows": len(X_test)},
        "model": "make_pipeline(make_tabular_preprocessor(), TorchMLPRegressor(random_state=0))"
        + ("" if args.max_epochs is None else f", max_epochs={args.max_epochs}"),
        "fit_on_device": on_device,
        "fit_on_cpu": on_cpu,
        "speed_up_over_cpu": on_cpu["seconds"] / on_device["seconds"],
        "test_rmse_ratio_device_to_cpu": on_device["test_rmse"] / on_cpu["test_rmse"],
        "loaded_on_cpu_only_process": loaded,
    }
    results["passed"] = bool(
        loaded["passed"] and np.isfinite([on_device["test_rmse"], on_cpu["test_rmse"]]).all()
    )
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
