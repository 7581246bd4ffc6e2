"""Choosing the device: the ``device`` parameter, and where a saved model is rebuilt.

The CUDA branches run here on any machine, with the number of visible GPUs faked.
"""

import pytest
import torch

from sktorch_mlp._training.device import device_for_loading, resolve_device


@pytest.fixture
def visible_gpus(monkeypatch):
    """Make torch report ``n`` visible CUDA devices (0 for none)."""

    def set_count(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return set_count


@pytest.mark.parametrize(
    "device, n_gpus, expected",
    [
        ("auto", 0, "cpu"),
        ("auto", 2, "cuda:0"),
        ("cpu", 2, "cpu"),
        ("cuda", 1, "cuda:0"),
        ("cuda:1", 2, "cuda:1"),
    ],
)
def test_device_parameter_resolves_to_a_visible_device(visible_gpus, device, n_gpus, expected):
    visible_gpus(n_gpus)
    assert resolve_device(device) == expected


def test_gpu_index_beyond_the_visible_ones_says_which_exist(visible_gpus):
    visible_gpus(2)
    with pytest.raises(ValueError, match=r"only 2 CUDA device\(s\).*cuda:0 to cuda:1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize(
    "saved_on, n_gpus, expected",
    [
        ("cuda:0", 0, "cpu"),
        ("cuda:1", 0, "cpu"),
        ("cpu", 1, "cpu"),
        ("cuda", 1, "cuda:0"),
        ("cuda:1", 2, "cuda:1"),
        # Trained on the second GPU of a larger machine: the first GPU here.
        ("cuda:1", 1, "cuda:0"),
    ],
)
def test_saved_model_is_rebuilt_on_a_device_this_machine_has(
    visible_gpus, saved_on, n_gpus, expected
):
    visible_gpus(n_gpus)
    assert device_for_loading(saved_on) == expected
    assert device_for_loading(torch.device(saved_on)) == expected
