"""The raw 1990 California census housing table, bundled gzipped with the package."""

from importlib import resources

import pandas as pd
from sklearn.utils import Bunch

TARGET = "median_house_value"
CATEGORICAL_FEATURES = ["ocean_proximity"]
# Dollars to the $100,000 units of scikit-learn's fetch_california_housing.
_DOLLARS_PER_UNIT = 100_000.0

DESCR = """\
California housing (raw 1990 census table)
------------------------------------------

One row per census block group in California: 20,640 rows, 9 features, 1 target.

Features
    longitude, latitude        location of the block group
    housing_median_age         median age of the houses (years)
    total_rooms                rooms in the block group
    total_bedrooms             bedrooms in the block group (207 values missing)
    population                 people living in the block group
    households                 households in the block group
    median_income              median household income (tens of thousands of dollars)
    ocean_proximity            categorical: <1H OCEAN, INLAND, NEAR OCEAN, NEAR BAY, ISLAND

Target
    median_house_value         median house value, in units of $100,000 (capped at 5.00001)

Unlike scikit-learn's ``fetch_california_housing``, which ships derived per-household
averages and needs a download, this is the raw table: counts instead of averages, the
categorical ``ocean_proximity`` and missing values in ``total_bedrooms``, so it exercises
a realistic preprocessing pipeline (imputation, scaling, one-hot encoding).

Source: R. Kelley Pace and Ronald Barry, "Sparse Spatial Autoregressions",
Statistics and Probability Letters, 33 (1997) 291-297; StatLib repository.
"""


def load_california_housing(*, return_X_y=False, as_frame=True):
    """Load the raw California housing regression data set (works offline).

    ==============   ==================================
    Samples total    20640
    Features         9 (8 numeric, 1 categorical)
    Missing values   207, all in ``total_bedrooms``
    Target           real, in units of $100,000
    ==============   ==================================

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=True
        If True, ``data`` is a pandas DataFrame (``ocean_proximity`` of
        ``category`` dtype) and ``target`` a Series. If False, they are numpy
        arrays; ``data`` then has ``object`` dtype because of the categorical column.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        data : DataFrame of shape (20640, 9) or ndarray
            The features, with missing values as NaN.
        target : Series of shape (20640,) or ndarray
            Median house value of the block group, in $100,000.
        frame : DataFrame of shape (20640, 10) or None
            Features and target together; only when ``as_frame=True``.
        feature_names : list of str
            The column names of ``data``.
        target_names : list of str
            ``["median_house_value"]``.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True

    Examples
    --------
    >>> from sktorch_mlp.datasets import load_california_housing
    >>> X, y = load_california_housing(return_X_y=True)
    >>> X.shape, y.shape
    ((20640, 9), (20640,))
    >>> int(X["total_bedrooms"].isna().sum())
    207
    """
    source = resources.files(__package__).joinpath("data", "california_housing.csv.gz")
    with source.open("rb") as compressed:
        frame = pd.read_csv(compressed, compression="gzip")
    frame[CATEGORICAL_FEATURES] = frame[CATEGORICAL_FEATURES].astype("category")
    frame[TARGET] = frame[TARGET] / _DOLLARS_PER_UNIT

    feature_names = [column for column in frame.columns if column != TARGET]
    data, target = frame[feature_names], frame[TARGET]
    if not as_frame:
        data, target, frame = data.to_numpy(dtype=object), target.to_numpy(), None
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        frame=frame,
        feature_names=feature_names,
        target_names=[TARGET],
        DESCR=DESCR,
    )
