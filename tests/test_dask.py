"""Distributed search: scikit-learn's searches run on a Dask cluster through joblib's dask backend.

Each search runs twice, on a local cluster of two worker processes and here with ``n_jobs=1``,
and must give exactly the same scores: the seeds travel with the estimator, so where a fit runs
does not change it. A scorer that returns its process id proves that the fits ran on the workers.
"""

import os
from contextlib import contextmanager

import joblib
import numpy as np
import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import torch  # noqa: E402
from scipy.stats import loguniform  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_regression  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_validate,
)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sktorch_mlp import TorchMLPRegressor  # noqa: E402

CV = KFold(n_splits=2, shuffle=True, random_state=0)


def process_id_scorer():
    """A scorer returning the id of the process that scores, to tell where each fit ran.

    It is made by a function, not defined at module level, so that it is pickled by value: the
    workers could not import this test module.
    """
    return lambda estimator, X, y: os.getpid()


SCORING = {"r2": "r2", "pid": process_id_scorer()}


@pytest.fixture(scope="module")
def data():
    return make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def worker_pids(client):
    return set(client.run(os.getpid).values())


@pytest.fixture(scope="module")
def worker_torch_threads(client):
    """torch's thread count where the workers run tasks, for the local runs to match.

    Asked in a task, not with ``client.run``: that runs in the worker's main thread, and torch's
    OpenMP thread count is per thread. The nanny starts workers with OMP_NUM_THREADS=1 and
    MKL_NUM_THREADS=1 unless the environment sets them.
    """
    futures = [
        client.submit(torch.get_num_threads, workers=[address], pure=False)
        for address in client.scheduler_info()["workers"]
    ]
    (threads,) = set(client.gather(futures))
    return threads


@contextmanager
def torch_threads(n):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def tiny_model(**params):
    return TorchMLPRegressor(
        hidden_layer_sizes=(8,), ensemble_size=1, max_epochs=3, random_state=0, **params
    )


def run_on_dask_and_locally(search, X, y, threads):
    """Fit clones of ``search`` on the cluster (n_jobs=None) and here (n_jobs=1)."""
    distributed_search = clone(search).set_params(n_jobs=None)
    with joblib.parallel_config(backend="dask"):
        distributed_search.fit(X, y)
    local_search = clone(search).set_params(n_jobs=1)
    with torch_threads(threads):
        local_search.fit(X, y)
    return distributed_search, local_search


def split_pids(cv_results):
    return {
        pid
        for key, pids in cv_results.items()
        if key.startswith("split") and key.endswith("_test_pid")
        for pid in pids
    }


def assert_ran_on_workers(pids, worker_pids):
    assert len(pids) > 0, "no process id was recorded"
    assert set(pids) <= worker_pids, "some fits ran outside the workers"


def assert_same_search(distributed_search, local_search, worker_pids):
    dist, loc = distributed_search.cv_results_, local_search.cv_results_
    assert_ran_on_workers(split_pids(dist), worker_pids)
    assert split_pids(loc) == {os.getpid()}
    assert dist["params"] == loc["params"]
    for key in loc:
        if key.endswith("_test_r2"):
            np.testing.assert_array_equal(dist[key], loc[key], err_msg=key)
    assert distributed_search.best_params_ == local_search.best_params_
    assert distributed_search.best_score_ == local_search.best_score_


def test_grid_search_on_dask_equals_local_run(client, data, worker_pids, worker_torch_threads):
    search = GridSearchCV(
        tiny_model(),
        {"lr": [1e-3, 1e-2], "batch_size": [32, 64]},
        cv=CV,
        scoring=SCORING,
        refit="r2",
    )
    distributed_search, local_search = run_on_dask_and_locally(
        search, *data, threads=worker_torch_threads
    )
    assert_same_search(distributed_search, local_search, worker_pids)
    X, _ = data
    np.testing.assert_array_equal(distributed_search.predict(X), local_search.predict(X))


def test_randomized_search_on_dask_equals_local_run(
    client, data, worker_pids, worker_torch_threads
):
    search = RandomizedSearchCV(
        tiny_model(),
        {"lr": loguniform(1e-4, 1e-1), "batch_size": [32, 64]},
        n_iter=3,
        cv=CV,
        scoring=SCORING,
        refit="r2",
        random_state=0,
    )
    distributed_search, local_search = run_on_dask_and_locally(
        search, *data, threads=worker_torch_threads
    )
    assert_same_search(distributed_search, local_search, worker_pids)


def test_pipeline_search_on_dask_equals_local_run(client, data, worker_pids, worker_torch_threads):
    pipeline = make_pipeline(StandardScaler(), tiny_model(input_transform="none"))
    search = GridSearchCV(
        pipeline,
        {"torchmlpregressor__hidden_layer_sizes": [(8,), (4, 4)]},
        cv=CV,
        scoring=SCORING,
        refit="r2",
    )
    distributed_search, local_search = run_on_dask_and_locally(
        search, *data, threads=worker_torch_threads
    )
    assert_same_search(distributed_search, local_search, worker_pids)


def test_cross_validate_on_dask_equals_local_run_and_returns_working_models(
    client, data, worker_pids, worker_torch_threads
):
    X, y = data
    # scatter sends the arrays to every worker once, before the tasks that use them.
    with joblib.parallel_config(backend="dask", scatter=[X, y]):
        on_dask = cross_validate(tiny_model(), X, y, cv=CV, scoring=SCORING, return_estimator=True)
    with torch_threads(worker_torch_threads):
        local = cross_validate(
            tiny_model(), X, y, cv=CV, scoring=SCORING, return_estimator=True, n_jobs=1
        )
    assert_ran_on_workers(on_dask["test_pid"], worker_pids)
    np.testing.assert_array_equal(on_dask["test_r2"], local["test_r2"])
    # The fitted models came back from the workers pickled, and predict as the local ones.
    for model_from_worker, local_model in zip(
        on_dask["estimator"], local["estimator"], strict=True
    ):
        np.testing.assert_array_equal(model_from_worker.predict(X), local_model.predict(X))


def test_dask_backend_ignores_n_jobs_even_1(client, data, worker_pids):
    # The backend sizes every search by the workers' threads, so n_jobs=1 does not keep it local.
    search = GridSearchCV(
        tiny_model(), {"lr": [1e-3]}, cv=CV, scoring=SCORING, refit="r2", n_jobs=1
    )
    with joblib.parallel_config(backend="dask"):
        search.fit(*data)
    assert_ran_on_workers(split_pids(search.cv_results_), worker_pids)
