"""How closely, and how fast, onnxruntime reproduces ``predict`` for exported models.

Trains the two models of docs/onnx.md on California housing (the estimator on the numeric
columns, and the imputing / one-hot pipeline on the whole table; ``max_epochs=20``), exports
each in float64 and float32, and prints the largest relative difference from ``predict`` and
the time of one onnxruntime call on the test rows. The table in docs/onnx.md comes from it.

Run: ``python benchmarks/onnx_export.py`` (needs the ``onnx`` extra; about 2 minutes).
"""

import time

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp.datasets import load_california_housing
from sktorch_mlp.onnx import to_onnx


def table_inputs(table, dtype):
    """One (n_samples, 1) array per column: numbers as dtype, everything else as text."""
    return {
        name: (
            column.to_numpy(dtype)
            if pd.api.types.is_numeric_dtype(column)
            else column.astype(str).to_numpy(object)
        ).reshape(-1, 1)
        for name, column in table.items()
    }


def run(onnx_model, inputs):
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    session.run(None, inputs)  # warm-up
    start = time.perf_counter()
    output = session.run(None, inputs)[0]
    return output.ravel().astype(np.float64), time.perf_counter() - start


def report(name, y_onnx, y_pred, seconds):
    relative = np.abs(y_onnx - y_pred) / np.abs(y_pred)
    print(
        f"| {name} | {relative.max():.1e} | {np.mean(relative > 1e-3):.0%} "
        f"| {seconds * 1e3:.0f} ms |"
    )


def main():
    X, y = load_california_housing(return_X_y=True)
    numeric = X.drop(columns=["ocean_proximity", "total_bedrooms"])
    X_train, X_test, y_train, _ = train_test_split(numeric, y, random_state=0)
    model = TorchMLPRegressor(max_epochs=20, random_state=0).fit(X_train, y_train)
    y_pred = model.predict(X_test)
    X64 = X_test.to_numpy(np.float64)
    print(f"{len(X_test)} test rows")
    print("| graph | largest relative difference | rows beyond 1e-3 | onnxruntime call |")
    print("|---|---:|---:|---:|")
    y64, seconds = run(to_onnx(model), {"X": X64})
    report("float64 estimator", y64, y_pred, seconds)
    y32, seconds = run(to_onnx(model, dtype=np.float32), {"X": X64.astype(np.float32)})
    report(
        "float32 estimator, vs predict on the float32 inputs",
        y32,
        model.predict(X_test.astype(np.float32).astype(np.float64)),
        seconds,
    )
    report("float32 estimator, vs predict on the float64 inputs", y32, y_pred, seconds)

    X_train, X_test, y_train, _ = train_test_split(X, y, random_state=0)
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                make_column_selector(dtype_include=np.number),
            ),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore"),
                make_column_selector(dtype_exclude=np.number),
            ),
        ]
    )
    pipeline = make_pipeline(preprocess, TorchMLPRegressor(max_epochs=20, random_state=0))
    pipeline.fit(X_train, y_train)
    y_pred = pipeline.predict(X_test)
    for dtype in (np.float64, np.float32):
        y_onnx, seconds = run(
            to_onnx(pipeline, X_train.head(), dtype=dtype), table_inputs(X_test, dtype)
        )
        report(f"{np.dtype(dtype).name} pipeline", y_onnx, y_pred, seconds)


if __name__ == "__main__":
    main()
