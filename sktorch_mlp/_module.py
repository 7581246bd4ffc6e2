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
        keep = uniform >= threshold
        return X * keep * (self._LEVELS / (self._LEVELS - threshold))


class MLP(nn.Module):
    """Multi-layer perceptron for regression.

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

    Notes
    -----
    Weights start small and random, biases at zero: hidden layers use Kaiming
    (He) normal initialization, which keeps the variance of activations
    roughly constant through ReLU layers; the output layer uses the same rule
    with a linear gain. Randomness comes from torch's global generator, which
    the caller seeds.
    """

    def __init__(self, n_features, n_outputs, hidden_layer_sizes=(256, 256), dropout=0.1):
        super().__init__()
        layers = []
        width_in = n_features
        for width in hidden_layer_sizes:
            layers += [nn.Linear(width_in, width), nn.ReLU(), Dropout(dropout)]
            width_in = width
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width_in, n_outputs)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Draw new weights (Kaiming normal) and set every bias to zero."""
        for layer in self.hidden:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        nn.init.kaiming_normal_(self.output.weight, nonlinearity="linear")
        nn.init.zeros_(self.output.bias)

    def forward(self, X):
        """Map a batch of shape (n_samples, n_features) to (n_samples, n_outputs)."""
        return self.output(self.hidden(X))
