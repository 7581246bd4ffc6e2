"""Raw tables in: categorical columns become integer codes, missing numbers are filled and flagged.

``TorchMLPRegressor`` takes a DataFrame as it is. :class:`CategoricalColumns` finds its
categorical columns (``categorical_features``), learns their categories in ``fit`` and
maps them to the codes that the network's :class:`~sktorch_mlp._network.embeddings.
CategoryEmbedding` looks up; :class:`MissingValues` fills missing numbers with the
training median and adds a 0/1 column for each column that had missing values in training.
"""

import numpy as np
import pandas as pd
import scipy.sparse

# Codes 0 and 1 of every column are reserved; a column's categories follow from 2 on.
UNKNOWN_CODE = 0  # a category not seen in training (and a missing value, if training had none)
MISSING_CODE = 1  # a missing value, in a column that had missing values in training
N_RESERVED_CODES = 2

# Values pandas infers for an object column that converts to numbers.
NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "decimal", "boolean", "empty"}


def is_categorical_dtype(values):
    """Whether ``categorical_features="from_dtype"`` takes this pandas column as categorical.

    Columns of pandas ``category`` dtype, and ``object`` or ``string`` columns that do not
    hold numbers.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    return (
        pd.api.types.is_string_dtype(dtype)
        and pd.api.types.infer_dtype(values, skipna=True) not in NUMERIC_INFERRED
    )


class CategoricalColumns:
    """The categorical columns of a table, and the categories each held in training.

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_samples, n_features)
        The training data, as the user passed it.
    indices : list of int
        Positions of the categorical columns, from :func:`resolve`; not empty.

    Attributes
    ----------
    indices : list of int
        Positions of the categorical columns in ``X``.
    names : list of str or None
        Their names, for messages; the positions where ``X`` has no column names.
    categories : list of ndarray
        The categories seen in each, sorted, missing values excluded.
    missing_seen : list of bool
        Whether each had missing values in training: those then have a code of their
        own, ``MISSING_CODE``.
    kinds : list of {"text", "number"}
        What each held in training, so that a column of other values is refused.
    """

    def __init__(self, X, indices):
        X = _as_table(X)
        self.indices = list(indices)
        self.n_features = _n_columns(X)
        self.numeric_positions = sorted(set(range(self.n_features)) - set(self.indices))
        self.names = [_column_name(X, index) for index in self.indices]
        self.categories, self.missing_seen, self.kinds = [], [], []
        for index, name in zip(self.indices, self.names, strict=True):
            values = _column(X, index)
            missing = pd.isna(values)
            if missing.all():
                raise ValueError(
                    f"The categorical column {name} holds only missing values in the "
                    "training data, so it has no categories to learn. Drop the column, or "
                    "fill it."
                )
            kind = _kind(values, name)
            present = values[~missing]
            if isinstance(present.dtype, pd.CategoricalDtype):
                present = present.astype(present.dtype.categories.dtype)
            categories = np.sort(pd.unique(np.asarray(present, dtype=object)))
            # Numbers as a numeric array, text as objects: what OneHotEncoder's categories_ hold.
            if kind == "number":
                categories = np.array(categories.tolist())
            self.categories.append(categories)
            self.missing_seen.append(bool(missing.any()))
            self.kinds.append(kind)

    @property
    def category_sizes(self):
        """Rows of each column's embedding table: its categories and the reserved codes."""
        return [len(categories) + N_RESERVED_CODES for categories in self.categories]

    def split(self, X):
        """The other columns of ``X`` (as passed) and the categorical columns' codes.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        numeric : DataFrame or ndarray of shape (n_samples, n_features - n_categorical)
        codes : ndarray of float64, of shape (n_samples, n_categorical)
            Integer codes: ``UNKNOWN_CODE`` for categories not seen in training.
        """
        X = _as_table(X)
        self._check_columns_kept_their_kind(X)
        codes = np.empty((_n_rows(X), len(self.indices)), dtype=np.float64)
        for position, index in enumerate(self.indices):
            codes[:, position] = self._codes(_column(X, index), position)
        if hasattr(X, "iloc"):
            numeric = X.iloc[:, self.numeric_positions]
        else:
            numeric = X[:, self.numeric_positions]
        return numeric, codes

    def _codes(self, values, position):
        name, kind = self.names[position], self.kinds[position]
        missing = np.asarray(pd.isna(values))
        if not missing.all() and _kind(values, name) != kind:
            raise ValueError(
                f"The categorical column {name} held {_KIND_WORDS[kind]} when the model was "
                f"fitted, but holds {_KIND_WORDS[_kind(values, name)]} now. Pass the column "
                "with the same type as in fit."
            )
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(values.dtype.categories.dtype)
        found = pd.Index(self.categories[position]).get_indexer(np.asarray(values, dtype=object))
        codes = np.where(found >= 0, found + N_RESERVED_CODES, UNKNOWN_CODE)
        codes[missing] = MISSING_CODE if self.missing_seen[position] else UNKNOWN_CODE
        return codes

    def _check_columns_kept_their_kind(self, X):
        """A numeric column of fit that is categorical now would be refused as text, unclearly."""
        if not hasattr(X, "iloc") or _n_columns(X) != self.n_features:
            return  # scikit-learn's feature checks word the other cases
        for index in self.numeric_positions:
            if is_categorical_dtype(X.iloc[:, index]):
                raise ValueError(
                    f"Column {_column_name(X, index)} was numeric when the model was fitted, "
                    f"but holds categories or text now (dtype {X.iloc[:, index].dtype}). Pass "
                    "it as numbers, as in fit."
                )


