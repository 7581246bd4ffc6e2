"""Export a fitted regressor, alone or in a scikit-learn pipeline, to ONNX for serving.

The exported graph reproduces :meth:`TorchMLPRegressor.predict` (input transformation,
network, target scaling) with standard ONNX operators, so onnxruntime can run it
without torch or this package. Needs the ``onnx`` extra (onnx, skl2onnx; onnxruntime
to run the graph), imported only when a function here is called.
"""

import copy
from itertools import count

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import BaseEstimator
from sklearn.impute import SimpleImputer
from sklearn.preprocessing._data import BOUNDS_THRESHOLD
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._network.embeddings import PeriodicEmbedding, PiecewiseLinearEmbedding
from ._network.ensembling import EnsembleLinear
from ._regressor import TorchMLPRegressor
from ._scaling import ColumnStandardizer, QuantileNormalizer

__all__ = ["register_converter", "to_onnx"]

# Every operator used here has had its current semantics since opset 13 (Unsqueeze and
# ReduceSum take their axes as inputs). Opset 17 graphs run in onnxruntime 1.17, the
# oldest version the onnx extra allows.
_MIN_OPSET = 13
_DEFAULT_OPSET = 17
_SKL2ONNX_ALIAS = "SktorchMlpTorchMLPRegressor"

# Wichura's algorithm AS 241 (PPND16), the inverse normal CDF to about 1e-16 relative:
# ONNX has no erfinv. Coefficients from lowest to highest degree; each pair is a
# numerator and a denominator, for |p - 0.5| <= 0.425, then the tails r <= 5 and r > 5.
_PPF_CENTRAL = (
    (
        3.3871328727963666080e0,
        1.3314166789178437745e2,
        1.9715909503065514427e3,
        1.3731693765509461125e4,
        4.5921953931549871457e4,
        6.7265770927008700853e4,
        3.3430575583588128105e4,
        2.5090809287301226727e3,
    ),
    (
        1.0,
        4.2313330701600911252e1,
        6.8718700749205790830e2,
        5.3941960214247511077e3,
        2.1213794301586595867e4,
        3.9307895800092710610e4,
        2.8729085735721942674e4,
        5.2264952788528545610e3,
    ),
)
_PPF_NEAR_TAIL = (
    (
        1.42343711074968357734e0,
        4.63033784615654529590e0,
        5.76949722146069140550e0,
        3.64784832476320460504e0,
        1.27045825245236838258e0,
        2.41780725177450611770e-1,
        2.27238449892691845833e-2,
        7.74545014278341407640e-4,
    ),
    (
        1.0,
        2.05319162663775882187e0,
        1.67638483018380384940e0,
        6.89767334985100004550e-1,
        1.48103976427480074590e-1,
        1.51986665636164571966e-2,
        5.47593808499534494600e-4,
        1.05075007164441684324e-9,
    ),
)
_PPF_FAR_TAIL = (
    (
        6.65790464350110377720e0,
        5.46378491116411436990e0,
        1.78482653991729133580e0,
        2.96560571828504891230e-1,
        2.65321895265761230930e-2,
        1.24266094738807843860e-3,
        2.71155556874348757815e-5,
        2.01033439929228813265e-7,
    ),
    (
        1.0,
        5.99832206555887937690e-1,
        1.36929880922735805310e-1,
        1.48753612908506148525e-2,
        7.86869131145613259100e-4,
        1.84631831751005468180e-5,
        1.42151175831644588870e-7,
        2.04426310338993978564e-15,
    ),
)


