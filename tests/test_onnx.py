"""ONNX export: onnxruntime's predictions equal ``predict``, alone and in pipelines."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer, StandardScaler
from torch import nn

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._preprocessing import make_tabular_preprocessor

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")

from sktorch_mlp.onnx import (  # noqa: E402 (needs the extras above)
    _emit_normal_ppf,
    _emit_quantile_normalization,
    _GraphBuilder,
    register_converter,
    to_onnx,
)

# The bound the export promises; float64 graphs differ from predict by rounding only, which
# the absolute tolerance, a tiny fraction of the target's spread, checks where y is near 0.
RTOL = 1e-5
ATOL_PER_SCALE = 1e-10


def tiny_regressor(**params):
    """A small, fast, unfitted TorchMLPRegressor."""
    return TorchMLPRegressor(
        **{"hidden_layer_sizes": (8, 8), "max_epochs": 3, "random_state": 0, **params}
    )


def fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few epochs: convergence warnings are expected
        return model.fit(X, y)


def run(onnx_model, inputs):
    """The first output of onnxruntime on ``inputs``, a dict or the array for "X"."""
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, inputs if isinstance(inputs, dict) else {"X": inputs})[0]


def table_inputs(table, dtype=np.float64):
    """One (n_samples, 1) array per column, as a graph exported from a DataFrame takes."""
    return {
        name: (
            column.to_numpy(dtype)
            if pd.api.types.is_numeric_dtype(column)
            else column.astype(str).to_numpy(object)
        ).reshape(-1, 1)
        for name, column in table.items()
    }


def assert_same_predictions(actual, expected, scale):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL_PER_SCALE * scale)


@pytest.fixture(scope="module")
def tabular_data():
    """200 rows: a discrete column (repeated quantiles), a constant one and a 0/1 one (both
    passed through the embedding); target ~100."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    X[:, 1] = rng.integers(0, 4, size=200)
    X[:, 3] = 2.5
    X[:, 4] = rng.integers(0, 2, size=200)
    y = 100 * np.sin(X[:, 0]) + 30 * X[:, 1] + 10 * X[:, 2] + 20 * X[:, 4] + 1000
    # Rows beyond the training range in both directions, where the quantiles clip.
    X_new = np.vstack([X, 3 * X, X - 10, X + 10])
    return X, y, X_new


@pytest.mark.parametrize(
    ("ensemble_size", "ensemble_type"), [(1, "independent"), (3, "independent"), (3, "shared")]
)
@pytest.mark.parametrize("embedding", ["periodic", "piecewise", "none"])
@pytest.mark.parametrize("input_transform", ["quantile", "standard", "none"])
def test_estimator_graph_predicts_like_predict(
    tabular_data, input_transform, embedding, ensemble_size, ensemble_type
):
    X, y, X_new = tabular_data
    model = tiny_regressor(
        input_transform=input_transform,
        embedding=embedding,
        ensemble_size=ensemble_size,
        ensemble_type=ensemble_type,
        dropout=0.1,
    )
    fit(model, X, y)
    y_onnx = run(to_onnx(model), X_new)
    y_pred = model.predict(X_new)
    assert y_onnx.shape == y_pred.shape == (len(X_new),)
    assert y_onnx.dtype == np.float64
    assert_same_predictions(y_onnx, y_pred, y.std())


@pytest.mark.parametrize("ensemble_size", [1, 2])
def test_estimator_graph_predicts_several_outputs(tabular_data, ensemble_size):
    X, y, X_new = tabular_data
    Y = np.column_stack([y, -0.01 * y, X[:, 0]])
    model = fit(tiny_regressor(ensemble_size=ensemble_size), X, Y)
    y_onnx = run(to_onnx(model), X_new)
    assert y_onnx.shape == (len(X_new), 3)
    assert_same_predictions(y_onnx, model.predict(X_new), Y.std(axis=0).min())


def test_unpickled_estimator_exports_the_same_graph(tabular_data):
    X, y, X_new = tabular_data
    model = fit(tiny_regressor(ensemble_size=2), X, y)
    restored = pickle.loads(pickle.dumps(model))
    assert_same_predictions(run(to_onnx(restored), X_new), model.predict(X_new), y.std())


