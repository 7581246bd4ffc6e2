"""Per-column rescaling of inputs and targets inside the estimator."""

import numpy as np
from sklearn.preprocessing import QuantileTransformer

# Rows transformed at a time, so a large data set is never held twice in float64.
_CHUNK_ROWS = 65_536


class ColumnStandardizer:
    """Zero mean and unit variance per column, learned from (weighted) training data.

    Networks train best when inputs and targets are of unit scale; doing this
    inside the estimator means targets in dollars or millions train like targets
    near one, and predictions are mapped back exactly. Plain numpy, so it pickles
    anywhere.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_columns)
        Training data.
    sample_weight : ndarray of shape (n_samples,) or None
        Weights for the mean and variance; None weighs samples equally.

    Attributes
    ----------
    mean_ : ndarray of shape (n_columns,)
    scale_ : ndarray of shape (n_columns,)
        Standard deviation; 0 for a constant column, which is then only centered
        (and an output that was constant is predicted as that constant).
    """

    def __init__(self, values, sample_weight=None):
        weights = np.ones(len(values)) if sample_weight is None else np.asarray(sample_weight)
        total = weights.sum()
        # Two passes over row chunks, accumulating in float64: no float64 copy of the data.
        self.mean_ = (
            sum(
                weights[rows] @ np.asarray(values[rows], dtype=np.float64)
                for rows in _chunks(values)
            )
            / total
        )
        variance = (
            sum(
                weights[rows] @ (np.asarray(values[rows], dtype=np.float64) - self.mean_) ** 2
                for rows in _chunks(values)
            )
            / total
        )
        scale = np.sqrt(variance)
        # Variation below float32's resolution at the column's magnitude is rounding noise;
        # relative to the mean only, so targets in small units (1e-7) are not taken as constant.
        tiny = 10 * np.finfo(np.float32).eps * np.abs(self.mean_)
        self.scale_ = np.where(scale > tiny, scale, 0.0)

    def transform(self, values, dtype=np.float32, copy=True):
        """Standardize ``values``; with ``copy=False`` and a matching dtype, in place.

        Returns
        -------
        ndarray of shape (n_samples, n_columns), C-ordered, of ``dtype``
        """
        values = (np.array if copy else np.asarray)(values, dtype=dtype, order="C")
        values -= self.mean_.astype(dtype)
        values /= np.where(self.scale_ > 0, self.scale_, 1.0).astype(dtype)
        return values

    def inverse_transform(self, values):
        """Map standardized values back to the original units, in float64."""
        return np.asarray(values, dtype=np.float64) * self.scale_ + self.mean_


class QuantileNormalizer:
    """Map each input column through its empirical CDF onto a standard normal.

    Skewed columns (counts, incomes, prices) and rare indicator columns come out
    bounded and evenly spread, which suits neural networks better than a linear
    rescaling that leaves outliers far out. A thin wrapper of scikit-learn's
    :class:`~sklearn.preprocessing.QuantileTransformer` that transforms in chunks.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_columns)
        Training data.
    sample_weight : ndarray of shape (n_samples,) or None
        Weights of the rows in the quantiles (see :func:`weighted_quantiles`); rows
        with zero weight are left out. None, or equal weights, gives scikit-learn's
        quantiles.
    random_state : int
        Seeds the subsample (at most 10,000 rows) the quantiles are computed on.
    """

    def __init__(self, values, sample_weight=None, random_state=0):
        if sample_weight is not None:
            positive = sample_weight > 0
            values, sample_weight = values[positive], sample_weight[positive]
        self.transformer_ = QuantileTransformer(
            n_quantiles=min(1000, len(values)),
            output_distribution="normal",
            random_state=random_state,
        )
        if sample_weight is None or np.all(sample_weight == sample_weight[0]):
            self.transformer_.fit(values)
            return
        # A uniform subsample of the same size as scikit-learn's, then weighted quantiles in
        # the transformer's own attribute, which its transform (and the ONNX export) read.
        subsample = self.transformer_.subsample
        if len(values) > subsample:
            rows = np.random.RandomState(random_state).choice(len(values), subsample, replace=False)
            values, sample_weight = values[rows], sample_weight[rows]
        self.transformer_.fit(values)
        self.transformer_.quantiles_ = weighted_quantiles(
            values, sample_weight, self.transformer_.references_
        )

    def transform(self, values, dtype=np.float32, copy=True):
        """Transform ``values``; with ``copy=False`` and a matching dtype, in place.

        Values are rounded to float32 first, and transformed in float32, exactly as the
        training data were. In float64, a value repeated in the training data (an integer
        column after standardization, a shared coordinate) would differ from its float32
        rounding in the quantiles, and fall at the edge of its run of equal quantiles
        instead of the middle: a jump in the prediction for an input change of 1e-8.

        Returns
        -------
        ndarray of shape (n_samples, n_columns), C-ordered, of ``dtype``
        """
        in_place = not copy and values.dtype == dtype and values.flags.c_contiguous
        out = values if in_place and values.flags.writeable else np.empty(values.shape, dtype)
        largest = float(np.finfo(np.float32).max)
        for rows in _chunks(values):
            chunk = values[rows]
            if chunk.dtype != np.float32:
                # Beyond float32's range a value rounds to inf, which the transformation
                # refuses; clipped back to the largest float32, it maps to the end of the
                # training range, as any value beyond the training data does.
                with np.errstate(over="ignore"):
                    chunk = chunk.astype(np.float32)
                np.clip(chunk, -largest, largest, out=chunk)
            out[rows] = self.transformer_.transform(chunk)
        return out


def weighted_quantiles(values, sample_weight, references):
    """Quantiles of each column in which every row counts in proportion to its weight.

    Each column's sorted values are placed at the middle of their share of the
    total weight, rescaled so that the smallest value is at 0 and the largest at 1,
    and the quantile function interpolates linearly between them. With equal
    weights the values sit at ``i / (n - 1)``: NumPy's default (linear) percentiles,
    which scikit-learn's :class:`~sklearn.preprocessing.QuantileTransformer` uses.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_columns)
    sample_weight : ndarray of shape (n_samples,)
        Positive weights.
    references : ndarray of shape (n_quantiles,)
        Probabilities in [0, 1], increasing.

    Returns
    -------
    ndarray of shape (n_quantiles, n_columns), float64
    """
    quantiles = np.empty((len(references), values.shape[1]))
    for column in range(values.shape[1]):
        order = np.argsort(values[:, column], kind="stable")
        weight = sample_weight[order]
        middle = np.cumsum(weight) - weight / 2
        span = middle[-1] - middle[0]
        position = (middle - middle[0]) / span if span > 0 else np.zeros(len(middle))
        quantiles[:, column] = np.interp(references, position, values[order, column])
    return quantiles


def make_input_transformer(kind, values, sample_weight=None, random_state=0):
    """Fit the input transformation named by ``input_transform``; None for "none"."""
    if kind == "quantile":
        return QuantileNormalizer(values, sample_weight, random_state)
    if kind == "standard":
        return ColumnStandardizer(values, sample_weight)
    return None


def _chunks(values):
    """Row slices of at most ``_CHUNK_ROWS`` rows covering ``values``."""
    return [slice(start, start + _CHUNK_ROWS) for start in range(0, len(values), _CHUNK_ROWS)]