def to_onnx(model, X=None, *, dtype=np.float64, target_opset=None):
    """Export a fitted model to an ONNX graph that predicts like ``model.predict``.

    A :class:`~sktorch_mlp.TorchMLPRegressor` is written directly. Any other
    scikit-learn estimator, typically a :class:`~sklearn.pipeline.Pipeline` whose
    last step is a ``TorchMLPRegressor``, is converted by skl2onnx, with
    :func:`register_converter` called first.

    Parameters
    ----------
    model : TorchMLPRegressor or scikit-learn estimator
        The fitted model.
    X : DataFrame or array-like of shape (n_samples, n_features), default=None
        A few rows of the data ``model`` was fitted on, which name and type the
        graph's inputs; needed for a model fitted on a DataFrame, ignored for a
        ``TorchMLPRegressor``. A DataFrame gives one input per column, named
        after it, of shape (n_samples, 1): numeric columns of ``dtype``, all
        others strings. Otherwise the graph has one input ``"X"`` of ``dtype``
        and shape (n_samples, ``n_features_in_``).
    dtype : {np.float64, np.float32}, default=np.float64
        Floating type of the numeric inputs, of the computation and of the
        output. float64 reproduces ``predict`` to rounding (about 1e-15 of the
        predictions' scale). float32 runs faster, differs from ``predict`` on
        the same float32 inputs by about 1e-6 of that scale, but see Notes.
    target_opset : int >= 13, default=None
        ONNX opset of the graph; None uses 17, which onnxruntime 1.17 (the
        oldest the ``onnx`` extra allows) and later run.

    Returns
    -------
    onnx.ModelProto
        The graph. Its output ``"variable"`` has ``predict``'s shape for a
        ``TorchMLPRegressor``: (n_samples,) when the training target was 1-D,
        otherwise (n_samples, n_outputs). Graphs made by skl2onnx keep its
        convention for regressors, (n_samples, n_outputs) in every case.

    Raises
    ------
    TypeError
        If ``model`` is not a scikit-learn estimator.
    sklearn.exceptions.NotFittedError
        If ``model`` is not fitted.

    See Also
    --------
    register_converter : Let :func:`skl2onnx.to_onnx` convert pipelines that end in
        a ``TorchMLPRegressor``.

    Notes
    -----
    The graph uses only standard ONNX operators (and ai.onnx.ml ones where
    skl2onnx's converters use them): the quantile input transformation is written
    out as binary searches over the fitted quantiles and an inverse normal CDF
    (Wichura's AS 241), computed in float64 whatever ``dtype`` says.

    With ``input_transform="quantile"``, a value repeated in the training data
    (a count, a category code) maps to the middle of its run of equal quantiles,
    and a value next to it to an end of the run, so predictions jump there. The
    quantiles are fitted on the training data rounded to float32: a float64 input
    such as a standardized integer column lands next to its run, while the same
    input rounded to float32 lands on it. On such columns a float32 graph, and a
    pipeline whose transformers skl2onnx computes in float32, can differ from
    ``predict`` on float64 data by a sizeable fraction of the target's spread;
    keep ``dtype=np.float64`` there.

    Examples
    --------
    >>> import pytest
    >>> ort = pytest.importorskip("onnxruntime")  # pip install "sktorch-mlp[onnx]"
    >>> import numpy as np
    >>> from sklearn.datasets import make_regression
    >>> from sktorch_mlp import TorchMLPRegressor
    >>> from sktorch_mlp.onnx import to_onnx
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    >>> model = TorchMLPRegressor(hidden_layer_sizes=(32,), max_epochs=5,
    ...                           random_state=0).fit(X, y)
    >>> session = ort.InferenceSession(to_onnx(model).SerializeToString())
    >>> y_onnx = session.run(None, {"X": X})[0]
    >>> bool(np.allclose(y_onnx, model.predict(X), rtol=1e-10))
    True
    """
    if not isinstance(model, BaseEstimator):
        raise TypeError(
            "to_onnx exports a fitted TorchMLPRegressor or a scikit-learn estimator "
            f"containing one, such as a Pipeline; got {type(model).__name__}."
        )
    check_is_fitted(model)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype}.")
    target_opset = _DEFAULT_OPSET if target_opset is None else target_opset
    if target_opset < _MIN_OPSET:
        raise ValueError(f"target_opset must be at least {_MIN_OPSET}, got {target_opset}.")
    if isinstance(model, TorchMLPRegressor):
        return _estimator_model(model, dtype, target_opset)
    import skl2onnx

    register_converter()
    return skl2onnx.to_onnx(
        model, initial_types=_initial_types(model, X, dtype), target_opset=target_opset
    )