def test_float32_graph_is_close_to_predict_on_the_same_inputs(tabular_data):
    X, y, X_new = tabular_data
    model = fit(tiny_regressor(), X, y)
    X32 = X_new.astype(np.float32)
    y_onnx = run(to_onnx(model, dtype=np.float32), X32)
    assert y_onnx.dtype == np.float32
    expected = model.predict(X32.astype(np.float64))
    np.testing.assert_allclose(y_onnx, expected, rtol=1e-4, atol=1e-5 * y.std())


def test_quantile_graph_reproduces_scikit_learn_transform():
    # Ties, a constant column, a heavy tail, values on the quantiles, far outside, and NaN.
    rng = np.random.default_rng(1)
    X = np.column_stack(
        [
            rng.normal(size=300),
            rng.integers(0, 3, size=300),
            np.full(300, -4.0),
            rng.lognormal(sigma=3, size=300),
        ]
    )
    # Fitted and applied in float32, as the estimator does.
    X = X.astype(np.float32)
    transformer = QuantileTransformer(n_quantiles=100, output_distribution="normal").fit(X)
    X_new = np.vstack(
        [X, transformer.quantiles_, 1e6 * X, -1e6 * X, X + 1e-7, X - 1e-7, [np.nan] * 4]
    ).astype(np.float32)
    graph = _GraphBuilder(np.float64)
    transformed = _emit_quantile_normalization(graph, transformer, "X")
    onnx_model = graph_model(graph, transformed, input_type=onnx.TensorProto.FLOAT)
    np.testing.assert_array_equal(run(onnx_model, X_new), transformer.transform(X_new))


def test_normal_quantile_function_matches_scipy():
    rng = np.random.default_rng(2)
    p = np.concatenate(
        [
            rng.random(10_000),
            10 ** rng.uniform(-300, 0, 1_000),
            1 - 10 ** rng.uniform(-16, 0, 1_000),
            [0.5, 0.075, 0.925, np.exp(-25), 1e-7, 1 - 1e-7],
        ]
    )
    graph = _GraphBuilder(np.float64)
    np.testing.assert_allclose(
        run(graph_model(graph, _emit_normal_ppf(graph, "X")), p), ndtri(p), rtol=1e-14
    )


