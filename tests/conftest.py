"""Shared fixtures: tiny data sets, so the suite stays fast on a 2-core CPU."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_regression

from sktorch_mlp.datasets import load_california_housing


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``cuda`` on machines without a CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def regression_data():
    """120 samples, 5 features, 1-D target of scale ~100."""
    X, y = make_regression(n_samples=120, n_features=5, noise=1.0, random_state=0)
    return X, y


@pytest.fixture(scope="session")
def california_sample():
    """600 rows of the bundled California housing table (DataFrame, Series)."""
    X, y = load_california_housing(return_X_y=True)
    rows = np.random.default_rng(0).choice(len(X), size=600, replace=False)
    return X.iloc[rows].reset_index(drop=True), y.iloc[rows].reset_index(drop=True)