def register_converter():
    """Teach skl2onnx to convert :class:`~sktorch_mlp.TorchMLPRegressor`.

    After this call, :func:`skl2onnx.to_onnx` and :func:`skl2onnx.convert_sklearn`
    convert pipelines and other scikit-learn models containing a
    ``TorchMLPRegressor``. Its output is named ``"variable"``, has shape
    (n_samples, n_outputs), like skl2onnx's regressors, and is computed in the
    floating type of its input. Calling it again changes nothing.

    It also extends skl2onnx's converter of :class:`~sklearn.impute.SimpleImputer`
    (with NaN as missing value) to float64 inputs, which skl2onnx imputes with an
    operator that onnxruntime runs only in float32, and to string inputs, where
    ``"nan"`` (what ``astype(str)`` makes of a missing value) is missing. Other
    imputers convert as before.

    Examples
    --------
    >>> import pytest
    >>> skl2onnx = pytest.importorskip("skl2onnx")
    >>> from sktorch_mlp.onnx import register_converter
    >>> register_converter()
    """
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes

    update_registered_converter(
        TorchMLPRegressor, _SKL2ONNX_ALIAS, _skl2onnx_output_shape, _skl2onnx_convert
    )
    update_registered_converter(
        SimpleImputer,
        "SklearnSimpleImputer",
        calculate_sklearn_imputer_output_shapes,
        _skl2onnx_convert_imputer,
    )


def _estimator_model(model, dtype, target_opset):
    """A standalone ONNX model for a fitted ``TorchMLPRegressor``."""
    import onnx
    from onnx import helper

    from . import __version__

    graph = _GraphBuilder(dtype)
    y = _emit_prediction(graph, model, "X")
    if model._target_ndim == 1:
        y = graph.node("Reshape", y, graph.constant(np.array([-1])))
    graph.node("Identity", y, output="variable")
    elem_type = _tensor_type(dtype)
    n_samples = "n_samples"
    output_shape = [n_samples] if model._target_ndim == 1 else [n_samples, model.n_outputs_]
    nodes, initializers = graph.to_protos()
    opsets = [helper.make_opsetid("", target_opset)]
    onnx_model = helper.make_model(
        helper.make_graph(
            nodes,
            "TorchMLPRegressor",
            [helper.make_tensor_value_info("X", elem_type, [n_samples, model.n_features_in_])],
            [helper.make_tensor_value_info("variable", elem_type, output_shape)],
            initializer=initializers,
        ),
        opset_imports=opsets,
        # The oldest IR version for the opset: newer ones are refused by older onnxruntime.
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="sktorch_mlp",
        producer_version=__version__,
    )
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def _initial_types(model, X, dtype):
    """skl2onnx's ``initial_types``: the graph inputs that ``X`` or ``model`` imply."""
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        StringTensorType,
    )

    numeric_type = DoubleTensorType if dtype == np.float64 else FloatTensorType
    if X is None and hasattr(model, "feature_names_in_"):
        raise ValueError(
            f"{type(model).__name__} was fitted on a DataFrame: pass X, a few rows of it, "
            "to name and type the inputs of the ONNX graph."
        )
    if hasattr(X, "columns"):
        return [
            (
                str(name),
                (
                    numeric_type([None, 1])
                    if pd.api.types.is_numeric_dtype(column_dtype)
                    else StringTensorType([None, 1])
                ),
            )
            for name, column_dtype in X.dtypes.items()
        ]
    n_features = np.shape(X)[1] if X is not None else getattr(model, "n_features_in_", None)
    if n_features is None:
        raise ValueError(
            f"Pass X, a few rows of the data {type(model).__name__} was fitted on, "
            "to give the number of inputs of the ONNX graph."
        )
    return [("X", numeric_type([None, n_features]))]