def graph_model(graph, output, input_type=None):
    """A model from input "X" (float64 unless ``input_type``) to float64 ``output``."""
    graph.node("Identity", output, output="Y")
    nodes, initializers = graph.to_protos()
    tensor = onnx.helper.make_tensor_value_info
    return onnx.helper.make_model(
        onnx.helper.make_graph(
            nodes,
            "test",
            [tensor("X", input_type or onnx.TensorProto.DOUBLE, None)],
            [tensor("Y", onnx.TensorProto.DOUBLE, None)],
            initializer=initializers,
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
        ir_version=8,
    )


@pytest.fixture(scope="module")
def mixed_table():
    """A DataFrame with missing numbers, an integer column and a string column."""
    rng = np.random.default_rng(3)
    n = 200
    table = pd.DataFrame(
        {
            "size": rng.lognormal(size=n),
            "rooms": rng.integers(1, 6, size=n),
            "city": rng.choice(["north", "south", "east"], size=n),
        }
    )
    y = 50 * np.log(table["size"]) + 20 * table["rooms"] + 40 * (table["city"] == "north")
    table.loc[::9, "size"] = np.nan
    return table, y.to_numpy()


def test_pipeline_with_column_transformer_predicts_like_predict(mixed_table):
    table, y = mixed_table
    preprocess = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), ["size", "rooms"]),
            ("text", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    pipeline = fit(make_pipeline(preprocess, tiny_regressor()), table, y)
    # An unseen category and a size far beyond the training range.
    new_rows = pd.concat([table, table.assign(city="west", size=1e3)], ignore_index=True)
    y_onnx = run(to_onnx(pipeline, table.head()), table_inputs(new_rows))
    assert y_onnx.shape == (len(new_rows), 1)
    assert_same_predictions(y_onnx.ravel(), pipeline.predict(new_rows), y.std())


def test_pipeline_with_the_packages_preprocessor_predicts_like_predict(california_sample):
    # Median imputation, a categorical column, and most-frequent imputation of strings.
    X, y = california_sample
    X, y = X.head(300).copy(), y.head(300)
    X.loc[::40, "median_income"] = np.nan
    X.loc[::50, "ocean_proximity"] = np.nan
    pipeline = make_pipeline(make_tabular_preprocessor(), tiny_regressor(ensemble_size=2))
    fit(pipeline, X, y)
    y_onnx = run(to_onnx(pipeline, X.head()), table_inputs(X))
    assert_same_predictions(y_onnx.ravel(), pipeline.predict(X), y.std())


def test_pipeline_fitted_on_an_array_takes_one_input(tabular_data):
    X, y, X_new = tabular_data
    pipeline = fit(make_pipeline(StandardScaler(), tiny_regressor()), X, y)
    onnx_model = to_onnx(pipeline)
    assert [node.name for node in onnx_model.graph.input] == ["X"]
    assert_same_predictions(run(onnx_model, X_new).ravel(), pipeline.predict(X_new), y.std())


def test_registered_converter_serves_skl2onnx_to_onnx_in_float32(tabular_data):
    X, y, X_new = tabular_data
    # Not "quantile": float32 scaling moves the discrete column off its repeated quantiles.
    model = tiny_regressor(input_transform="standard")
    pipeline = fit(make_pipeline(StandardScaler(), model), X, y)
    register_converter()
    register_converter()  # idempotent
    onnx_model = skl2onnx.to_onnx(pipeline, X[:5].astype(np.float32))
    y_onnx = run(onnx_model, X_new.astype(np.float32))
    assert y_onnx.dtype == np.float32
    expected = pipeline.predict(X_new.astype(np.float32))
    np.testing.assert_allclose(y_onnx.ravel(), expected, rtol=1e-4, atol=1e-5 * y.std())


def test_estimator_graph_fills_missing_values_like_predict():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    X[::6, 1] = np.nan  # column 1 gets an indicator; NaN elsewhere only at predict
    y = np.nan_to_num(X) @ [1.0, 2.0, -1.0]
    model = fit(tiny_regressor(), X, y)
    X_new = X[:20].copy()
    X_new[0, 0] = X_new[1, 2] = np.nan
    assert_same_predictions(run(to_onnx(model), X_new).ravel(), model.predict(X_new), y.std())


def test_embedded_categories_are_refused_naming_the_pipeline_route():
    table = pd.DataFrame({"a": np.linspace(0, 1, 60), "city": ["north", "south"] * 30})
    model = fit(tiny_regressor(), table, table["a"].to_numpy())
    with pytest.raises(ValueError, match=r"does not support categorical columns.*Pipeline"):
        to_onnx(model, table.head())


def test_unfitted_model_raises_not_fitted_error():
    with pytest.raises(NotFittedError):
        to_onnx(TorchMLPRegressor())
    with pytest.raises(NotFittedError):
        to_onnx(make_pipeline(StandardScaler(), TorchMLPRegressor()))


@pytest.mark.parametrize("model", [nn.Linear(3, 1), "model.pkl", None])
def test_object_that_is_not_an_estimator_raises_type_error(model):
    with pytest.raises(TypeError, match="exports a fitted TorchMLPRegressor"):
        to_onnx(model)


def test_pipeline_fitted_on_a_dataframe_needs_sample_rows(mixed_table):
    table, y = mixed_table
    pipeline = fit(make_pipeline(make_tabular_preprocessor(), tiny_regressor()), table, y)
    with pytest.raises(ValueError, match="pass X, a few rows of it"):
        to_onnx(pipeline)


@pytest.mark.parametrize(
    "params, message",
    [({"dtype": np.float16}, "dtype must be"), ({"target_opset": 12}, "at least 13")],
)
def test_bad_export_options_raise_value_error(tabular_data, params, message):
    X, y, _ = tabular_data
    model = fit(tiny_regressor(max_epochs=1), X, y)
    with pytest.raises(ValueError, match=message):
        to_onnx(model, **params)
