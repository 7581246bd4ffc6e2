"""Training speed of TorchMLPRegressor against the usual alternatives, side by side.

Four ways to train the same MLP (256x256, ReLU, batch 128, Adam lr 1e-3, no early stopping)
on the same preprocessed California housing training split (16,512 x 13 float32):

- ``TorchMLPRegressor``: this package, with the plain architecture (no embedding, one network,
  constant learning rate, standardized inputs);
- a plain PyTorch loop over pre-loaded tensors (``randperm`` + indexing, ``torch.optim.Adam``),
  with the network a PyTorch user writes (``nn.Sequential`` of ``nn.Linear``, ``nn.ReLU``,
  ``nn.Dropout``); the same loop with ``Adam(fused=True)`` is shown for reference;
- skorch's ``NeuralNetRegressor`` with its defaults (``DataLoader`` + collate per batch), on
  the same ``nn.Sequential``;
- scikit-learn's ``MLPRegressor`` (solver="adam"; it has no dropout).

The runs are interleaved and the best of ``--repeats`` is kept, since this machine is noisy.
Then: time per epoch and peak memory for n = 10^4, 10^5, 10^6 generated rows with 50 features
(each in a fresh process), and predict throughput.

Run from the repository root::

    python benchmarks/speed.py --markdown speed.md

The results of a run are recorded in docs/benchmarks.md. ``--rows``, ``--no-compile`` and small
``--epochs``/``--repeats``/``--scaling-sizes`` make a quick run that checks the script itself, as
``bash benchmarks/gpu_check.sh --dry-run`` does.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings

import numpy as np
import sklearn
import skorch
import torch
from process_memory import peak_rss_bytes, reset_peak_rss, rss_bytes
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp import __version__ as sktorch_mlp_version
from sktorch_mlp._preprocessing import make_tabular_preprocessor
from sktorch_mlp.datasets import load_california_housing

HIDDEN = (256, 256)
DROPOUT = 0.1
LR = 1e-3
DEVICE = "cpu"  # set by --device
# TorchMLPRegressor settings that give the same network and loop as the other trainers.
PLAIN_ARCHITECTURE = dict(
    embedding="none",
    ensemble_size=1,
    input_transform="standard",
    lr_schedule="constant",
    weight_decay=0.0,
    early_stopping=False,
)


def california_training_split(n_rows=None):
    """The preprocessed training split, or its first ``n_rows`` rows (for a quick run)."""
    X, y = load_california_housing(return_X_y=True)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=0)
    X_train = make_tabular_preprocessor().fit_transform(X_train).astype(np.float32)
    return X_train[:n_rows], y_train.to_numpy(dtype=np.float32)[:n_rows]


def fit_sktorch_mlp(X, y, epochs, batch_size, **params):
    return TorchMLPRegressor(
        HIDDEN,
        **{
            "dropout": DROPOUT,
            "lr": LR,
            "batch_size": batch_size,
            "max_epochs": epochs,
            "random_state": 0,
            "device": DEVICE,
            **PLAIN_ARCHITECTURE,
            **params,
        },
    ).fit(X, y)


def fit_sktorch_mlp_without_dropout(X, y, epochs, batch_size):
    fit_sktorch_mlp(X, y, epochs, batch_size, dropout=0.0)


def plain_network(n_features):
    """The network as a PyTorch user writes it: Linear -> ReLU -> Dropout blocks, linear output."""
    layers, width_in = [], n_features
    for width in HIDDEN:
        layers += [torch.nn.Linear(width_in, width), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT)]
        width_in = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(width_in, 1))


def fit_plain_torch(X, y, epochs, batch_size, fused=None):
    """The loop a PyTorch user writes by hand, with the data pre-loaded as tensors."""
    torch.manual_seed(0)
    X_t, y_t = torch.from_numpy(X).to(DEVICE), torch.from_numpy(y).reshape(-1, 1).to(DEVICE)
    model = plain_network(X.shape[1]).to(DEVICE)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=fused)
    loss_fn = torch.nn.MSELoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(X_t), device=DEVICE)
        for start in range(0, len(X_t), batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(X_t[rows]), y_t[rows])
            loss.backward()
            optimizer.step()
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def fit_plain_torch_fused(X, y, epochs, batch_size):
    fit_plain_torch(X, y, epochs, batch_size, fused=True)


def fit_skorch_defaults(X, y, epochs, batch_size):
    torch.manual_seed(0)
    skorch.NeuralNetRegressor(
        plain_network(X.shape[1]),
        optimizer=torch.optim.Adam,
        lr=LR,
        batch_size=batch_size,
        max_epochs=epochs,
        train_split=None,
        device=DEVICE,
        verbose=0,
    ).fit(X, y.reshape(-1, 1))


def fit_sklearn_mlp(X, y, epochs, batch_size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPRegressor(
            hidden_layer_sizes=HIDDEN,
            solver="adam",
            learning_rate_init=LR,
            batch_size=batch_size,
            max_iter=epochs,
            tol=0.0,
            n_iter_no_change=epochs + 1,
            random_state=0,
        ).fit(X, y)


TRAINERS = {
    "TorchMLPRegressor": fit_sktorch_mlp,
    "TorchMLPRegressor, dropout=0 (the network MLPRegressor trains)": (
        fit_sktorch_mlp_without_dropout
    ),
    "plain PyTorch loop": fit_plain_torch,
    "plain PyTorch loop, Adam(fused=True) (reference)": fit_plain_torch_fused,
    "skorch NeuralNetRegressor (defaults)": fit_skorch_defaults,
    "sklearn MLPRegressor": fit_sklearn_mlp,
}


def matmul_gflops(size=2048, repeats=5):
    """float32 matrix-product rate of this machine: the ceiling for the arithmetic."""
    a, b = torch.randn(size, size, device=DEVICE), torch.randn(size, size, device=DEVICE)

    def product():
        a @ b
        if DEVICE != "cpu":
            torch.cuda.synchronize()

    product()
    best = min(_timed(product) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_epoch(n_samples, n_features):
    """Forward pass 2 flops per weight per sample; backward twice that."""
    widths = [n_features, *HIDDEN, 1]
    weights = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    return 3 * 2 * n_samples * weights


def compare_trainers(X, y, epochs, batch_size, repeats):
    best = {name: np.inf for name in TRAINERS}
    for _ in range(repeats):
        for name, fit in TRAINERS.items():  # interleaved: drift hits every trainer alike
            best[name] = min(best[name], _timed(lambda fit=fit: fit(X, y, epochs, batch_size)))
    return {name: seconds / epochs for name, seconds in best.items()}


TRAINING_OPTIONS = {
    "float32, hand-written backward pass (default)": {},
    "mixed_precision='bfloat16'": {"mixed_precision": "bfloat16"},
    "mixed_precision='float16'": {"mixed_precision": "float16"},
    "compile=True": {"compile": True},
}
CUDA_ONLY_OPTIONS = {"compile='reduce-overhead' (CUDA graphs)": {"compile": "reduce-overhead"}}


def compare_options(X, y, epochs, batch_size, repeats, compile=True):
    """Per-epoch time of the opt-in training options, the first epoch (compilation) apart."""
    options = dict(TRAINING_OPTIONS)
    if DEVICE != "cpu":
        options.update(CUDA_ONLY_OPTIONS)
    if not compile:
        options = {name: params for name, params in options.items() if "compile" not in params}
    options["default parameters (periodic embedding, 4 networks; not the same network)"] = {
        "embedding": "periodic",
        "ensemble_size": 4,
        "dropout": 0.0,
        "input_transform": "quantile",
    }
    first, later = {}, {name: np.inf for name in options}
    for _ in range(repeats):
        for name, params in options.items():
            durations = fit_sktorch_mlp(X, y, epochs, batch_size, **params).history_[:, "dur"]
            first.setdefault(name, durations[0])
            later[name] = min(later[name], min(durations[1:]))
    return {name: (first[name], later[name]) for name in options}


def scaling_child(n_samples, epochs):
    """Runs in a fresh process: one fit on n generated rows; prints JSON."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_samples, 50), dtype=np.float32)
    y = X[:, :5].sum(axis=1) + 0.1 * rng.standard_normal(n_samples, dtype=np.float32)
    model = TorchMLPRegressor(HIDDEN, max_epochs=1, device=DEVICE, **PLAIN_ARCHITECTURE)
    model.fit(X[:256], y[:256])  # warm-up: imports, thread pools, allocator
    reset_peak_rss()
    rss_before = rss_bytes()
    model.set_params(max_epochs=epochs)
    seconds = _timed(lambda: model.fit(X, y))
    peak = peak_rss_bytes()
    n_predict = min(n_samples, 100_000)
    predict_seconds = min(_timed(lambda: model.predict(X[:n_predict])) for _ in range(3))
    n_params = sum(p.numel() for p in model.net_.module_.parameters())
    print(
        json.dumps(
            {
                "n_samples": n_samples,
                "seconds_per_epoch": seconds / epochs,
                "data_bytes": X.nbytes,
                "model_bytes": 4 * n_params,
                "peak_increase_bytes": max(peak - rss_before, 0),
                "predict_rows_per_second": n_predict / predict_seconds,
            }
        )
    )