def _skl2onnx_output_shape(operator):
    """skl2onnx shape calculator: (n_samples, n_outputs), in the input's type."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from skl2onnx.common.utils import check_input_and_output_types

    check_input_and_output_types(operator, good_input_types=[FloatTensorType, DoubleTensorType])
    input_type = operator.inputs[0].type
    n_samples = input_type.shape[0]
    operator.outputs[0].type = type(input_type)([n_samples, operator.raw_operator.n_outputs_])


def _skl2onnx_convert(scope, operator, container):
    """skl2onnx converter: the estimator's nodes, added to skl2onnx's container."""
    from skl2onnx.common.data_types import DoubleTensorType

    if container.target_opset < _MIN_OPSET:
        raise RuntimeError(
            f"TorchMLPRegressor needs target_opset {_MIN_OPSET} or more, "
            f"not {container.target_opset}."
        )
    is_double = isinstance(operator.inputs[0].type, DoubleTensorType)
    graph = _GraphBuilder(np.float64 if is_double else np.float32, scope.get_unique_variable_name)
    y = _emit_prediction(graph, operator.raw_operator, operator.inputs[0].full_name)
    graph.node("Identity", y, output=operator.outputs[0].full_name)
    graph.add_to(scope, container)


def _skl2onnx_convert_imputer(scope, operator, container):
    """skl2onnx's ``SimpleImputer`` converter, extended to float64 and string inputs.

    With NaN as the missing value, skl2onnx emits ai.onnx.ml's Imputer, which
    onnxruntime runs in float32 only, with the statistics rounded to float32, and
    refuses strings. Here float64 values are imputed where they are NaN, and strings
    where they are ``"nan"`` (what ``astype(str)`` makes of a missing value), with
    standard operators; other cases go to skl2onnx's converter.
    """
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    imputer = operator.raw_operator
    input_type = operator.inputs[0].type
    if (
        not isinstance(input_type, (DoubleTensorType, StringTensorType))
        or not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values))
        or imputer.add_indicator
        # All-missing training columns are dropped, unless keep_empty_features.
        or pd.isna(imputer.statistics_).any()
    ):
        return convert_sklearn_imputer(scope, operator, container)
    graph = _GraphBuilder(np.float64, scope.get_unique_variable_name)
    names = [variable.full_name for variable in operator.inputs]
    X = names[0] if len(names) == 1 else graph.node("Concat", *names, axis=1)
    if isinstance(input_type, StringTensorType):
        # Equal takes strings from opset 19 only; skl2onnx's string imputer does the same.
        is_missing = graph.node(
            "LabelEncoder",
            X,
            op_domain="ai.onnx.ml",
            op_version=2,
            keys_strings=["nan"],
            values_int64s=[1],
            default_int64=0,
        )
        is_missing = graph.node("Cast", is_missing, to=_tensor_type(bool))
    else:
        is_missing = graph.node("IsNaN", X)
    statistics = graph.constant(imputer.statistics_)
    graph.node("Where", is_missing, statistics, X, output=operator.outputs[0].full_name)
    graph.add_to(scope, container)


class _GraphBuilder:
    """Nodes and constants of a graph under construction, computing in one floating type.

    Parameters
    ----------
    dtype : np.float32 or np.float64
        Type of every floating constant.
    unique_name : callable, default=None
        Maps a prefix to a name not yet used in the graph; None numbers names.
    """

    def __init__(self, dtype, unique_name=None):
        self.dtype = np.dtype(dtype)
        numbers = count()
        self._unique_name = unique_name or (lambda prefix: f"{prefix}_{next(numbers)}")
        self.nodes = []
        self.constants = []

    def in_dtype(self, dtype):
        """The same graph, with floating constants of ``dtype``."""
        view = copy.copy(self)
        view.dtype = np.dtype(dtype)
        return view

    def constant(self, value):
        """Name of a new constant: floats in the graph's type, integers as int64."""
        value = np.asarray(value)
        if value.dtype.kind in "fiub":
            value = value.astype(self.dtype if value.dtype.kind == "f" else np.int64)
        else:  # strings
            value = value.astype(str).astype(object)
        name = self._unique_name("const")
        self.constants.append((name, value))
        return name

    def node(self, op_type, *inputs, output=None, **attrs):
        """Add an ``op_type`` node on ``inputs`` and return the name of its output."""
        output = output or self._unique_name(op_type.lower())
        self.nodes.append((op_type, list(inputs), output, attrs))
        return output

    def add_to(self, scope, container):
        """Add the nodes and constants to a skl2onnx converter's container."""
        from onnx import numpy_helper

        for name, value in self.constants:
            tensor = numpy_helper.from_array(value, name)
            # skl2onnx copies only raw_data, which string tensors do not use.
            content = value.ravel().tolist() if value.dtype == object else tensor
            container.add_initializer(name, tensor.data_type, list(value.shape), content)
        for op_type, inputs, output, attrs in self.nodes:
            container.add_node(
                op_type, inputs, [output], name=scope.get_unique_operator_name(op_type), **attrs
            )

    def to_protos(self):
        """The graph's ``NodeProto`` and initializer ``TensorProto`` lists."""
        from onnx import helper, numpy_helper

        nodes = [
            helper.make_node(op_type, inputs, [output], name=output, **attrs)
            for op_type, inputs, output, attrs in self.nodes
        ]
        initializers = [numpy_helper.from_array(value, name) for name, value in self.constants]
        return nodes, initializers


