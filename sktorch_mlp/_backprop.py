"""Forward and backward propagation of the training loss, written out by hand.

At tabular batch sizes a training step is paid per tensor operation, not per number:
autograd records and replays every operation, and each ``nn.Module`` call adds its own
dispatch. :func:`mse_backprop` computes the (weighted) mean squared error of an
:class:`~sktorch_mlp._module.MLP` and the gradient of every parameter with few
operations:

- each layer adds its bias inside the matrix product (``addmm``/``baddbmm``);
- ReLU and dropout take two in-place operations forward, and one threshold backward;
- the dropout scale is folded into the factor of the matrix product before it;
- no graph is recorded, except through the periodic embedding, whose parameters
  autograd finishes from the gradient of its output.

The gradients are those of ``MSELoss(...)(module(X), y).backward()`` with the same
dropout masks, up to float rounding.
"""

import torch
from torch import nn

from ._module import Dropout, EnsembleLinear

# Gradient of ReLU given its output: the incoming gradient where the output is positive.
# This is the operation autograd itself runs for ReLU; the output of ReLU and dropout is
# positive exactly where the unit is active and kept.
_threshold_backward = torch.ops.aten.threshold_backward


def mse_backprop(module, X, y, weight=None):
    """Compute the training loss of ``module`` and store every parameter's gradient.

    Parameters
    ----------
    module : MLP
        In training mode; its gradients are None (``zero_grad(set_to_none=True)``).
    X : Tensor of shape (n_samples, n_features)
    y : Tensor of shape (n_samples, n_outputs)
    weight : Tensor of shape (n_samples, 1) or None
        Sample weights, multiplying each squared error.

    Returns
    -------
    loss : Tensor
        The mean of the (weighted) squared errors over every member, sample and
        output, detached, as ``MSELoss`` computes it.
    y_pred : Tensor
        ``module(X)``: of shape (n_samples, n_outputs), or (ensemble_size,
        n_samples, n_outputs) for an ensemble.
    """
    embedded = module.embedding(X)  # the only part autograd records
    blocks = _hidden_blocks(module.hidden)
    with torch.no_grad():
        inputs = embedded.detach()
        if module.ensemble_size > 1:
            inputs = inputs.expand(module.ensemble_size, *inputs.shape)
        # Forward: keep each layer's input for the weight gradients.
        layer_inputs, hidden = [], inputs
        for linear, dropout in blocks:
            layer_inputs.append(hidden)
            hidden = _forward(linear, hidden).clamp_min_(0)
            if dropout.p > 0:
                hidden.mul_(dropout.mask(hidden.shape, hidden.device))
        layer_inputs.append(hidden)
        y_pred = _forward(module.output, hidden)

        error = y_pred - y
        weighted_error = error if weight is None else error * weight
        loss = (weighted_error * error).mean()

        # Backward, from d loss / d y_pred = 2 * weighted error / number of terms.
        linears = [linear for linear, _ in blocks] + [module.output]
        # The dropout scale of the block feeding each layer: it multiplies that block's
        # gradient, and is applied in the matrix product that computes it.
        scales = [1.0] + [dropout.scale for _, dropout in blocks]
        gradient = weighted_error.mul_(2 / error.numel())
        for index in reversed(range(len(linears))):
            linear, layer_input = linears[index], layer_inputs[index]
            linear.weight.grad, linear.bias.grad = _parameter_gradients(
                linear, layer_input, gradient
            )
            if index > 0:
                gradient = _input_gradient(linear, gradient, scales[index])
                gradient = _threshold_backward(gradient, layer_input, 0)
            elif embedded.requires_grad:
                gradient = _input_gradient(linear, gradient, 1.0)
                if module.ensemble_size > 1:
                    gradient = gradient.sum(dim=0)  # the members share the embedding
    if embedded.requires_grad:
        embedded.backward(gradient)
    return loss, y_pred


def _hidden_blocks(hidden):
    """Pair each hidden linear layer with its dropout (Linear, ReLU, Dropout blocks)."""
    layers = list(hidden)
    blocks = list(zip(layers[0::3], layers[2::3], strict=True))
    assert all(
        isinstance(relu, nn.ReLU) and isinstance(dropout, Dropout)
        for relu, (_, dropout) in zip(layers[1::3], blocks, strict=True)
    ), "hidden blocks must be Linear -> ReLU -> Dropout"
    return blocks


def _forward(linear, X):
    if isinstance(linear, EnsembleLinear):
        return torch.baddbmm(linear.bias, X, linear.weight)
    return torch.addmm(linear.bias, X, linear.weight.T)


def _parameter_gradients(linear, layer_input, gradient):
    """Gradients of the weight and bias, given the layer's input and output gradient."""
    if isinstance(linear, EnsembleLinear):
        return layer_input.mT @ gradient, gradient.sum(dim=1, keepdim=True)
    return gradient.T @ layer_input, gradient.sum(dim=0)


def _input_gradient(linear, gradient, scale):
    """Gradient of the layer's input, multiplied by ``scale``."""
    zero = gradient.new_zeros(())  # ignored (beta=0): only the product, times alpha, is kept
    if isinstance(linear, EnsembleLinear):
        return torch.baddbmm(zero, gradient, linear.weight.mT, beta=0, alpha=scale)
    return torch.addmm(zero, gradient, linear.weight, beta=0, alpha=scale)
