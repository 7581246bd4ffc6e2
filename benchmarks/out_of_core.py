"""Training on data larger than memory: partial_fit over a stream of chunks, with peak memory.

Passes of ``TorchMLPRegressor.partial_fit`` over 10^7 generated rows with 50 features, one call
per chunk of 100,000 rows: one at the constant learning rate ``partial_fit`` keeps, one with the
learning rate lowered along a cosine over the pass with ``set_params`` between calls. Each chunk
is generated from seeded generators just before it is trained on, so the full table (2 GB in
float32) never exists in memory. Then shorter streams of 10^6 rows: smaller chunks (the fixed
cost of a call), ``input_transform="quantile"`` (the package's default), and a CSV file read with
``pd.read_csv(..., chunksize=...)`` (written to a temporary directory first).

Every stream runs in a fresh process, whose peak resident memory while training (Linux's
``VmHWM``) is reported beside the size of one chunk and of the whole data set in float32. The
test RMSE is measured on 100,000 held-out generated rows, predicted 10,000 at a time, with the
model as it was after 1, 2, 5, 10, 20, ... chunks and at the end (pickled then, evaluated once
the peak is read).

The target is ``x0 + ... + x4 + sin(2 x5) + x6 x7`` plus Gaussian noise of standard deviation
0.1, the noise floor of the RMSE; the 50 features are independent standard normals, the first
five summed as in ``benchmarks/speed.py``'s generated data.

Run from the repository root::

    python benchmarks/out_of_core.py --markdown out_of_core.md

The results of a run are recorded in docs/benchmarks.md.
"""

import argparse
import json
import math
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import skorch
import torch
from process_memory import peak_rss_bytes, reset_peak_rss, rss_bytes

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp import __version__ as sktorch_mlp_version

N_FEATURES = 50
NOISE = 0.1
TRAIN_SEED, TEST_SEED = 0, 1
LR = 1e-3  # TorchMLPRegressor's default
# One pass over 10^7 rows takes minutes on a 2-core CPU with this network; the default periodic
# embedding alone makes a row about 5x as costly at 50 features.
MODEL = dict(
    hidden_layer_sizes=(256, 256),
    embedding="none",
    ensemble_size=1,
    input_transform="standard",
    batch_size=128,
    device="cpu",
    random_state=0,
)


# The table is drawn in blocks of this many rows, each from its own seeded generator: any row
# range can be generated alone, and row i is the same whatever the chunk size.
BLOCK_ROWS = 1000