def _tensor_type(dtype):
    """ONNX's element type for a numpy dtype."""
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _emit_prediction(graph, model, X):
    """``model.predict`` on the input named ``X``, as (n_samples, n_outputs)."""
    if getattr(model, "_categorical_columns", None) is not None:
        raise ValueError(
            "ONNX export does not support categorical columns embedded by the model "
            f"(is_categorical_ marks {int(model.is_categorical_.sum())}); fit a Pipeline that "
            "one-hot encodes them (a OneHotEncoder in a ColumnTransformer) before a "
            "TorchMLPRegressor with categorical_features=None, and export the Pipeline."
        )
    missing_values = getattr(model, "_missing_values", None)
    if missing_values is not None:
        X = _emit_missing_values(graph, missing_values, X)
    transformer = model._input_transformer
    if isinstance(transformer, QuantileNormalizer):
        # QuantileNormalizer rounds the inputs to float32 and lets scikit-learn transform them
        # in float32, as in training; the graph follows it step by step, in float64 where
        # scikit-learn computes in float64.
        X32 = graph.node("Cast", X, to=_tensor_type(np.float32))
        X = _emit_quantile_normalization(graph.in_dtype(np.float64), transformer.transformer_, X32)
        X = graph.node("Cast", X, to=_tensor_type(graph.dtype))
    elif isinstance(transformer, ColumnStandardizer):
        X = _emit_standardization(graph, transformer, X)
    elif transformer is not None:
        raise NotImplementedError(f"No ONNX export for the input transformer {transformer!r}.")
    y = _emit_network(graph, model.net_.module_, X)
    target = model._target_standardizer
    return graph.node(
        "Add", graph.node("Mul", y, graph.constant(target.scale_)), graph.constant(target.mean_)
    )


def _emit_standardization(graph, standardizer, X):
    """``ColumnStandardizer.transform``: constant columns are only centered."""
    scale = np.where(standardizer.scale_ > 0, standardizer.scale_, 1.0)
    centered = graph.node("Sub", X, graph.constant(standardizer.mean_))
    return graph.node("Div", centered, graph.constant(scale))


def _emit_quantile_normalization(graph, transformer, X32):
    """``QuantileTransformer(output_distribution="normal").transform`` of float32 ``X32``.

    Step by step as scikit-learn computes it on a float32 array: bounds tested in float32,
    interpolation in float64, the probability and the result stored in float32. Returns
    float64 values (``graph`` is float64).
    """
    float32, float64 = _tensor_type(np.float32), _tensor_type(np.float64)

    def rounded_to_float32(name):
        return graph.node("Cast", graph.node("Cast", name, to=float32), to=float64)

    X = graph.node("Cast", X32, to=float64)
    # Quantiles are non-decreasing up to rounding in np.percentile; the binary search
    # below needs them sorted, which np.interp assumes too.
    quantiles = np.maximum.accumulate(transformer.quantiles_, axis=0)
    references = transformer.references_
    # The mean of interpolations on the ascending and the reversed tables, as in
    # scikit-learn, maps a repeated quantile to the middle of its references.
    ascending = _emit_interp(graph, X, quantiles, references)
    descending = _emit_interp(graph, graph.node("Neg", X), -quantiles[::-1], -references[::-1])
    p = graph.node("Mul", graph.constant(0.5), graph.node("Sub", ascending, descending))
    # X -/+ BOUNDS_THRESHOLD is a float32 operation in numpy (the threshold is a Python float),
    # then compared with the float64 quantile.
    threshold = graph.in_dtype(np.float32).constant(BOUNDS_THRESHOLD)
    shifted_down = graph.node("Cast", graph.node("Sub", X32, threshold), to=float64)
    shifted_up = graph.node("Cast", graph.node("Add", X32, threshold), to=float64)
    below = graph.node("Less", shifted_down, graph.constant(quantiles[0]))
    above = graph.node("Greater", shifted_up, graph.constant(quantiles[-1]))
    # scikit-learn sets the upper bound first, so the lower one wins where both apply.
    zero, one = graph.constant(0.0), graph.constant(1.0)
    p = graph.node("Where", below, zero, graph.node("Where", above, one, p))
    p = rounded_to_float32(p)  # stored in the float32 column before the normal quantile
    clip_min = norm.ppf(BOUNDS_THRESHOLD - np.spacing(1))
    clip_max = norm.ppf(1 - (BOUNDS_THRESHOLD - np.spacing(1)))
    z = graph.node(
        "Min",
        graph.node("Max", _emit_normal_ppf(graph, p), graph.constant(clip_min)),
        graph.constant(clip_max),
    )
    # ppf(0) and ppf(1) are infinite, which the clip above maps to its bounds.
    z = graph.node("Where", graph.node("Equal", p, zero), graph.constant(clip_min), z)
    z = graph.node("Where", graph.node("Equal", p, one), graph.constant(clip_max), z)
    # scikit-learn passes NaN through, where the comparisons above would make it the median.
    return rounded_to_float32(graph.node("Where", graph.node("IsNaN", X), X, z))


