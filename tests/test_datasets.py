"""The bundled California housing loader."""

import numpy as np
import pandas as pd
import pytest

from sktorch_mlp.datasets import load_california_housing

NUMERIC = [
    "longitude",
    "latitude",
    "housing_median_age",
    "total_rooms",
    "total_bedrooms",
    "population",
    "households",
    "median_income",
]


@pytest.fixture(scope="module")
def bunch():
    return load_california_housing()


def test_frame_layout(bunch):
    assert bunch.data.shape == (20640, 9)
    assert bunch.feature_names == [*NUMERIC, "ocean_proximity"]
    assert list(bunch.data.columns) == bunch.feature_names
    assert bunch.target_names == ["median_house_value"]
    assert bunch.frame.shape == (20640, 10)
    assert "California" in bunch.DESCR


def test_raw_table_keeps_missing_values_and_the_categorical_column(bunch):
    assert bunch.data["total_bedrooms"].isna().sum() == 207
    assert bunch.data.drop(columns="total_bedrooms").notna().all().all()
    assert isinstance(bunch.data["ocean_proximity"].dtype, pd.CategoricalDtype)
    assert set(bunch.data["ocean_proximity"].cat.categories) == {
        "<1H OCEAN",
        "INLAND",
        "NEAR OCEAN",
        "NEAR BAY",
        "ISLAND",
    }
    assert all(pd.api.types.is_float_dtype(bunch.data[column]) for column in NUMERIC)


def test_target_in_units_of_100k_dollars(bunch):
    target = bunch.target
    assert target.name == "median_house_value"
    # The census capped values at $500,001.
    assert target.max() == pytest.approx(5.00001)
    assert 0.1 < target.min() < target.median() < 3.0


def test_return_X_y_and_numpy_output():
    X, y = load_california_housing(return_X_y=True)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)
    X_array, y_array = load_california_housing(return_X_y=True, as_frame=False)
    assert isinstance(X_array, np.ndarray) and X_array.shape == (20640, 9)
    assert X_array.dtype == object
    np.testing.assert_array_equal(y_array, y.to_numpy())
    assert load_california_housing(as_frame=False).frame is None
