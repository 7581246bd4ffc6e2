"""The PyTorch network: a stack of Linear -> ReLU -> Dropout blocks and a linear output."""

import torch
from torch import nn


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
            layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(dropout)]
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