def generated_rows(seed, start, stop):
    """Rows ``start:stop`` of the generated table ``seed``, as float32 ``(X, y)``."""
    blocks = []
    for block in range(start // BLOCK_ROWS, -(-stop // BLOCK_ROWS)):
        rng = np.random.default_rng([seed, block])
        X = rng.standard_normal((BLOCK_ROWS, N_FEATURES), dtype=np.float32)
        noise = rng.standard_normal(BLOCK_ROWS, dtype=np.float32)
        blocks.append((X, noise))
    offset = start - start // BLOCK_ROWS * BLOCK_ROWS
    rows = slice(offset, offset + stop - start)
    X = np.concatenate([X for X, _ in blocks])[rows]
    noise = np.concatenate([noise for _, noise in blocks])[rows]
    y = X[:, :5].sum(axis=1) + np.sin(2 * X[:, 5]) + X[:, 6] * X[:, 7] + NOISE * noise
    return X, y


def generated_chunks(seed, n_rows, chunk_rows):
    for start in range(0, n_rows, chunk_rows):
        yield generated_rows(seed, start, min(start + chunk_rows, n_rows))


def csv_chunks(path, chunk_rows):
    for chunk in pd.read_csv(path, chunksize=chunk_rows, dtype=np.float32):
        yield chunk.drop(columns="y"), chunk["y"]


def write_csv(path, n_rows, chunk_rows):
    """Write the generated table to ``path`` a chunk at a time; returns the seconds taken."""
    start = time.perf_counter()
    columns = [f"x{i}" for i in range(N_FEATURES)]
    for index, (X, y) in enumerate(generated_chunks(TRAIN_SEED, n_rows, chunk_rows)):
        chunk = pd.DataFrame(X, columns=columns).assign(y=y)
        chunk.to_csv(path, mode="w" if index == 0 else "a", header=index == 0, index=False)
    return time.perf_counter() - start


def test_rmse(model, n_rows):
    """RMSE on held-out generated rows, predicted 10,000 at a time (bounded memory too)."""
    squared_error = 0.0
    for X, y in generated_chunks(TEST_SEED, n_rows, 10_000):
        squared_error += float(np.sum((model.predict(X) - y) ** 2))
    return float(np.sqrt(squared_error / n_rows))


def stream_child(args):
    """Runs in a fresh process: one pass of partial_fit over a stream; prints JSON."""
    # Warm-up on a throwaway model (imports, thread pools, allocator), so that the memory
    # measured from here on is what streaming adds.
    params = {**MODEL, "input_transform": args.input_transform}
    TorchMLPRegressor(**params).partial_fit(*generated_rows(TRAIN_SEED, 0, 256))
    rss_before = rss_bytes()
    reset_peak_rss()
    if args.csv:
        chunks = csv_chunks(args.csv, args.chunk_rows)
    else:
        chunks = generated_chunks(TRAIN_SEED, args.rows, args.chunk_rows)

    model = TorchMLPRegressor(**params)
    n_calls = -(-args.rows // args.chunk_rows)
    checkpoints = {step * 10**k for k in range(9) for step in (1, 2, 5)}  # in chunks
    snapshots, call_seconds, rss_after_first = [], [], None
    read_seconds = 0.0
    n_rows = 0
    while True:
        start = time.perf_counter()
        chunk = next(chunks, None)
        read_seconds += time.perf_counter() - start
        if chunk is None:
            break
        if args.lr_schedule == "cosine":  # from LR down to 0 over the pass
            model.set_params(lr=LR * (1 + math.cos(math.pi * len(call_seconds) / n_calls)) / 2)
        start = time.perf_counter()
        model.partial_fit(*chunk)
        call_seconds.append(time.perf_counter() - start)
        n_rows += len(chunk[0])
        del chunk
        if len(call_seconds) == 1:
            rss_after_first = rss_bytes()
        if len(call_seconds) in checkpoints:  # not timed; a pickle of the model is about 1 MB
            snapshots.append((n_rows, pickle.dumps(model)))
    peak_rss = peak_rss_bytes()
    rss_end = rss_bytes()
    # Evaluated after the peak is read: predict's float64 buffers stay in the heap of glibc's
    # malloc (about 100 MiB here) and would count in the training's peak.
    if snapshots[-1][0] != n_rows:
        snapshots.append((n_rows, pickle.dumps(model)))
    learning_curve = [
        (rows, test_rmse(pickle.loads(snapshot), args.test_rows)) for rows, snapshot in snapshots
    ]
    tenth = max(len(call_seconds) // 10, 1)
    print(
        json.dumps(
            {
                "source": "CSV file" if args.csv else "generated",
                "input_transform": args.input_transform,
                "lr_schedule": args.lr_schedule,
                "rows": n_rows,
                "chunk_rows": args.chunk_rows,
                "calls": len(call_seconds),
                "read_seconds": read_seconds,
                "train_seconds": sum(call_seconds),
                "call_seconds_first_tenth": float(np.median(call_seconds[:tenth])),
                "call_seconds_last_tenth": float(np.median(call_seconds[-tenth:])),
                "rss_before_bytes": rss_before,
                "rss_after_first_chunk_bytes": rss_after_first,
                "rss_end_bytes": rss_end,
                "peak_rss_bytes": peak_rss,
                "learning_curve": learning_curve,
            }
        )
    )


def run_stream(rows, chunk_rows, test_rows, csv=None, **settings):
    """One stream in a fresh process; ``settings``: input_transform, lr_schedule."""
    command = [sys.executable, __file__, "--stream-child", "--rows", str(rows)]
    command += ["--chunk-rows", str(chunk_rows), "--test-rows", str(test_rows)]
    for name, value in settings.items():
        command += [f"--{name.replace('_', '-')}", value]
    if csv:
        command += ["--csv", str(csv)]
    print("+", " ".join(command[1:]), file=sys.stderr, flush=True)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _mib(n_bytes):
    mib = n_bytes / 2**20
    return f"{mib:.1f} MiB" if mib < 10 else f"{mib:,.0f} MiB"


def float32_bytes(n_rows):
    return n_rows * (N_FEATURES + 1) * 4  # features and target


def _label(run):
    return f"{run['source']}, {run['input_transform']}, {run['lr_schedule']} lr"


def report(runs, csv_write, args):
    threads = os.environ.get("OMP_NUM_THREADS")
    options = ["rows", "chunk_rows", "lr_schedules", "sweep_rows", "sweep_chunk_rows"]
    options += ["quantile_rows", "csv_rows"]
    command = "python benchmarks/out_of_core.py" + "".join(
        f" --{name.replace('_', '-')} {getattr(args, name)}" for name in options
    )
    if threads:
        command = f"OMP_NUM_THREADS={threads} {command}"
    model = ", ".join(f"{name}={value!r}" for name, value in MODEL.items())
    y_std = np.std(generated_rows(TEST_SEED, 0, 100_000)[1])
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch threads {torch.get_num_threads()}, no GPU used (device='cpu').",
        f"Versions: Python {platform.python_version()}, torch {torch.__version__}, "
        f"skorch {skorch.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, pandas {pd.__version__}, sktorch_mlp {sktorch_mlp_version}.",
        f"Command: `{command}`",
        "",
        f"Model: `TorchMLPRegressor({model})`, other parameters at their defaults (`lr={LR}`, "
        "`weight_decay=0.3`). One pass: one `partial_fit` call per chunk, each chunk seen once. "
        "`partial_fit` keeps the learning rate it is given and does no early stopping; "
        '"constant lr" leaves it at `lr`, "cosine lr" sets it with `set_params(lr=...)` '
        f"before each call, from {LR} down to 0 along a half cosine over the pass.",
        "",
        f"Data: {N_FEATURES} independent standard normal features, "
        "target `x0 + ... + x4 + sin(2 x5) + x6 x7` plus noise of standard deviation "
        f"{NOISE} (the RMSE floor; the target's standard deviation is {y_std:.2f}). "
        f"Test RMSE on {args.test_rows:,} held-out generated rows.",
        "",
        "### Throughput",
        "",
        "| stream | rows | chunk rows | total s | rows/s | reading or generating s | "
        "ms per call, first tenth of the calls | ms per call, last tenth | test RMSE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        total = run["read_seconds"] + run["train_seconds"]
        lines.append(
            f"| {_label(run)} | {run['rows']:,} | {run['chunk_rows']:,} | {total:.0f} | "
            f"{run['rows'] / total:,.0f} | {run['read_seconds']:.1f} | "
            f"{run['call_seconds_first_tenth'] * 1e3:,.0f} | "
            f"{run['call_seconds_last_tenth'] * 1e3:,.0f} | "
            f"{run['learning_curve'][-1][1]:.4f} |"
        )
    lines += [
        "",
        "Total s counts the chunks' reading (or generating) and the `partial_fit` calls; the "
        "ms per call are medians.",
    ]
    if csv_write:
        lines += [
            f"The CSV file ({csv_write['rows']:,} rows, {_mib(csv_write['bytes'])} on disk) was "
            f"written a chunk at a time in {csv_write['seconds']:.0f} s before its stream "
            "started; that time is not counted.",
        ]
    lines += [
        "",
        "### Memory",
        "",
        "Each stream runs in a fresh process; memory is its resident set size (RSS). "
        '"Before" is after the imports and a warm-up fit of a throwaway model on 256 rows; '
        "the peak is Linux's `VmHWM` from then to the end of the pass. The test RMSE is "
        "computed after the pass, from snapshots of the model pickled during it, so that "
        "it counts in neither the times nor the peak.",
        "",
        "| stream | rows | chunk rows | RSS before | after the first chunk | peak | "
        "at the end | peak - before | one chunk, float32 | all the rows, float32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {_label(run)} | {run['rows']:,} | {run['chunk_rows']:,} | "
            f"{_mib(run['rss_before_bytes'])} | {_mib(run['rss_after_first_chunk_bytes'])} | "
            f"{_mib(run['peak_rss_bytes'])} | {_mib(run['rss_end_bytes'])} | "
            f"{_mib(run['peak_rss_bytes'] - run['rss_before_bytes'])} | "
            f"{_mib(float32_bytes(run['chunk_rows']))} | {_mib(float32_bytes(run['rows']))} |"
        )
    longest = [run for run in runs if run["rows"] == max(run["rows"] for run in runs)]
    lines += [
        "",
        f"### Test RMSE during the passes over {longest[0]['rows']:,} rows",
        "",
        "| rows trained on | " + " | ".join(_label(run) for run in longest) + " |",
        "|---:|" + "---:|" * len(longest),
    ]
    for point, (rows, _) in enumerate(longest[0]["learning_curve"]):
        scores = [f"{run['learning_curve'][point][1]:.4f}" for run in longest]
        lines.append(f"| {rows:,} | " + " | ".join(scores) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="generated training rows")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows per partial_fit")
    parser.add_argument("--test-rows", type=int, default=100_000)
    parser.add_argument(
        "--lr-schedules",
        default="constant,cosine",
        help="learning-rate schedules of the passes over --rows, one pass each",
    )
    parser.add_argument(
        "--csv-rows", type=int, default=1_000_000, help="rows of the CSV stream (0: none)"
    )
    parser.add_argument(
        "--sweep-rows", type=int, default=1_000_000, help="generated rows of the chunk-size sweep"
    )
    parser.add_argument(
        "--sweep-chunk-rows", default="1000,10000", help="chunk sizes of the sweep (empty: none)"
    )
    parser.add_argument(
        "--quantile-rows",
        type=int,
        default=1_000_000,
        help="generated rows of a stream with input_transform='quantile' (0: none)",
    )
    parser.add_argument("--csv-dir", help="where to write the CSV file (default: a temporary one)")
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument("--stream-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument(
        "--input-transform", default=MODEL["input_transform"], help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--lr-schedule", choices=["constant", "cosine"], default="constant", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.stream_child:
        stream_child(args)
        return

    runs = [
        run_stream(args.rows, args.chunk_rows, args.test_rows, lr_schedule=schedule)
        for schedule in args.lr_schedules.split(",")
    ]
    for chunk_rows in [int(n) for n in args.sweep_chunk_rows.split(",") if n]:
        runs.append(run_stream(args.sweep_rows, chunk_rows, args.test_rows))
    if args.quantile_rows:
        runs.append(
            run_stream(
                args.quantile_rows, args.chunk_rows, args.test_rows, input_transform="quantile"
            )
        )
    csv_write = None
    if args.csv_rows:
        with tempfile.TemporaryDirectory(dir=args.csv_dir) as directory:
            path = Path(directory) / "generated.csv"
            seconds = write_csv(path, args.csv_rows, args.chunk_rows)
            csv_write = {"rows": args.csv_rows, "bytes": path.stat().st_size, "seconds": seconds}
            runs.append(run_stream(args.csv_rows, args.chunk_rows, args.test_rows, csv=path))
    text = report(runs, csv_write, args)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
