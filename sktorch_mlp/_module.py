"""The PyTorch network: a stack of Linear -> ReLU -> Dropout blocks and a linear output."""

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


class PeriodicEmbedding(nn.Module):
    """Embed each numeric feature with learned periodic functions (PLR embeddings).

    Every feature ``x_j`` becomes ``ReLU(W_j [cos(2 pi c_j x_j), sin(2 pi c_j x_j)] + b_j)``
    with its own learned frequencies ``c_j`` and linear map ``W_j``. This lets the
    network carve a feature into narrow ranges, which plain ReLU layers find hard on
    tabular data (Gorishniy et al., "On Embeddings for Numerical Features in Tabular
    Deep Learning", NeurIPS 2022).

    Features with at most two values (one-hot columns, flags) have no ranges to carve:
    any function of them is linear, which the first hidden layer already is. They are
    passed through as they are, after the embedded features, so a table of many one-hot
    columns costs no more per column than it did before embedding.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_frequencies : int, default=16
        Number of frequencies per feature.
    embedding_dim : int, default=16
        Size of each embedded feature's embedding.
    frequency_scale : float, default=0.1
        Standard deviation of the initial frequencies, for standardized inputs.
    passthrough : sequence of int, default=()
        Indices of the features that enter as they are.

    Attributes
    ----------
    out_features : int
        ``n_embedded * embedding_dim + n_passthrough`` columns.
    feature_widths : tuple of int
        How many output columns each feature takes, in the order of the output:
        ``embedding_dim`` for each embedded feature, then 1 for each passed through.
    """

    def __init__(
        self, n_features, n_frequencies=16, embedding_dim=16, frequency_scale=0.1, passthrough=()
    ):
        super().__init__()
        passthrough = sorted({int(index) for index in passthrough})
        embedded = sorted(set(range(n_features)).difference(passthrough))
        self.frequency_scale = frequency_scale
        self.frequencies = nn.Parameter(torch.empty(len(embedded), n_frequencies))
        self.weight = nn.Parameter(torch.empty(len(embedded), 2 * n_frequencies, embedding_dim))
        self.bias = nn.Parameter(torch.empty(len(embedded), embedding_dim))
        # Not in the state dict: they follow from the constructor's arguments.
        self.register_buffer("embedded", torch.tensor(embedded, dtype=torch.long), False)
        self.register_buffer("passthrough", torch.tensor(passthrough, dtype=torch.long), False)
        self.out_features = len(embedded) * embedding_dim + len(passthrough)
        self.feature_widths = (embedding_dim,) * len(embedded) + (1,) * len(passthrough)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Draw frequencies and weights; zero the biases."""
        nn.init.normal_(self.frequencies, std=self.frequency_scale)
        # Kaiming normal for ReLU with fan-in 2 * n_frequencies, per feature.
        nn.init.normal_(self.weight, std=(2 / self.weight.shape[1]) ** 0.5)
        nn.init.zeros_(self.bias)

    def forward(self, X):
        """Map (n_samples, n_features) to (n_samples, out_features)."""
        if len(self.passthrough) == 0:
            return self._embed(X)
        embedded = self._embed(X[:, self.embedded]) if len(self.embedded) else X[:, :0]
        return torch.cat([embedded, X[:, self.passthrough]], dim=1)

    def _embed(self, X):
        angles = 2 * torch.pi * self.frequencies * X[..., None]
        periodic = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        embedded = torch.einsum("nfk,fkd->nfd", periodic, self.weight) + self.bias
        return torch.relu(embedded).flatten(1)


class EnsembleLinear(nn.Module):
    """``n_members`` independent linear layers applied in one batched product.

    Maps (n_members, n_samples, in_features) to (n_members, n_samples,
    out_features): member ``m`` uses only ``weight[m]`` and ``bias[m]``.

    Parameters
    ----------
    n_members : int
    in_features : int
    out_features : int
    """

    def __init__(self, n_members, in_features, out_features):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features))

    def forward(self, X):
        return torch.baddbmm(self.bias, X, self.weight)


class MLP(nn.Module):
    """Multi-layer perceptron for regression, or a small ensemble of them.

    Each hidden block is ``Linear -> ReLU -> Dropout``; the output layer is a
    plain ``Linear`` so predictions can take any real value.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_outputs : int
        Number of regression targets.
    hidden_layer_sizes : tuple of int
        Width of each hidden layer, from input to output. An empty tuple gives
        a linear model.
    dropout : float
        Probability of zeroing each hidden unit during training. Dropout is a
        no-op in evaluation mode (``module.eval()``), so predictions are
        deterministic.
    embedding : {"none", "periodic"}, default="none"
        How each input feature enters the network: as is, or through a
        :class:`PeriodicEmbedding`.
    ensemble_size : int, default=1
        Number of members trained side by side on the same batches, each with
        its own dropout masks and output layer (sharing the embedding). In
        training mode the output has shape (ensemble_size, n_samples,
        n_outputs), one prediction per member, so each member is fitted to the
        target; in evaluation mode the members' predictions are averaged.
    ensemble_type : {"independent", "shared"}, default="independent"
        "independent": every member has its own hidden layers. "shared": the
        members share the hidden layers' weights and differ by a learned
        scaling of their input, one vector per member (:attr:`member_scale`),
        and by their output layer (TabM-mini, Gorishniy et al., "TabM: Advancing
        Tabular Deep Learning with Parameter-Efficient Ensembling", ICLR 2025).
        Unused with one member.
    passthrough_features : sequence of int, default=()
        Features that the periodic embedding passes through as they are: those
        with at most two values.

    Notes
    -----
    Weights start small and random, biases at zero: hidden layers use Kaiming
    (He) normal initialization, which keeps the variance of activations
    roughly constant through ReLU layers; the output layer uses the same rule
    with a linear gain. The members' input scales start at one random value per
    member and feature (a standard normal draw behind an embedding, a random
    sign without), so the members start different. Randomness comes from
    torch's global generator, which the caller seeds.
    """

    def __init__(
        self,
        n_features,
        n_outputs,
        hidden_layer_sizes=(256, 256),
        dropout=0.1,
        embedding="none",
        ensemble_size=1,
        ensemble_type="independent",
        passthrough_features=(),
    ):
        super().__init__()
        self.ensemble_size = ensemble_size
        if embedding == "periodic":
            self.embedding = PeriodicEmbedding(n_features, passthrough=passthrough_features)
            width_in = self.embedding.out_features
            self._feature_widths = self.embedding.feature_widths
        else:
            self.embedding = nn.Identity()
            width_in = n_features
            self._feature_widths = (1,) * n_features
        shared = ensemble_type == "shared" and ensemble_size > 1
        self.member_scale = (
            nn.Parameter(torch.empty(ensemble_size, 1, width_in)) if shared else None
        )

        def linear(width_in, width_out, own_per_member):
            if ensemble_size == 1 or not own_per_member:
                return nn.Linear(width_in, width_out)
            return EnsembleLinear(ensemble_size, width_in, width_out)

        layers = []
        for width in hidden_layer_sizes:
            layers += [linear(width_in, width, not shared), nn.ReLU(), Dropout(dropout)]
            width_in = width
        self.hidden = nn.Sequential(*layers)
        self.output = linear(width_in, n_outputs, True)
        self._layers = None  # see layers()
        self.reset_parameters()

    def members_input(self, embedded):
        """The hidden layers' input for embedded features of shape (n_samples, width).

        One member: the features themselves. Independent members: the same
        features for each, (ensemble_size, n_samples, width), without a copy.
        Shared members: each member's scaling of them, of that shape too.
        """
        if self.ensemble_size == 1:
            return embedded
        if self.member_scale is None:
            return embedded.expand(self.ensemble_size, *embedded.shape)
        return embedded * self.member_scale

    def layers(self):
        """The network's layers as plain tuples, for a training step written out by hand.

        Reading parameters through ``nn.Module`` attributes costs a Python lookup each;
        a training step reads a dozen of them. The tuples are built once and kept until
        the mode is next set (``train()`` or ``eval()``, at every epoch), so a changed
        dropout rate takes effect from the next epoch on.

        Returns
        -------
        hidden : tuple of (weight, bias, scale, dropout)
            One per hidden layer: its weight and bias parameters, the factor its
            input is scaled by (the keep scale of the dropout before it, or 1), and
            its own ``Dropout`` layer, or None when it drops nothing.
        output : tuple of (weight, bias, scale)
            The output layer's, likewise.
        embedding : nn.Module or None
            The input embedding; None when inputs enter as they are.
        member_scale : Parameter or None
            The members' input scales of a shared ensemble, of shape
            (ensemble_size, 1, width); None for other networks.
        """
        if self._layers is None:
            blocks = tuple(self.hidden)  # Linear, ReLU, Dropout, Linear, ReLU, Dropout, ...
            hidden, scale = [], 1.0
            for linear, dropout in zip(blocks[0::3], blocks[2::3], strict=True):
                hidden.append((linear.weight, linear.bias, scale, dropout if dropout.p else None))
                scale = dropout.scale
            output = (self.output.weight, self.output.bias, scale)
            embedding = None if isinstance(self.embedding, nn.Identity) else self.embedding
            self._layers = (tuple(hidden), output, embedding, self.member_scale)
        return self._layers

    def train(self, mode=True):
        self._layers = None
        return super().train(mode)

    def __getstate__(self):
        # The tuples refer to this module's parameters; a copy builds its own.
        state = super().__getstate__()
        state["_layers"] = None
        return state

    def __setstate__(self, state):
        if "member_scale" not in state and "member_scale" not in state.get("_parameters", {}):
            state = {**state, "member_scale": None}  # pickled before shared ensembles
        super().__setstate__({"_layers": None, **state})

    @torch.no_grad()
    def reset_parameters(self):
        """Draw new weights (Kaiming normal) and members' scales; set every bias to zero."""
        layers = [layer for layer in self.hidden if hasattr(layer, "in_features")]
        for layer, gain in [(layer, 2.0) for layer in layers] + [(self.output, 1.0)]:
            # Kaiming normal: variance gain / fan_in (2 for ReLU layers, 1 for the linear output).
            nn.init.normal_(layer.weight, std=(gain / layer.in_features) ** 0.5)
            nn.init.zeros_(layer.bias)
        if self.member_scale is not None:
            # One value per member and feature, repeated over the feature's embedding: as in
            # TabM, normal behind an embedding (which can absorb a sign), random signs without.
            widths = torch.tensor(self._feature_widths)
            per_feature = torch.randn(self.ensemble_size, 1, len(widths))
            if isinstance(self.embedding, nn.Identity):
                per_feature = per_feature.sign()
            self.member_scale.copy_(per_feature.repeat_interleave(widths, dim=-1))

    def member_predictions(self, X, n_passes=1):
        """Each member's prediction for ``n_passes`` draws of the dropout masks.

        The embedding, before any dropout, is computed once for all passes.
        Dropout is drawn only in training mode (``module.train()``).

        Parameters
        ----------
        X : Tensor of shape (n_samples, n_features)
        n_passes : int, default=1

        Returns
        -------
        Tensor of shape (n_passes * ensemble_size, n_samples, n_outputs)
        """
        hidden = self.members_input(self.embedding(X))
        draws = [self.output(self.hidden(hidden)) for _ in range(n_passes)]
        return torch.stack(draws).reshape(-1, *draws[0].shape[-2:])

    def forward(self, X):
        """Map (n_samples, n_features) to (n_samples, n_outputs).

        An ensemble in training mode returns (ensemble_size, n_samples, n_outputs).
        """
        members = self.output(self.hidden(self.members_input(self.embedding(X))))
        if self.ensemble_size == 1 or self.training:
            return members
        return members.mean(dim=0)
