"""Reproducible torch randomness that leaves the caller's random state untouched."""

from contextlib import contextmanager

import torch


@contextmanager
def seeded_torch_rng(seed, device):
    """Seed torch's generators for the duration of a ``with`` block, then restore them.

    Weight initialization, shuffling and dropout all draw from torch's global
    generators (CPU and, when training there, the CUDA device's). Forking them
    makes a fit reproducible from ``random_state`` without changing the random
    stream of the user's own torch code.

    Parameters
    ----------
    seed : int
        Seed for the CPU generator and the CUDA generator of ``device``.
    device : str or torch.device
        Device the model trains on.
    """
    device = torch.device(device)
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    # device_type named: torch otherwise forks the generators of whichever accelerator it finds.
    with torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        for index in cuda_devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield
