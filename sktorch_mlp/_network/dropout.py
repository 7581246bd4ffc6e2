"""Dropout whose masks come from random integer bits, drawn a block at a time."""

import math

import numpy as np
import torch
from torch import nn


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose masks come from random integer bits, drawn a block at a time.

    ``torch.bernoulli`` produces one random float per element and, at tabular batch
    sizes, costs more than the matrix product it follows. Here each 64-bit random
    integer yields four 15-bit uniform numbers, compared with ``p`` in one operation,
    for a block of up to a million mask values at once; each call then takes the next
    slice of the block. On the CPU the bits come from numpy's SFC64 generator, seeded
    from torch's global generator; on a GPU, from torch's. The result is the same
    inverted dropout (kept units scaled by ``1 / (1 - p)``), with ``p`` rounded to a
    multiple of 2**-15.

    Setting the mode (``train()`` or ``eval()``, which skorch does at the start of
    every epoch) discards the block, so the masks of an epoch depend only on the
    random state at its start: a model saved or copied between epochs trains on as
    it would have without the copy.
    """

    _LEVELS = 2**15
    BLOCK_ELEMENTS = 2**20
    BLOCK_MASKS = 16
    # Device types whose mask bits come from numpy's generator; on the others, from torch's
    # generator on the device itself. Tests empty it to run the GPU's path on CPU tensors.
    _NUMPY_BITS_DEVICES = frozenset({"cpu"})

    def __init__(self, p=0.5, inplace=False):
        super().__init__(p, inplace)
        self._masks = _MaskBlock()

    def train(self, mode=True):
        self._masks.values = self._masks.generator = None
        return super().train(mode)

    @property
    def scale(self):
        """The factor kept units are multiplied by: the inverse of the keep rate."""
        return self._LEVELS / (self._LEVELS - self._threshold) if self.p > 0 else 1.0

    @property
    def _threshold(self):
        return min(round(self.p * self._LEVELS), self._LEVELS - 1)

    def forward(self, X):
        if not self.training or self.p == 0:
            return X
        return X * self._eager_mask(X.shape, X.device) * self.scale

    def mask(self, shape, device):
        """Return the next keep mask: 0 with probability ``p``, else 1.

        Kept units are to be scaled by :attr:`scale`. The mask is a view of the
        current block, valid until the next call.

        Parameters
        ----------
        shape : tuple of int
        device : torch.device

        Returns
        -------
        Tensor of float32, of the given shape
        """
        masks, n = self._masks, math.prod(shape)
        if masks.values is None or masks.taken + n > len(masks.values):
            # Small models draw small blocks, so that a tiny data set does not pay for a
            # million values per epoch.
            size = max(n, min(self.BLOCK_MASKS * n, self.BLOCK_ELEMENTS))
            self._draw(size, torch.device(device))
        masks.taken += n
        return masks.values[masks.taken - n : masks.taken].view(shape)

    # torch.compile runs the mask's draw as ordinary Python: it keeps state between calls
    # and uses numpy's generator, which a compiled graph would freeze or break on.
    _eager_mask = torch.compiler.disable(mask)

    def _draw(self, n, device):
        """Fill the block with ``n`` new mask values, reusing its memory when it can."""
        masks = self._masks
        if masks.buffer is None or len(masks.buffer) < n or masks.buffer.device != device:
            # Fresh memory of this size costs a page fault per page on first use, more than
            # drawing the numbers; the buffer is kept across blocks and epochs.
            masks.buffer = torch.empty(n, device=device)
        n_words = (n + 3) // 4
        if device.type in self._NUMPY_BITS_DEVICES:
            # numpy's SFC64 generator produces 64 random bits twice as fast as torch's CPU
            # generator; it is seeded from torch's, once per epoch, so ``manual_seed``
            # still fixes the masks.
            if masks.generator is None:
                masks.generator = np.random.SFC64(int(torch.randint(2**62, ())))
            words = torch.from_numpy(masks.generator.random_raw(n_words).view(np.int64))
        else:
            words = torch.empty(n_words, dtype=torch.int64, device=device).random_()
        # Keep 15 bits of each 16-bit lane (random_() leaves the sign bit of a word at 0),
        # clearing the top bit of all four lanes in one 64-bit operation.
        lanes = words.bitwise_and_(0x7FFF_7FFF_7FFF_7FFF).view(torch.int16)[:n]
        # One comparison, written straight into the float block.
        masks.values = torch.ge(lanes, self._threshold, out=masks.buffer[:n])
        masks.taken = 0


class _MaskBlock:
    """A dropout layer's current block of masks: plain attributes, which a mask per
    batch reads and writes faster than an ``nn.Module``'s."""

    def __init__(self):
        self.values, self.taken, self.buffer, self.generator = None, 0, None, None