def _emit_interp(graph, x, xp, fp):
    """``np.interp(x[:, j], xp[:, j], fp)`` for every column ``j`` of ``x``.

    ``xp`` has shape (n_points, n_columns), sorted in each column, and ``fp`` shape
    (n_points,). Reproduces numpy's arithmetic: with ``j`` the last point at or
    below ``x``, ``slope[j] * (x - xp[j]) + fp[j]``, and ``fp[0]`` or ``fp[-1]``
    outside the points. Repeated points are never the ``j``, ``j + 1`` pair.
    """
    if len(xp) == 1:  # a single point: repeating it keeps np.interp's result
        xp, fp = np.repeat(xp, 2, axis=0), np.repeat(fp, 2)
    n_points, n_columns = xp.shape
    # Binary search for the number of points <= x, in halving steps on a table
    # padded with +inf to a power of two: log2(n_points) gathers, not n_points compares.
    n_steps = int(n_points).bit_length()
    padded = np.full((2**n_steps, n_columns), np.inf)
    padded[:n_points] = xp
    column_start = np.arange(n_columns) * 2**n_steps
    table = graph.constant(padded.T.ravel())
    n_below = graph.constant(0)
    for step in 2 ** np.arange(n_steps - 1, -1, -1):
        candidate = graph.node("Add", n_below, graph.constant(step))
        point = graph.node(
            "Gather", table, graph.node("Add", candidate, graph.constant(column_start - 1))
        )
        n_below = graph.node("Where", graph.node("LessOrEqual", point, x), candidate, n_below)
    index = graph.node(
        "Min",
        graph.node("Max", graph.node("Sub", n_below, graph.constant(1)), graph.constant(0)),
        graph.constant(n_points - 2),
    )
    with np.errstate(divide="ignore", invalid="ignore"):  # repeated points: never used
        slopes = np.diff(fp)[:, None] / np.diff(xp, axis=0)
    flat_index = graph.node("Add", index, graph.constant(np.arange(n_columns) * (n_points - 1)))
    slope = graph.node("Gather", graph.constant(slopes.T.ravel()), flat_index)
    start = graph.node("Gather", graph.constant(xp[:-1].T.ravel()), flat_index)
    offset = graph.node("Gather", graph.constant(fp), index)
    inside = graph.node("Add", graph.node("Mul", slope, graph.node("Sub", x, start)), offset)
    left = graph.node("Equal", n_below, graph.constant(0))
    right = graph.node("Equal", n_below, graph.constant(n_points))
    inside = graph.node("Where", right, graph.constant(fp[-1]), inside)
    return graph.node("Where", left, graph.constant(fp[0]), inside)


