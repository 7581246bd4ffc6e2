"""Training on a CUDA GPU; skipped on machines without one."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from sktorch_mlp import TorchMLPRegressor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def gpu_model(**params):
    return TorchMLPRegressor(hidden_layer_sizes=(32,), max_epochs=5, random_state=0, **params)


def test_auto_device_picks_the_gpu(regression_data):
    X, y = regression_data
    model = gpu_model().fit(X, y)
    assert model.device_ == "cuda:0"
    assert next(model.net_.module_.parameters()).is_cuda


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_explicit_cuda_device(regression_data, device):
    X, y = regression_data
    assert gpu_model(device=device).fit(X, y).device_ == "cuda:0"


def test_gpu_training_is_reproducible(regression_data):
    X, y = regression_data
    first = gpu_model(device="cuda").fit(X, y).predict(X)
    np.testing.assert_array_equal(gpu_model(device="cuda").fit(X, y).predict(X), first)


def test_gpu_and_cpu_models_agree_closely(regression_data):
    X, y = regression_data
    # Same seed, different devices: different random streams, so compare quality only.
    gpu = gpu_model(device="cuda").fit(X, y)
    cpu = gpu_model(device="cpu").fit(X, y)
    assert abs(gpu.score(X, y) - cpu.score(X, y)) < 0.2


def test_fit_on_gpu_predict_on_cpu_only_machine(regression_data, tmp_path):
    X, y = regression_data
    model = gpu_model(device="cuda").fit(X, y)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", model.predict(X))
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    # A fresh interpreter that sees no GPU, as on a laptop or CPU server.
    script = f"""
import pickle, warnings, numpy as np
warnings.simplefilter("error")
model = pickle.loads(open({str(tmp_path / "model.pkl")!r}, "rb").read())
assert model.device_ == "cpu", model.device_
X = np.load({str(tmp_path / "X.npy")!r})
np.testing.assert_allclose(model.predict(X), np.load({str(tmp_path / "expected.npy")!r}),
                           rtol=1e-6, atol=1e-6)
"""
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": "", **_python_env()},
    )


def _python_env():
    import os

    return {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
