"""Seeded torch randomness: the caller's generators, CPU and CUDA, are restored afterwards.

The CUDA generators are faked with CPU generators, so the branch that forks and seeds
the training GPU's generator runs on any machine; tests/test_cuda.py runs it on a GPU.
"""

from contextlib import contextmanager

import torch

from sktorch_mlp._seeding import seeded_torch_rng


class FakeCudaGenerators:
    """Stands in for ``torch.cuda``'s generator functions: one CPU generator per GPU."""

    def __init__(self, n_gpus):
        self.generators = [torch.Generator().manual_seed(100 + index) for index in range(n_gpus)]
        self.current = 0

    def get_rng_state(self, device="cuda"):
        return self.generators[_index(device)].get_state()

    def set_rng_state(self, state, device="cuda"):
        self.generators[_index(device)].set_state(state)

    def manual_seed(self, seed):
        self.generators[self.current].manual_seed(seed)

    @contextmanager
    def device(self, index):
        previous, self.current = self.current, index
        try:
            yield
        finally:
            self.current = previous

    def install(self, monkeypatch):
        for name in ("get_rng_state", "set_rng_state", "manual_seed", "device"):
            monkeypatch.setattr(torch.cuda, name, getattr(self, name))
        return self


def _index(device):
    if isinstance(device, int):
        return device
    return torch.device(device).index or 0


def test_cpu_generator_is_seeded_then_restored():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded_torch_rng(0, "cpu"):
        seeded = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)  # the caller's stream goes on untouched
    with seeded_torch_rng(0, "cpu"):
        assert torch.equal(torch.rand(3), seeded)


def test_the_training_gpu_generator_is_seeded_then_restored(monkeypatch):
    fake = FakeCudaGenerators(n_gpus=2).install(monkeypatch)
    before = [generator.get_state() for generator in fake.generators]
    with seeded_torch_rng(7, "cuda:1"):
        assert fake.generators[1].initial_seed() == 7
        assert torch.equal(fake.generators[0].get_state(), before[0])  # not the training GPU
        fake.generators[1].manual_seed(12345)  # draws during training move the state
    for generator, state in zip(fake.generators, before, strict=True):
        assert torch.equal(generator.get_state(), state)


def test_device_cuda_means_the_first_gpu(monkeypatch):
    fake = FakeCudaGenerators(n_gpus=2).install(monkeypatch)
    with seeded_torch_rng(3, "cuda"):
        assert [generator.initial_seed() for generator in fake.generators] == [3, 101]


def test_training_on_the_cpu_leaves_the_gpu_generators_alone(monkeypatch):
    fake = FakeCudaGenerators(n_gpus=1).install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "get_rng_state", None)  # would fail if called
    with seeded_torch_rng(3, "cpu"):
        assert fake.generators[0].initial_seed() == 100
