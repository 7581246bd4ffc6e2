"""The scikit-learn workflow users write, on a sample of the bundled California housing data."""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sktorch_mlp import TorchMLPRegressor

# The bundled table's numeric columns: every one but the categorical ocean_proximity.
NUMERIC = make_column_selector(dtype_include=np.number)


def make_pipeline_under_test(**mlp_params):
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["ocean_proximity"]),
        ]
    )
    params = dict(hidden_layer_sizes=(32,), max_epochs=30, lr=3e-3, batch_size=64, random_state=0)
    params.update(mlp_params)
    return Pipeline([("prep", prep), ("mlp", TorchMLPRegressor(**params))])


@pytest.fixture(scope="module")
def fitted_pipeline(california_sample):
    X, y = california_sample
    return make_pipeline_under_test().fit(X, y)


def test_pipeline_with_column_transformer_fits_and_predicts(california_sample, fitted_pipeline):
    X, y = california_sample
    y_pred = fitted_pipeline.predict(X)
    assert y_pred.shape == (len(X),) and np.isfinite(y_pred).all()
    # Better than predicting the mean: the network learned something from the features.
    assert fitted_pipeline.score(X, y) > 0.3


def test_cross_val_score_with_rmse(california_sample):
    X, y = california_sample
    scores = cross_val_score(
        make_pipeline_under_test(),
        X,
        y,
        cv=KFold(3, shuffle=True, random_state=0),
        scoring="neg_root_mean_squared_error",
    )
    rmse = -scores
    assert rmse.shape == (3,)
    # Between a perfect model and one that always predicts the mean.
    assert np.all((rmse > 0) & (rmse < y.std()))


def test_grid_search_in_parallel_processes(california_sample):
    X, y = california_sample
    grid = {"mlp__hidden_layer_sizes": [(8,), (16, 16)], "mlp__dropout": [0.0, 0.2]}
    search = GridSearchCV(
        make_pipeline_under_test(max_epochs=3),
        grid,
        cv=2,
        scoring="neg_root_mean_squared_error",
        n_jobs=2,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_ in search.cv_results_["params"]
    best = search.best_estimator_.named_steps["mlp"]
    assert best.hidden_layer_sizes == search.best_params_["mlp__hidden_layer_sizes"]
    assert search.predict(X).shape == (len(X),)


def test_pipeline_pickle_and_joblib_round_trips(california_sample, fitted_pipeline, tmp_path):
    X, _ = california_sample
    expected = fitted_pipeline.predict(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted_pipeline)).predict(X), expected)
    joblib.dump(fitted_pipeline, tmp_path / "pipeline.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "pipeline.joblib").predict(X), expected)


def test_clone_pipeline_refits_to_identical_predictions(california_sample, fitted_pipeline):
    X, y = california_sample
    refitted = clone(fitted_pipeline).fit(X, y)
    np.testing.assert_array_equal(refitted.predict(X), fitted_pipeline.predict(X))