def run_scaling(sizes, epochs):
    rows = []
    for n in sizes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--scaling-child",
                str(n),
                "--epochs",
                str(epochs),
                "--device",
                DEVICE,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def cpu_model():
    """The processor's name as Linux reports it, or the platform's word for it elsewhere."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def command_line(args):
    """The command that reproduces this run: the script and the options it was given."""
    parts = ["python benchmarks/speed.py", f"--epochs {args.epochs}", f"--repeats {args.repeats}"]
    defaults = {
        "batch_size": 128,
        "scaling_sizes": "10000,100000,1000000",
        "scaling_epochs": 1,
        "rows": None,
    }
    for name, default in defaults.items():
        value = getattr(args, name)
        if value != default:
            shown = value if value != "" else '""'  # an empty list of sizes, as typed
            parts.append(f"--{name.replace('_', '-')} {shown}")
    if DEVICE != "cpu":
        parts.append(f"--device {DEVICE}")
    if not args.options:
        parts.append("--no-options")
    elif not args.compile:
        parts.append("--no-compile")
    return " ".join(parts)


def report(X, per_epoch, options, gflops, scaling, args):
    n_samples, n_features = X.shape
    floor = flops_per_epoch(n_samples, n_features) / (gflops * 1e9)
    ours = per_epoch["TorchMLPRegressor"]
    cpu = f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()})"
    if DEVICE == "cpu":
        where = (
            f"{os.cpu_count()} CPU cores, {cpu}, torch threads {torch.get_num_threads()}, "
            "no GPU used"
        )
    else:
        where = f"GPU {torch.cuda.get_device_name(DEVICE)}, {os.cpu_count()} CPU cores, {cpu}"
    lines = [
        f"Machine: {platform.machine()}, {where} (device='{DEVICE}').",
        f"Versions: Python {platform.python_version()}, torch {torch.__version__}, "
        f"skorch {skorch.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, sktorch_mlp {sktorch_mlp_version}.",
        f"Command: `{command_line(args)}`",
        "",
        f"### Training, California housing {n_samples:,} x {n_features} float32, "
        f"MLP {HIDDEN}, batch {args.batch_size}",
        "",
        f"Best of {args.repeats} interleaved runs of {args.epochs} epochs each. Arithmetic "
        f"floor: {flops_per_epoch(n_samples, n_features) / 1e9:.1f} GFLOP per epoch at the "
        f"{gflops:.0f} GFLOP/s a 2048x2048 float32 matmul reaches here = {floor * 1e3:.1f} ms.",
        "",
        "| trainer | ms/epoch | samples/s | TorchMLPRegressor speed-up | floor / time |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds in per_epoch.items():
        lines.append(
            f"| {name} | {seconds * 1e3:.0f} | {n_samples / seconds:,.0f} | "
            f"{seconds / ours:.2f}x | {floor / seconds:.0%} |"
        )
    like_for_like = per_epoch["TorchMLPRegressor, dropout=0 (the network MLPRegressor trains)"]
    ratios = [
        ("the plain PyTorch loop", per_epoch["plain PyTorch loop"] / ours, 1.5),
        ("skorch's defaults", per_epoch["skorch NeuralNetRegressor (defaults)"] / ours, 2.5),
    ]
    if "sklearn MLPRegressor" in per_epoch:
        sklearn_time = per_epoch["sklearn MLPRegressor"]
        ratios += [
            ("MLPRegressor (ours with dropout 0.1)", sklearn_time / ours, 1.5),
            ("MLPRegressor (the same network, no dropout)", sklearn_time / like_for_like, 1.5),
        ]
    lines += ["", "Speed-up of TorchMLPRegressor over:", ""]
    lines += [
        f"- {name}: {ratio:.2f}x (target {target}x: {'met' if ratio >= target else 'not met'})"
        for name, ratio, target in ratios
    ]
    if options:
        lines += [
            "",
            f"### Training options, same data and batch ({args.epochs} epochs, "
            f"best of {args.repeats})",
            "",
            "| TorchMLPRegressor | first epoch (s) | later epochs (ms/epoch) | "
            "vs float32 default |",
            "|---|---:|---:|---:|",
        ]
        default = next(iter(options.values()))[1]
        for name, (first, later) in options.items():
            lines.append(f"| {name} | {first:.2f} | {later * 1e3:.0f} | {later / default:.2f}x |")
    if scaling:
        lines += [
            "",
            f"### Scaling: generated data, 50 features, {args.scaling_epochs} epoch(s), "
            "each size in a fresh process",
            "",
            "| rows | s/epoch | us/row | float32 data | peak memory increase during fit | "
            "peak / (data + model) | predict rows/s |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in scaling:
            base = row["data_bytes"] + row["model_bytes"]
            lines.append(
                f"| {row['n_samples']:,} | {row['seconds_per_epoch']:.2f} | "
                f"{row['seconds_per_epoch'] / row['n_samples'] * 1e6:.1f} | "
                f"{row['data_bytes'] / 2**20:.0f} MiB | "
                f"{row['peak_increase_bytes'] / 2**20:.0f} MiB | "
                f"{row['peak_increase_bytes'] / base:.2f} | "
                f"{row['predict_rows_per_second']:,.0f} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--scaling-sizes", default="10000,100000,1000000")
    parser.add_argument("--scaling-epochs", type=int, default=1)
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument(
        "--device", default="cpu", help='"cpu" or a CUDA device; all trainers but sklearn run there'
    )
    parser.add_argument(
        "--no-options", dest="options", action="store_false", help="skip the training options"
    )
    parser.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="skip the compiled options (compiling takes tens of seconds)",
    )
    parser.add_argument(
        "--rows", type=int, help="train on the first ROWS rows of the split only (a quick run)"
    )
    parser.add_argument("--scaling-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE != "cpu":
        del TRAINERS["sklearn MLPRegressor"]  # it runs on the CPU only
    if args.scaling_child:
        scaling_child(args.scaling_child, args.epochs)
        return

    X, y = california_training_split(args.rows)
    gflops = matmul_gflops()
    per_epoch = compare_trainers(X, y, args.epochs, args.batch_size, args.repeats)
    sizes = [int(n) for n in args.scaling_sizes.split(",") if n]
    scaling = run_scaling(sizes, args.scaling_epochs)
    options = {}
    if args.options:
        options = compare_options(
            X, y, max(args.epochs, 3), args.batch_size, args.repeats, compile=args.compile
        )
    text = report(X, per_epoch, options, gflops, scaling, args)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