_KIND_WORDS = {"text": "text", "number": "numbers"}


def _kind(values, name):
    """ "text" or "number": what a categorical column holds; mixed types are refused."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.dtype.categories
    if not isinstance(values, pd.Series | pd.Index):
        values = pd.Series(np.asarray(values, dtype=object))
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in {"string", "unicode", "bytes"}:
        return "text"
    if inferred in NUMERIC_INFERRED:
        return "number"
    types = sorted({type(value).__name__ for value in values[~pd.isna(values)]})
    raise TypeError(
        f"The categorical column {name} mixes values of types {types}; its categories must "
        f"be all text or all numbers. Convert it to one type first, for example with "
        f"X[{name}].astype(str)."
    )


def resolve(X, categorical_features):
    """Positions of the categorical columns of ``X`` named by ``categorical_features``.

    Returns
    -------
    list of int
        Empty when there are none: the table is numeric.

    Raises
    ------
    ValueError
        When ``categorical_features`` names a column ``X`` does not have, or does not
        fit its shape.
    """
    if categorical_features is None:
        return []
    if isinstance(categorical_features, str):  # "from_dtype": the constraint allows no other
        if not (hasattr(X, "dtypes") and hasattr(X, "iloc")):
            return []  # arrays hold one type; like HistGradientBoostingRegressor's from_dtype
        return [index for index in range(X.shape[1]) if is_categorical_dtype(X.iloc[:, index])]
    features = np.asarray(categorical_features)
    if features.size == 0:
        return []
    if scipy.sparse.issparse(X):
        raise ValueError(
            "Categorical columns (categorical_features) need a dense X; got a sparse matrix. "
            "Pass a DataFrame or an array, or one-hot encode the columns first."
        )
    if not (hasattr(X, "shape") and len(X.shape) == 2 or isinstance(X, list | tuple)):
        return []  # not a table: scikit-learn's validation words what is wrong with it
    n_features = _n_columns(X)
    if features.ndim != 1:
        raise ValueError(
            "categorical_features must be 'from_dtype', None, or a 1-D list of column names, "
            f"indices or a boolean mask; got an array of shape {features.shape}."
        )
    if features.dtype.kind == "b":
        if len(features) != n_features:
            raise ValueError(
                f"categorical_features as a boolean mask needs one entry per column of X: "
                f"X has {n_features} columns, the mask {len(features)}."
            )
        return np.flatnonzero(features).tolist()
    if features.dtype.kind in "iu":
        out_of_range = [int(i) for i in features if not -n_features <= i < n_features]
        if out_of_range:
            raise ValueError(
                f"categorical_features holds column indices {out_of_range} outside X's "
                f"{n_features} columns."
            )
        return sorted({int(i) % n_features for i in features})
    if features.dtype.kind in "OUS" and all(isinstance(name, str) for name in features):
        if not hasattr(X, "columns"):
            raise ValueError(
                "categorical_features names columns, but X has no column names: pass X as a "
                "DataFrame, or give the columns' indices instead."
            )
        columns = [str(column) for column in X.columns]
        features = [str(name) for name in features]
        unknown = [name for name in features if name not in columns]
        if unknown:
            raise ValueError(
                f"categorical_features names columns {unknown} that X does not have; X's "
                f"columns are {columns}."
            )
        return sorted({columns.index(name) for name in features})
    raise ValueError(
        "categorical_features must be 'from_dtype', None, or a list of column names (str), "
        f"indices (int) or a boolean mask; got {categorical_features!r}."
    )


class MissingValues:
    """Missing numbers filled with the column's training median, and flagged.

    Every column gets its median, so that a missing value at prediction time in a column
    that had none in training is filled too. Each column that had missing values in
    training also gets a 0/1 indicator column, appended after the columns themselves.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The training data's numeric columns, NaN where missing.
    sample_weight : ndarray of shape (n_samples,) or None

    Attributes
    ----------
    medians : ndarray of shape (n_features,)
    indicated : ndarray of int
        Columns that had missing values in training.
    """

    def __init__(self, X, sample_weight=None):
        missing = np.isnan(X)
        self.indicated = np.flatnonzero(missing.any(axis=0))
        self.medians = np.zeros(X.shape[1])
        for column in range(X.shape[1]):
            present = ~missing[:, column]
            if not present.any():
                continue  # all missing: filled with 0, and its indicator carries the signal
            values = X[present, column]
            weight = None if sample_weight is None else sample_weight[present]
            self.medians[column] = _median(values, weight)

    @property
    def n_indicators(self):
        return len(self.indicated)

    def transform(self, X):
        """Fill the missing values of ``X`` and append the indicator columns.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Numeric columns; left as they are (filled in a copy).

        Returns
        -------
        ndarray of shape (n_samples, n_features + n_indicators), of X's dtype
            ``X`` itself when it has nothing to fill or flag.
        """
        missing = np.isnan(X)
        indicators = missing[:, self.indicated].astype(X.dtype)
        if missing.any():
            rows, columns = np.nonzero(missing)
            X = X.copy()
            X[rows, columns] = self.medians[columns]
        if not len(self.indicated):
            return X
        return np.concatenate([X, indicators], axis=1)


def _median(values, weight):
    if weight is None:
        return float(np.median(values))
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weight[order])
    if cumulative[-1] <= 0:
        return float(np.median(values))
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _n_columns(X):
    if hasattr(X, "shape"):
        return X.shape[1] if len(X.shape) > 1 else 1
    return len(X[0]) if len(X) else 0


def _as_table(X):
    """A DataFrame as it is; anything else as a 2-D ndarray (of objects, from a list)."""
    if hasattr(X, "iloc"):
        return X
    X = np.asarray(X) if hasattr(X, "dtype") else np.asarray(X, dtype=object)
    return X.reshape(len(X), -1) if X.ndim < 2 else X


def _column(X, index):
    if hasattr(X, "iloc"):
        return X.iloc[:, index]
    return pd.Series(X[:, index])


def _column_name(X, index):
    if hasattr(X, "columns"):
        return repr(str(X.columns[index]))
    return str(index)
