"""Training on a CUDA GPU; every test here is marked ``cuda`` and skips without one.

``bash benchmarks/gpu_check.sh`` runs this file and the other ``cuda``-marked tests on a GPU.

Each branch of the package that depends on the device type also runs on the CPU, with CPU
tensors, in the tests of its module: the branch is forced (a class attribute, a faked
``torch.cuda`` function or device count) or the function it calls is tested directly. What
only a GPU can show, and the test here that shows it:

- Dropout masks (``_network.dropout.Dropout._draw``). The GPU's path, torch's generator filling
  int64 words split into four 15-bit lanes, runs on the CPU in tests/test_module.py. Whether
  CUDA's ``random_()`` fills all 63 bits of each word, so that every lane is uniform, is a
  property of CUDA's kernel: ``test_dropout_masks_on_the_gpu_keep_one_minus_p_in_every_lane``.
- The fused AdamW step and its flat layout (``_training.optim``,
  ``_training.net.supports_fused_adamw``). The CPU has its own fused kernel; the fallbacks (no
  fused kernel, parameters on two devices) are tested in tests/test_optim.py. That CUDA's
  kernel, called on the flat buffers, updates exactly as ``optimizer.step()`` does: the ``cuda``
  case of tests/test_optim.py::test_direct_step_equals_optimizer_step_exactly.
- Pinned-memory feeding (``_training.batches``). Page-locking host memory needs the CUDA driver
  (``pin_memory`` raises without one), so the CPU tests fake ``is_pinned``/``pin_memory``:
  ``test_gathered_rows_stay_pinned_and_reach_the_gpu`` and, in tests/test_batches.py,
  ``test_host_resident_batches_are_copied_to_the_device``.
- Autocast and gradient scaling (``_training.net.MLPNet._autograd_train_step``). The CPU tests
  check the device type handed to ``torch.autocast`` and ``GradScaler`` by a net on "cuda:0" and
  that an overflowing float16 step is skipped; float16 and bfloat16 products on tensor cores,
  and ``compile="reduce-overhead"`` (CUDA graphs, captured and replayed only on CUDA), need the
  GPU: ``test_gpu_training_options_train_close_to_float32``.
- Seeding (``_seeding``). The CPU test fakes ``torch.cuda``'s generator functions; the real CUDA
  generator, seeded and restored: ``test_seeding_forks_the_training_gpu_generator``.
- Loading a GPU-saved model on a CPU (``_persistence.restore_net``, ``MLPNet.__setstate__``,
  ``_training.device.device_for_loading``). The CPU tests fake what a GPU-trained model records;
  a model whose tensors really lived on a GPU, loaded by a process that sees none:
  ``test_fit_on_gpu_predict_on_cpu_only_machine``.
- Out of memory (``_training.faults``, ``_training.batches.place_on_device``). The CPU tests
  inject ``torch.OutOfMemoryError``; the CUDA allocator failing for real, and its cached memory
  given back: ``test_gpu_out_of_memory_says_what_to_change_and_frees_the_memory`` and
  ``test_no_gpu_memory_left_held_after_fit_and_predict``.
- The device parameter (``_training.device.resolve_device``). The CPU tests fake the GPU count;
  a real GPU: ``test_auto_device_picks_the_gpu`` and ``test_explicit_cuda_device``.
"""

import gc
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._network.dropout import Dropout
from sktorch_mlp._seeding import seeded_torch_rng
from sktorch_mlp._training.batches import select_rows

# Skipped without a GPU by tests/conftest.py.
pytestmark = pytest.mark.cuda


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


def _cached_but_unused_mib():
    return (torch.cuda.memory_reserved() - torch.cuda.memory_allocated()) / 2**20


def test_no_gpu_memory_left_held_after_fit_and_predict():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400_000, 32))  # 49 MiB on the GPU in float32
    y = X.sum(axis=1)
    gc.collect()
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated()
    model = TorchMLPRegressor(
        hidden_layer_sizes=(64,), ensemble_size=1, max_epochs=1, batch_size=4096
    ).fit(X, y)
    # The training data and batches are gone, and their cached blocks given back.
    assert _cached_but_unused_mib() < 32
    model.predict(X)
    assert _cached_but_unused_mib() < 32
    del model
    gc.collect()
    assert torch.cuda.memory_allocated() == baseline


def test_gpu_out_of_memory_says_what_to_change_and_frees_the_memory(regression_data):
    X, y = regression_data
    model = gpu_model(device="cuda").fit(X, y)
    expected = model.predict(X)
    gc.collect()
    allocated = torch.cuda.memory_allocated()
    # Small weights, but one batch's hidden activations take 200,000 x 131,072 floats (98 GiB).
    X_big = np.random.default_rng(0).normal(size=(200_000, 8))
    model.set_params(
        hidden_layer_sizes=(131_072,),
        ensemble_size=1,
        embedding="none",
        batch_size=200_000,
        early_stopping=False,
        max_epochs=1,
    )
    with pytest.raises(
        torch.OutOfMemoryError,
        match=r"(?s)while training on cuda:0.*batch_size \(now 200000\).*device='cpu'",
    ):
        model.fit(X_big, X_big.sum(axis=1))
    gc.collect()
    assert torch.cuda.memory_allocated() == allocated
    assert _cached_but_unused_mib() < 32
    np.testing.assert_array_equal(model.predict(X), expected)


def test_predict_from_several_threads_on_gpu_equals_serial(regression_data):
    X, y = regression_data
    model = gpu_model(device="cuda").fit(X, y)
    chunks = np.array_split(np.tile(X, (20, 1)), 40)
    serial = [model.predict(chunk) for chunk in chunks]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(model.predict, chunks))
    for got, expected in zip(concurrent, serial, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "params",
    [
        dict(mixed_precision="bfloat16"),
        dict(mixed_precision="float16"),
        dict(compile=True),
        dict(compile="reduce-overhead"),
    ],
)
def test_gpu_training_options_train_close_to_float32(regression_data, params):
    X, y = regression_data
    reference = gpu_model(device="cuda").fit(X, y).predict(X)
    predictions = gpu_model(device="cuda", **params).fit(X, y).predict(X)
    assert np.abs(predictions - reference).max() < 0.05 * np.ptp(y)


def test_dropout_masks_on_the_gpu_keep_one_minus_p_in_every_lane():
    dropout = Dropout(0.25).train()
    with seeded_torch_rng(0, "cuda"):
        mask = dropout.mask((2**18,), "cuda").clone()  # a view of the block, which is reused
    assert mask.is_cuda
    keep_per_lane = mask.view(-1, 4).mean(dim=0).cpu()
    torch.testing.assert_close(keep_per_lane, torch.full((4,), 0.75), rtol=0, atol=0.01)
    with seeded_torch_rng(0, "cuda"):
        assert torch.equal(dropout.train().mask((2**18,), "cuda"), mask)


def test_seeding_forks_the_training_gpu_generator():
    before = torch.cuda.get_rng_state()
    with seeded_torch_rng(3, "cuda:0"):
        first = torch.rand(5, device="cuda")
    assert torch.equal(torch.cuda.get_rng_state(), before)
    with seeded_torch_rng(3, "cuda"):
        assert torch.equal(torch.rand(5, device="cuda"), first)


def test_gathered_rows_stay_pinned_and_reach_the_gpu():
    host = torch.arange(20.0).reshape(10, 2).pin_memory()
    rows = torch.tensor([7, 2, 5])
    gathered = select_rows(host, rows)
    assert gathered.is_pinned()
    assert torch.equal(gathered.to("cuda", non_blocking=True).cpu(), host[rows])
