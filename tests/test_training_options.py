"""Opt-in training options: mixed precision (autocast) and a compiled network.

They train through autograd instead of the hand-written backward pass; on the CPU
they run too (bfloat16 and float16 autocast, torch.compile with a C++ compiler).
"""

import pickle
import shutil

import numpy as np
import pytest
import torch

from sktorch_mlp import TorchMLPRegressor


def small_model(**params):
    defaults = dict(
        hidden_layer_sizes=(16,),
        dropout=0.1,
        max_epochs=3,
        batch_size=32,
        early_stopping=False,
        ensemble_size=1,
        random_state=0,
    )
    return TorchMLPRegressor(**{**defaults, **params})


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_trains_close_to_float32(regression_data, dtype):
    X, y = regression_data
    reference = small_model().fit(X, y)
    model = small_model(mixed_precision=dtype).fit(X, y)
    assert np.all(np.isfinite(model.loss_curve_))
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    # 16-bit products change the path a little, not the model.
    difference = np.abs(model.predict(X) - reference.predict(X)).max()
    assert 0 < difference < 0.05 * np.ptp(y)
    assert model.predict(X).dtype == np.float64
    # float16 gradients are scaled against underflow; bfloat16 has float32's range.
    assert hasattr(model.net_, "_grad_scaler") == (dtype == "float16")
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile needs a C++ compiler")
# torch's own compiler still calls a deprecated torch.jit helper.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_network_trains_as_the_uncompiled_one(regression_data):
    X, y = regression_data
    reference = small_model(ensemble_size=2).fit(X, y)
    model = small_model(ensemble_size=2, compile=True).fit(X, y)
    # Same dropout masks (drawn outside the compiled graph) and the same arithmetic.
    np.testing.assert_allclose(model.predict(X), reference.predict(X), rtol=1e-4, atol=1e-4)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    restored.set_params(warm_start=True, max_epochs=1).fit(X, y)  # compiles the new module
    assert restored.n_iter_ == 4


@pytest.mark.parametrize("dtype, scaled", [("float16", True), ("bfloat16", False), (None, False)])
def test_a_net_on_a_gpu_autocasts_and_scales_for_the_gpu(
    regression_data, monkeypatch, dtype, scaled
):
    # The CUDA branch of the autograd step, run with CPU tensors: the net says "cuda:0",
    # and autocast and the gradient scaler, told "cuda", do their work on the CPU.
    X, y = regression_data
    monkeypatch.setattr(torch, "compile", lambda forward, mode=None: forward)
    net = small_model(mixed_precision=dtype, compile=dtype is None, max_epochs=1).fit(X, y).net_
    net.device = "cuda:0"
    if hasattr(net, "_grad_scaler"):
        del net._grad_scaler  # made for the CPU during the fit
    autocasts, scalers = [], []
    real_autocast, real_scaler = torch.autocast, torch.amp.GradScaler

    def autocast(device_type, dtype=None, enabled=True):
        autocasts.append((device_type, dtype, enabled))
        return real_autocast("cpu", dtype=dtype, enabled=enabled)

    def grad_scaler(device):
        scalers.append(device)
        return real_scaler("cpu")

    monkeypatch.setattr(torch, "autocast", autocast)
    monkeypatch.setattr(torch.amp, "GradScaler", grad_scaler)
    X_batch = torch.randn(8, X.shape[1])
    before = [param.detach().clone() for param in net.module_.parameters()]
    # The scaler starts at 2**16, and skips the steps that overflow until it is low enough.
    for _ in range(10):
        step = net.train_step((X_batch, torch.randn(8, 1)))
    expected_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype)
    assert autocasts == [("cuda", expected_dtype, dtype is not None)] * 10
    assert scalers == (["cuda"] if scaled else [])  # one scaler, kept across steps
    assert torch.isfinite(step["loss"])
    after = net.module_.parameters()
    assert any(not torch.equal(p, b) for p, b in zip(after, before, strict=True))


def test_float16_step_that_overflows_is_skipped_and_the_scale_lowered(regression_data):
    X, y = regression_data
    model = small_model(mixed_precision="float16").fit(X, y)
    net = model.net_
    scale = net._grad_scaler.get_scale()
    before = [param.detach().clone() for param in net.module_.parameters()]
    # Its scaled gradients pass through float16 products, whose range ends at 65504.
    net.train_step((torch.zeros(4, X.shape[1]), torch.full((4, 1), 1e6)))
    assert net._grad_scaler.get_scale() < scale
    for param, previous in zip(net.module_.parameters(), before, strict=True):
        assert torch.equal(param, previous)
