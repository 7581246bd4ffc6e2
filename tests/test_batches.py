"""Mini-batches fed from device-resident tensors (no DataLoader)."""

import numpy as np
import pytest
import torch
from skorch.dataset import Dataset

from sktorch_mlp._training.batches import TensorBatches, as_tensor, place_on_device, select_rows


def make_dataset(n_samples=10, with_target=True):
    X = np.arange(n_samples * 2, dtype=np.float32).reshape(n_samples, 2)
    y = X[:, :1] * 10 if with_target else None
    return Dataset(X, y)


def test_every_sample_once_per_epoch_with_a_partial_last_batch():
    batches = TensorBatches(make_dataset(10), batch_size=4, shuffle=True)
    assert len(batches) == 3
    for _ in range(3):
        epoch = list(batches)
        assert [len(X) for X, _ in epoch] == [4, 4, 2]
        rows = torch.cat([X for X, _ in epoch])[:, 0] / 2
        assert sorted(rows.tolist()) == list(range(10))
        # Targets stay aligned with their rows after shuffling.
        for X, y in epoch:
            torch.testing.assert_close(y[:, 0], X[:, 0] * 10)


@pytest.mark.parametrize("chunk_elements", [1, 8, 2**20])
def test_chunked_gathering_yields_the_batches_of_one_permutation(monkeypatch, chunk_elements):
    # Rows are gathered a chunk at a time (several chunks when the chunk is small); the
    # batches are exactly those of slicing one permutation batch by batch.
    monkeypatch.setattr("sktorch_mlp._training.batches.CHUNK_ELEMENTS", chunk_elements)
    dataset = make_dataset(23)
    batches = TensorBatches(dataset, batch_size=4, shuffle=True)
    torch.manual_seed(3)
    epoch = list(batches)
    torch.manual_seed(3)
    order = torch.randperm(23)
    expected = [order[start : start + 4] for start in range(0, 23, 4)]
    assert len(epoch) == len(expected) == 6
    for (X, y), rows in zip(epoch, expected, strict=True):
        assert torch.equal(X, torch.from_numpy(dataset.X)[rows])
        assert torch.equal(y, torch.from_numpy(dataset.y)[rows])


def test_shuffle_draws_a_new_order_each_epoch_from_torch_generator():
    batches = TensorBatches(make_dataset(50), batch_size=50, shuffle=True)
    torch.manual_seed(0)
    first, second = (next(iter(batches))[0][:, 0] for _ in range(2))
    assert not torch.equal(first, second)
    torch.manual_seed(0)
    assert torch.equal(next(iter(batches))[0][:, 0], first)


def test_without_shuffle_order_is_kept_and_target_may_be_missing():
    batches = TensorBatches(make_dataset(5, with_target=False), batch_size=2)
    epoch = list(batches)
    assert all(y is None for _, y in epoch)
    assert torch.cat([X for X, _ in epoch])[:, 0].tolist() == [0, 2, 4, 6, 8]


def test_as_tensor_shares_memory_and_copies_read_only_arrays():
    array = np.ones((3, 2), dtype=np.float32)
    assert as_tensor(array).data_ptr() == array.ctypes.data
    array.flags.writeable = False
    tensor = as_tensor(array)
    assert tensor.data_ptr() != array.ctypes.data
    assert torch.equal(tensor, torch.ones(3, 2))


class _TooLargeForTheDevice:
    """Stands in for a tensor whose copy to the GPU runs out of memory."""

    device = torch.device("cpu")

    def to(self, device):
        raise torch.OutOfMemoryError("CUDA out of memory")

    def pin_memory(self):
        return self


def test_data_that_does_not_fit_on_the_device_stays_on_the_host():
    data = _TooLargeForTheDevice()
    assert place_on_device(data, "cuda:0") is data


def test_data_that_does_not_fit_on_a_gpu_is_pinned(monkeypatch):
    class Pinnable(_TooLargeForTheDevice):
        def pin_memory(self):
            return "pinned copy"

    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    assert place_on_device(Pinnable(), "cuda:0") == "pinned copy"
    assert emptied == [True]  # what the failed copy left cached is given back first


def fake_pinning(monkeypatch, *pinned):
    """Make ``is_pinned`` true for the given tensors and for what ``pin_memory`` returns."""
    pinned = list(pinned)
    pin_calls = []

    def pin_memory(tensor):
        copy = tensor.clone()
        pinned.append(copy)
        pin_calls.append(len(copy))
        return copy

    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda t: any(t is p for p in pinned))
    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    return pin_calls


def test_rows_gathered_from_pinned_memory_are_pinned_again(monkeypatch):
    host = torch.arange(20.0).reshape(10, 2)
    pin_calls = fake_pinning(monkeypatch, host)
    rows = torch.tensor([7, 2, 5])
    gathered = select_rows(host, rows)
    assert torch.equal(gathered, host[rows]) and gathered.is_pinned()
    assert select_rows(host, slice(2, 6)).data_ptr() == host[2].data_ptr()  # a view stays pinned
    assert pin_calls == [3]
    assert not select_rows(torch.arange(4.0), torch.tensor([1])).is_pinned()  # pageable stays so


def test_shuffled_batches_from_pinned_host_memory_are_copied_from_pinned_chunks(monkeypatch):
    batches = TensorBatches(make_dataset(10), batch_size=4, shuffle=True)
    # Where the data set did not fit on the GPU: host-resident, pinned, and copied per chunk.
    pin_calls = fake_pinning(monkeypatch, batches.X, batches.y)
    monkeypatch.setattr("sktorch_mlp._training.batches.CHUNK_ELEMENTS", 8)  # chunks of 4 rows
    epoch = list(batches)
    assert pin_calls == [4, 4, 4, 4, 2, 2]  # X and y of each chunk
    assert sorted(torch.cat([X for X, _ in epoch])[:, 0].tolist()) == list(range(0, 20, 2))
    for X, y in epoch:
        assert torch.equal(y, X[:, :1] * 10)


def test_data_already_on_the_device_is_not_copied():
    tensor = torch.ones(2)
    assert place_on_device(tensor, "cpu") is tensor


@pytest.mark.cuda
def test_host_resident_batches_are_copied_to_the_device():
    batches = TensorBatches(make_dataset(6), batch_size=4, device="cuda")
    batches.X, batches.y = batches.X.cpu().pin_memory(), batches.y.cpu().pin_memory()
    for X, y in batches:
        assert X.is_cuda and y.is_cuda
