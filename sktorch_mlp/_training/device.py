"""Which torch device a model trains on (the ``device`` parameter), and where a saved one loads."""

import re

import torch
from sklearn.utils._param_validation import StrOptions

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class DeviceName(StrOptions):
    """Parameter constraint: 'auto', 'cpu', 'cuda' or 'cuda:N'."""

    def __init__(self):
        super().__init__({"auto", "cpu", "cuda"})

    def is_satisfied_by(self, val):
        return isinstance(val, str) and _DEVICE_PATTERN.match(val) is not None

    def __str__(self):
        return "a str among 'auto', 'cpu', 'cuda' or 'cuda:N' (N the index of a GPU)"


def resolve_device(device):
    """Turn the ``device`` parameter into the name of an available torch device.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"}
        "auto" picks CUDA when a GPU is visible, else the CPU.

    Returns
    -------
    str
        "cpu" or "cuda:N".

    Raises
    ------
    ValueError
        If a CUDA device is asked for and is not available.
    """
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False). Use device='auto' or device='cpu'."
        )
    index = int(device.partition(":")[2] or 0)
    n_gpus = torch.cuda.device_count()
    if index >= n_gpus:
        raise ValueError(
            f"device={device!r} was requested but only {n_gpus} CUDA device(s) are visible "
            f"(cuda:0 to cuda:{n_gpus - 1}). Use one of those, 'auto' or 'cpu'."
        )
    return f"cuda:{index}"


def device_for_loading(device):
    """Where a model saved on ``device`` is rebuilt on this machine.

    A fitted model runs wherever it is loaded: on the same GPU when this machine
    has it, on its first GPU when it has fewer (a model trained on "cuda:1" of a
    larger machine), and on the CPU when it has none.

    Parameters
    ----------
    device : str
        The device the model was trained on, such as "cpu" or "cuda:1".

    Returns
    -------
    str
        "cpu" or "cuda:N", a device this machine has.
    """
    device = str(device)
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return "cpu"
    index = int(device.partition(":")[2] or 0)
    return f"cuda:{index if index < torch.cuda.device_count() else 0}"
