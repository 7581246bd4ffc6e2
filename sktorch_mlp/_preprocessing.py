"""The standard preprocessing for a table of mixed column types."""

import numpy as np
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def make_tabular_preprocessor():
    """Build a ColumnTransformer that turns a DataFrame into network-ready numbers.

    Numeric columns get their missing values replaced by the column median and
    are standardized (neural networks train best on inputs of unit scale); every
    other column is one-hot encoded, and categories unseen during ``fit`` are
    encoded as all zeros rather than raising.

    Returns
    -------
    sklearn.compose.ColumnTransformer
        Unfitted; columns are chosen by dtype when it is fitted.

    Examples
    --------
    >>> import pandas as pd
    >>> from sktorch_mlp._preprocessing import make_tabular_preprocessor
    >>> table = pd.DataFrame({"rooms": [3.0, None, 5.0], "city": ["a", "b", "a"]})
    >>> make_tabular_preprocessor().fit_transform(table).shape
    (3, 3)
    """
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, make_column_selector(dtype_include=np.number)),
            ("categorical", categorical, make_column_selector(dtype_exclude=np.number)),
        ]
    )
