"""Forward and backward propagation of the training loss, written out by hand.

At tabular batch sizes a training step is paid per tensor operation, not per number:
autograd records and replays every operation, and each ``nn.Module`` call adds its own
dispatch. :func:`mse_backprop` computes the (weighted) mean squared error of an
:class:`~sktorch_mlp._module.MLP` and the gradient of every parameter with few
operations:

- each layer adds its bias inside the matrix product (``addmm``/``baddbmm``);
- ReLU and dropout take two in-place operations forward, and one threshold backward;
- dropout's masks hold 0 or 1, and the scale of the units it keeps is the factor
  (``alpha``) of the matrix products that read them, not an operation of its own;
- no graph is recorded, except through the periodic embedding, whose parameters
  autograd finishes from the gradient of its output.

The gradients are those of ``MSELoss(...)(module(X), y).backward()`` with the same
dropout masks, up to float rounding.
"""

import torch

# Gradient of ReLU given its output: the incoming gradient where the output is positive.
# This is the operation autograd itself runs for ReLU; the output of ReLU and dropout is
# positive exactly where the unit is active and kept.
_threshold_backward = torch.ops.aten.threshold_backward


def mse_backprop(module, X, y, weight=None):
    """Compute the training loss of ``module`` and set every parameter's gradient.

    The gradients replace those in ``.grad``; they are not added to them, so the
    optimizer's ``zero_grad`` is not needed. They are written into the existing
    gradient tensors where there are any.

    Parameters
    ----------
    module : MLP
        In training mode.
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
    # Plain tuples of the parameters: a step reads each of them twice, and nn.Module
    # attribute lookups would cost more than the smaller tensor operations.
    hidden_layers, output_layer, embedding = module.layers()
    ensemble = module.ensemble_size > 1
    embedded = X if embedding is None else embedding(X)  # the only part autograd records
    with torch.no_grad():
        hidden = embedded.detach()
        if ensemble:
            hidden = hidden.expand(module.ensemble_size, *hidden.shape)
        # Forward: keep each layer's input for the weight gradients. Dropout's masks hold
        # 0 or 1; the scale of the kept units is each next product's alpha.
        layer_inputs = []
        for layer_weight, bias, scale, dropout in hidden_layers:
            layer_inputs.append(hidden)
            hidden = _affine(layer_weight, bias, hidden, ensemble, scale).clamp_min_(0)
            if dropout is not None:
                hidden.mul_(dropout.mask(hidden.shape, hidden.device))
        layer_inputs.append(hidden)
        output_weight, output_bias, output_scale = output_layer
        y_pred = _affine(output_weight, output_bias, hidden, ensemble, output_scale)

        error = y_pred - y
        weighted_error = error if weight is None else error * weight
        loss = (weighted_error * error).mean()

        # Backward, from d loss / d y_pred = 2 * weighted error / number of terms.
        gradient = weighted_error.mul_(2 / error.numel())
        # (In the products below, the first argument only gives the result's shape: beta=0
        # ignores its values.)
        layers = (*hidden_layers, output_layer)
        for index in range(len(layers) - 1, -1, -1):
            layer_weight, bias, scale = layers[index][:3]
            layer_input = layer_inputs[index]
            if ensemble:
                inputs_T = layer_input.transpose(1, 2)
                _set_grad(
                    layer_weight,
                    torch.baddbmm(
                        layer_weight, inputs_T, gradient, beta=0, alpha=scale, out=layer_weight.grad
                    ),
                )
                _set_grad(bias, torch.sum(gradient, dim=1, keepdim=True, out=bias.grad))
            else:
                _set_grad(
                    layer_weight,
                    torch.addmm(
                        layer_weight,
                        gradient.t(),
                        layer_input,
                        beta=0,
                        alpha=scale,
                        out=layer_weight.grad,
                    ),
                )
                _set_grad(bias, torch.sum(gradient, dim=0, out=bias.grad))
            if index == 0 and not embedded.requires_grad:
                break
            # The gradient of the layer's input, then through ReLU and dropout.
            if ensemble:
                weight_T = layer_weight.transpose(1, 2)
                gradient = torch.baddbmm(layer_input, gradient, weight_T, beta=0, alpha=scale)
            else:
                gradient = torch.addmm(layer_input, gradient, layer_weight, beta=0, alpha=scale)
            if index > 0:
                gradient = _threshold_backward(gradient, layer_input, 0)
        if embedded.requires_grad and ensemble:
            gradient = gradient.sum(dim=0)  # the members share the embedding
    if embedded.requires_grad:
        for parameter in embedding.parameters():
            if parameter.grad is not None:
                parameter.grad.zero_()  # set, not accumulated, like the other gradients
        embedded.backward(gradient)
    return loss, y_pred


def _set_grad(parameter, grad):
    """Make ``grad`` the parameter's gradient, unless it was written into it already.

    Gradients are written into the existing ``.grad`` tensors (``out=``): the
    optimizer's flat layout keeps them as views of one buffer.
    """
    if parameter.grad is not grad:
        parameter.grad = grad


def _affine(weight, bias, X, ensemble, scale):
    """A layer's output for inputs ``scale * X``, the bias added inside the product."""
    if ensemble:
        return torch.baddbmm(bias, X, weight, alpha=scale)
    return torch.addmm(bias, X, weight.t(), alpha=scale)
