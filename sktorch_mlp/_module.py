"""The PyTorch network: a stack of Linear -> ReLU -> Dropout blocks and a linear output."""

import torch
from torch import nn


class Dropout(nn.Dropout):
    """``nn.Dropout`` that draws its CPU mask from random integer bits.

    On the CPU, ``torch.bernoulli`` produces one random float per element, which
    for tabular-sized batches costs twice as much as the matrix product it follows.
    Here each 64-bit random integer yields four 15-bit uniform numbers, compared
    with ``p``: the same inverted dropout (kept units scaled by ``1 / (1 - p)``),
    with ``p`` rounded to a multiple of 2**-15. On CUDA the fused kernel of
    ``nn.Dropout`` is used as is.
    """

    _LEVELS = 2**15

    def forward(self, X):
        if not self.training or self.p == 0 or X.device.type != "cpu":
            return super().forward(X)
        threshold = min(round(self.p * self._LEVELS), self._LEVELS - 1)
        words = torch.empty((X.numel() + 3) // 4, dtype=torch.int64).random_()
        # random_() fills [0, 2**63): the sign bit is 0, so keep 15 bits of each 16-bit lane.
        uniform = words.view(torch.int16)[: X.numel()].view(X.shape).bitwise_and_(0x7FFF)
        # A float mask holding 0 or the inverse keep rate: one multiplication forward and
        # one backward, with no bool-to-float conversion in either.
        mask = torch.where(uniform >= threshold, self._LEVELS / (self._LEVELS - threshold), 0.0)
        return X * mask


class PeriodicEmbedding(nn.Module):
    """Embed each numeric feature with learned periodic functions (PLR embeddings).

    Every feature ``x_j`` becomes ``ReLU(W_j [cos(2 pi c_j x_j), sin(2 pi c_j x_j)] + b_j)``
    with its own learned frequencies ``c_j`` and linear map ``W_j``. This lets the
    network carve a feature into narrow ranges, which plain ReLU layers find hard on
    tabular data (Gorishniy et al., "On Embeddings for Numerical Features in Tabular
    Deep Learning", NeurIPS 2022).

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_frequencies : int, default=16
        Number of frequencies per feature.
    embedding_dim : int, default=16
        Size of each feature's embedding; the output has
        ``n_features * embedding_dim`` columns.
    frequency_scale : float, default=0.1
        Standard deviation of the initial frequencies, for standardized inputs.
    """

    def __init__(self, n_features, n_frequencies=16, embedding_dim=16, frequency_scale=0.1):
        super().__init__()
        self.frequency_scale = frequency_scale
        self.frequencies = nn.Parameter(torch.empty(n_features, n_frequencies))
        self.weight = nn.Parameter(torch.empty(n_features, 2 * n_frequencies, embedding_dim))
        self.bias = nn.Parameter(torch.empty(n_features, embedding_dim))
        self.out_features = n_features * embedding_dim
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Draw frequencies and weights; zero the biases."""
        nn.init.normal_(self.frequencies, std=self.frequency_scale)
        # Kaiming normal for ReLU with fan-in 2 * n_frequencies, per feature.
        nn.init.normal_(self.weight, std=(2 / self.weight.shape[1]) ** 0.5)
        nn.init.zeros_(self.bias)

    def forward(self, X):
        """Map (n_samples, n_features) to (n_samples, n_features * embedding_dim)."""
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
        Number of networks trained side by side on the same batches, each with
        its own initial weights and dropout masks (sharing the embedding). In
        training mode the output has shape (ensemble_size, n_samples,
        n_outputs), one prediction per member, so each member is fitted to the
        target; in evaluation mode the members' predictions are averaged.

    Notes
    -----
    Weights start small and random, biases at zero: hidden layers use Kaiming
    (He) normal initialization, which keeps the variance of activations
    roughly constant through ReLU layers; the output layer uses the same rule
    with a linear gain. Randomness comes from torch's global generator, which
    the caller seeds.
    """

    def __init__(
        self,
        n_features,
        n_outputs,
        hidden_layer_sizes=(256, 256),
        dropout=0.1,
        embedding="none",
        ensemble_size=1,
    ):
        super().__init__()
        self.ensemble_size = ensemble_size
        if embedding == "periodic":
            self.embedding = PeriodicEmbedding(n_features)
            width_in = self.embedding.out_features
        else:
            self.embedding = nn.Identity()
            width_in = n_features

        def linear(width_in, width_out):
            if ensemble_size == 1:
                return nn.Linear(width_in, width_out)
            return EnsembleLinear(ensemble_size, width_in, width_out)

        layers = []
        for width in hidden_layer_sizes:
            layers += [linear(width_in, width), nn.ReLU(), Dropout(dropout)]
            width_in = width
        self.hidden = nn.Sequential(*layers)
        self.output = linear(width_in, n_outputs)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Draw new weights (Kaiming normal) and set every bias to zero."""
        layers = [layer for layer in self.hidden if hasattr(layer, "in_features")]
        for layer, gain in [(layer, 2.0) for layer in layers] + [(self.output, 1.0)]:
            # Kaiming normal: variance gain / fan_in (2 for ReLU layers, 1 for the linear output).
            nn.init.normal_(layer.weight, std=(gain / layer.in_features) ** 0.5)
            nn.init.zeros_(layer.bias)

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
        hidden = self.embedding(X)
        hidden = hidden.expand(self.ensemble_size, *hidden.shape)
        if self.ensemble_size == 1:
            hidden = hidden[0]  # plain Linear layers take (n_samples, width)
        draws = [self.output(self.hidden(hidden)) for _ in range(n_passes)]
        return torch.stack(draws).reshape(-1, *draws[0].shape[-2:])

    def forward(self, X):
        """Map (n_samples, n_features) to (n_samples, n_outputs).

        An ensemble in training mode returns (ensemble_size, n_samples, n_outputs).
        """
        hidden = self.embedding(X)
        if self.ensemble_size == 1:
            return self.output(self.hidden(hidden))
        members = self.output(self.hidden(hidden.expand(self.ensemble_size, *hidden.shape)))
        return members if self.training else members.mean(dim=0)
