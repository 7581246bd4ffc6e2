"""Layers that compute the members of an ensemble side by side."""

import torch
from torch import nn


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
