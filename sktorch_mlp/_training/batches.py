"""Mini-batches sliced from tensors that already live on the training device.

Tabular batches are tiny, so a ``DataLoader`` that collates each batch from
single rows costs more than the arithmetic. :class:`TensorBatches` is a drop-in
for skorch's ``iterator_train``/``iterator_valid``: it moves the whole float32
dataset to the device once and yields slices of it.
"""

import math

import numpy as np
import torch

# Shuffled rows are gathered in chunks of about this many values (4 MiB of float32).
CHUNK_ELEMENTS = 2**20


def as_tensor(array):
    """View a float32 numpy array as a CPU tensor, copying only if it must."""
    if isinstance(array, torch.Tensor):
        return array
    # torch refuses to share memory with read-only arrays (e.g. memory maps).
    return torch.from_numpy(np.require(array, requirements=["C_CONTIGUOUS", "WRITEABLE"]))


def place_on_device(tensor, device):
    """Move ``tensor`` to ``device``, keeping it on the host if the device is full.

    When the data set does not fit in GPU memory it stays in pinned host memory
    and each batch is copied over asynchronously as it is needed.
    """
    device = torch.device(device)
    if tensor.device == device:
        return tensor
    try:
        return tensor.to(device)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return tensor.pin_memory() if torch.cuda.is_available() else tensor


class TensorBatches:
    """Iterate over a skorch ``Dataset`` in mini-batches, without a ``DataLoader``.

    Parameters
    ----------
    dataset : skorch.dataset.Dataset
        Holds ``X`` (float32, 2-D) and ``y`` (float32, 2-D, or None at prediction).
    batch_size : int
        Rows per batch; the last batch holds the remainder.
    shuffle : bool, default=False
        Draw a new permutation at every pass (one per epoch), from torch's
        global generator, so every sample is seen exactly once per epoch.
    device : str or torch.device, default="cpu"
        Where batches are yielded.
    """

    def __init__(self, dataset, batch_size, shuffle=False, device="cpu"):
        self.device = torch.device(device)
        self.X = place_on_device(as_tensor(dataset.X), self.device)
        self.y = None if dataset.y is None else place_on_device(as_tensor(dataset.y), self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle

    def __len__(self):
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        n_samples = len(self.X)
        if not self.shuffle:
            for start in range(0, n_samples, self.batch_size):
                rows = slice(start, start + self.batch_size)
                yield self._to_device(self.X, rows), self._to_device(self.y, rows)
            return
        order = torch.randperm(n_samples, device=self.X.device)
        # Rows are gathered in the permuted order a chunk at a time, so each batch is a
        # contiguous slice (one gather per chunk rather than per batch) while the extra
        # memory stays one chunk, not a shuffled copy of the data set.
        row_size = max(1, self.X[0].numel())
        chunk_rows = self.batch_size * max(1, CHUNK_ELEMENTS // (row_size * self.batch_size))
        for chunk_start in range(0, n_samples, chunk_rows):
            chunk = order[chunk_start : chunk_start + chunk_rows]
            X_chunk, y_chunk = self._to_device(self.X, chunk), self._to_device(self.y, chunk)
            for start in range(0, len(chunk), self.batch_size):
                rows = slice(start, start + self.batch_size)
                yield X_chunk[rows], (None if y_chunk is None else y_chunk[rows])

    def _to_device(self, tensor, rows):
        # A no-op copy when the data fits on the device; otherwise an async host-to-device copy.
        if tensor is None:
            return None
        return select_rows(tensor, rows).to(self.device, non_blocking=True)


def select_rows(tensor, rows):
    """``tensor[rows]``, in pinned memory when ``tensor`` is pinned.

    A slice of pinned memory is pinned, but gathering rows by index writes them to
    ordinary (pageable) memory, from which a "non-blocking" copy to the GPU makes the
    host wait for the GPU's queue to drain. The gathered rows are pinned again, from
    torch's caching host allocator, which reuses a block only once its copy is done.
    """
    selected = tensor[rows]
    if isinstance(rows, torch.Tensor) and tensor.is_pinned():
        selected = selected.pin_memory()
    return selected