def _emit_normal_ppf(graph, p):
    """Inverse standard normal CDF for 0 < p < 1 (Wichura's AS 241)."""
    q = graph.node("Sub", p, graph.constant(0.5))
    r = graph.node("Sub", graph.constant(0.180625), graph.node("Mul", q, q))
    central = graph.node("Mul", q, _emit_ratio(graph, _PPF_CENTRAL, r))
    is_lower = graph.node("Less", q, graph.constant(0.0))
    tail_p = graph.node("Where", is_lower, p, graph.node("Sub", graph.constant(1.0), p))
    r = graph.node("Sqrt", graph.node("Neg", graph.node("Log", tail_p)))
    near = _emit_ratio(graph, _PPF_NEAR_TAIL, graph.node("Sub", r, graph.constant(1.6)))
    far = _emit_ratio(graph, _PPF_FAR_TAIL, graph.node("Sub", r, graph.constant(5.0)))
    tail = graph.node("Where", graph.node("LessOrEqual", r, graph.constant(5.0)), near, far)
    tail = graph.node("Where", is_lower, graph.node("Neg", tail), tail)
    is_central = graph.node("LessOrEqual", graph.node("Abs", q), graph.constant(0.425))
    return graph.node("Where", is_central, central, tail)


def _emit_ratio(graph, coefficients, x):
    """Ratio of two polynomials in ``x``, each evaluated by Horner's rule."""
    numerator, denominator = (_emit_polynomial(graph, c, x) for c in coefficients)
    return graph.node("Div", numerator, denominator)


def _emit_polynomial(graph, coefficients, x):
    total = graph.constant(coefficients[-1])
    for coefficient in coefficients[-2::-1]:
        total = graph.node("Add", graph.node("Mul", total, x), graph.constant(coefficient))
    return total


def _emit_missing_values(graph, missing_values, X):
    """NaN replaced by the training medians, then the indicator columns: ``MissingValues``."""
    is_missing = graph.node("IsNaN", X)
    filled = graph.node("Where", is_missing, graph.constant(missing_values.medians), X)
    if not missing_values.n_indicators:
        return filled
    flags = graph.node(
        "Gather", is_missing, graph.constant(missing_values.indicated.tolist()), axis=1
    )
    indicators = graph.node("Cast", flags, to=_tensor_type(graph.dtype))
    return graph.node("Concat", filled, indicators, axis=1)


def _emit_network(graph, module, X):
    """``MLP.forward`` in evaluation mode: members of an ensemble are averaged."""
    X = _emit_layer(graph, module.embedding, X)
    if module.member_scale is not None:
        # Shared members: each scales the features, (n_members, n_samples, width); the shared
        # layers' MatMul broadcasts over the members.
        X = graph.node("Mul", X, graph.constant(_as_array(module.member_scale)))
    for layer in [*module.hidden, module.output]:
        X = _emit_layer(graph, layer, X)
    if module.ensemble_size > 1:
        total = graph.node("ReduceSum", X, graph.constant([0]), keepdims=0)
        X = graph.node("Div", total, graph.constant(float(module.ensemble_size)))
    return X


def _emit_layer(graph, layer, X):
    """One layer of ``MLP``, on (n_samples, width) or (n_members, n_samples, width)."""
    if isinstance(layer, (nn.Identity, nn.Dropout)):  # dropout is off when predicting
        return X
    if isinstance(layer, nn.ReLU):
        return graph.node("Relu", X)
    if isinstance(layer, PeriodicEmbedding):
        return _emit_feature_embedding(graph, layer, X, _emit_periodic_features)
    if isinstance(layer, PiecewiseLinearEmbedding):
        return _emit_feature_embedding(graph, layer, X, _emit_piecewise_features)
    if isinstance(layer, (nn.Linear, EnsembleLinear)):
        weight = _as_array(layer.weight)
        # nn.Linear stores (out, in); EnsembleLinear (members, in, out), which MatMul
        # broadcasts over the members of a 2-D input.
        weight = weight.T if isinstance(layer, nn.Linear) else weight
        product = graph.node("MatMul", X, graph.constant(weight))
        return graph.node("Add", product, graph.constant(_as_array(layer.bias)))
    raise NotImplementedError(f"No ONNX export for the layer {layer!r}.")


def _emit_feature_embedding(graph, embedding, X, emit_features):
    """A feature embedding's forward: (n_samples, n_features) to (n_samples, out_features)."""
    passthrough = embedding.passthrough.tolist()
    if not passthrough:
        return emit_features(graph, embedding, X)
    parts = []
    if len(embedding.embedded):
        embedded = graph.node("Gather", X, graph.constant(embedding.embedded.tolist()), axis=1)
        parts.append(emit_features(graph, embedding, embedded))
    if embedding.groups is None:
        parts.append(graph.node("Gather", X, graph.constant(passthrough), axis=1))
    else:
        # The groups' vectors: the columns as 0/1 indicators, times the block matrix.
        grouped = graph.node("Gather", X, graph.constant(embedding.grouped.tolist()), axis=1)
        indicators = graph.node(
            "Mul",
            graph.node("Sub", grouped, graph.constant(_as_array(embedding.group_low))),
            graph.constant(_as_array(embedding.group_scale)),
        )
        product = graph.node(
            "MatMul", indicators, graph.constant(_as_array(embedding.group_matrix()))
        )
        bias = _as_array(embedding.group_bias).reshape(-1)
        parts.append(graph.node("Add", product, graph.constant(bias)))
    return parts[0] if len(parts) == 1 else graph.node("Concat", *parts, axis=1)


def _emit_per_feature_product(graph, values, weight):
    """einsum("nfk,fkd->nfd", values, weight) as a MatMul batched over the features."""
    by_feature = graph.node("Transpose", values, perm=[1, 0, 2])
    product = graph.node("MatMul", by_feature, graph.constant(_as_array(weight)))
    return graph.node("Transpose", product, perm=[1, 0, 2])


def _emit_piecewise_features(graph, embedding, X):
    """``PiecewiseLinearEmbedding._embed``: the linear term plus the map of the encoding."""
    x = graph.node("Unsqueeze", X, graph.constant([-1]))  # (n, f, 1)
    position = graph.node(
        "Add",
        graph.node("Mul", x, graph.constant(_as_array(embedding.bin_scale))),
        graph.constant(_as_array(embedding.bin_offset)),
    )
    # The module's clamp with per-bin bounds, as a Max and a Min.
    lower = graph.constant(_as_array(embedding.bin_low))
    upper = graph.constant(_as_array(embedding.bin_high))
    encoding = graph.node("Min", graph.node("Max", position, lower), upper)
    piecewise = _emit_per_feature_product(graph, encoding, embedding.weight)
    linear = graph.node(
        "Add",
        graph.node("Mul", x, graph.constant(_as_array(embedding.linear_weight))),
        graph.constant(_as_array(embedding.linear_bias)),
    )
    embedded = graph.node("Add", linear, piecewise)
    width = embedding.weight.shape[0] * embedding.weight.shape[2]
    return graph.node("Reshape", embedded, graph.constant([-1, width]))


def _emit_periodic_features(graph, embedding, X):
    """The periodic part of the embedding, for the features it embeds."""
    # The same product as the module, 2 * pi * frequencies first, rounds the same way.
    frequencies = 2 * np.pi * _as_array(embedding.frequencies)
    angles = graph.node(
        "Mul", graph.constant(frequencies), graph.node("Unsqueeze", X, graph.constant([-1]))
    )
    # cos(a) = 1 - 2 sin(a / 2)**2, to within 1e-16: onnxruntime runs float64 Cos only
    # from version 1.29, float64 Sin in all.
    half_sine = graph.node("Sin", graph.node("Mul", angles, graph.constant(0.5)))
    cosine = graph.node(
        "Sub",
        graph.constant(1.0),
        graph.node("Mul", graph.constant(2.0), graph.node("Mul", half_sine, half_sine)),
    )
    periodic = graph.node("Concat", cosine, graph.node("Sin", angles), axis=-1)
    embedded = _emit_per_feature_product(graph, periodic, embedding.weight)
    embedded = graph.node(
        "Relu", graph.node("Add", embedded, graph.constant(_as_array(embedding.bias)))
    )
    width = embedding.weight.shape[0] * embedding.weight.shape[2]
    return graph.node("Reshape", embedded, graph.constant([-1, width]))


def _as_array(parameter):
    """A float64 copy of a parameter, as ``predict`` uses it."""
    return parameter.detach().cpu().double().numpy()
