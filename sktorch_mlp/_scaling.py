"""Per-column standardization of inputs and targets inside the estimator."""

import numpy as np


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
        values = np.asarray(values, dtype=np.float64)
        self.mean_ = np.average(values, axis=0, weights=sample_weight)
        variance = np.average((values - self.mean_) ** 2, axis=0, weights=sample_weight)
        scale = np.sqrt(variance)
        tiny = 10 * np.finfo(np.float32).eps * np.maximum(np.abs(self.mean_), 1.0)
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
