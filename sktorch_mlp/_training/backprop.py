"""Forward and backward propagation of the training loss, written out by hand.

At tabular batch sizes a training step is paid per tensor operation, not per number:
autograd records and replays every operation, and each ``nn.Module`` call adds its own
dispatch. :func:`mse_backprop` computes the (weighted) mean squared error of an
:class:`~sktorch_mlp._network.mlp.MLP` and the gradient of every parameter with few
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
        output, detached, as ``MSELoss`` computes it: the mean of the members'
        own losses, so each member's gradient comes from its own predictions.
    y_pred : Tensor
        ``module(X)``: of shape (n_samples, n_outputs), or (ensemble_size,
        n_samples, n_outputs) for an ensemble.
    """
    # Plain tuples of the parameters: a step reads each of them twice, and nn.Module
    # attribute lookups would cost more than the smaller tensor operations.
    hidden_layers, output_layer, embedding, member_scale = module.layers()
    embedded = X if embedding is None else embedding(X)  # the only part autograd records
    with torch.no_grad():
        features = embedded.detach()
        # (n_members, n_samples, width) for an ensemble: expanded without a copy for
        # independent members, scaled per member for shared ones.
        hidden = module.members_input(features)
        # Forward: keep each layer's input for the weight gradients. Dropout's masks hold
        # 0 or 1; the scale of the kept units is each next product's alpha.
        layer_inputs = []
        for layer_weight, bias, scale, dropout in hidden_layers:
            layer_inputs.append(hidden)
            hidden = _affine(layer_weight, bias, hidden, scale).clamp_min_(0)
            if dropout is not None:
                hidden.mul_(dropout.mask(hidden.shape, hidden.device))
        layer_inputs.append(hidden)
        output_weight, output_bias, output_scale = output_layer
        y_pred = _affine(output_weight, output_bias, hidden, output_scale)

        error = y_pred - y
        weighted_error = error if weight is None else error * weight
        loss = (weighted_error * error).mean()

        # Backward, from d loss / d y_pred = 2 * weighted error / number of terms.
        gradient = weighted_error.mul_(2 / error.numel())
        input_gradient_needed = embedded.requires_grad or member_scale is not None
        layers = (*hidden_layers, output_layer)
        for index in range(len(layers) - 1, -1, -1):
            layer_weight, bias, scale = layers[index][:3]
            layer_input = layer_inputs[index]
            _weight_gradients(layer_weight, bias, layer_input, gradient, scale)
            if index == 0 and not input_gradient_needed:
                break
            # The gradient of the layer's input, then through ReLU and dropout.
            gradient = _input_gradient(layer_weight, layer_input, gradient, scale)
            if index > 0:
                gradient = _threshold_backward(gradient, layer_input, 0)
        if member_scale is not None:
            # hidden = features * member_scale, broadcast over the samples.
            _set_grad(
                member_scale,
                torch.sum(gradient * features, dim=1, keepdim=True, out=member_scale.grad),
            )
            if embedded.requires_grad:
                gradient = gradient.mul_(member_scale)
        if embedded.requires_grad and gradient.dim() == 3:
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


# A layer's weight is (out, in) for a plain or shared layer (nn.Linear), whose input may be
# (n_samples, in) or, shared by the members of an ensemble, (n_members, n_samples, in); it is
# (n_members, in, out) for an ensemble's own layers (EnsembleLinear). Shared layers multiply
# the members' rows as one matrix. (In the products below, the first argument only gives the
# result's shape: beta=0 ignores its values.)


def _rows(tensor):
    """A (n_members, n_samples, width) tensor as one matrix of rows; a matrix as it is."""
    return tensor.reshape(-1, tensor.shape[-1]) if tensor.dim() == 3 else tensor


def _affine(weight, bias, X, scale):
    """A layer's output for inputs ``scale * X``, the bias added inside the product."""
    if weight.dim() == 3:
        return torch.baddbmm(bias, X, weight, alpha=scale)
    product = torch.addmm(bias, _rows(X), weight.t(), alpha=scale)
    return product.view(*X.shape[:-1], weight.shape[0])


def _weight_gradients(weight, bias, layer_input, gradient, scale):
    """Set the gradients of a layer's weight and bias from that of its output."""
    if weight.dim() == 3:
        _set_grad(
            weight,
            torch.baddbmm(
                weight, layer_input.transpose(1, 2), gradient, beta=0, alpha=scale, out=weight.grad
            ),
        )
        _set_grad(bias, torch.sum(gradient, dim=1, keepdim=True, out=bias.grad))
        return
    rows = _rows(gradient)
    _set_grad(
        weight,
        torch.addmm(weight, rows.t(), _rows(layer_input), beta=0, alpha=scale, out=weight.grad),
    )
    _set_grad(bias, torch.sum(rows, dim=0, out=bias.grad))


def _input_gradient(weight, layer_input, gradient, scale):
    """The gradient of a layer's input, of its shape, from that of its output."""
    if weight.dim() == 3:
        return torch.baddbmm(layer_input, gradient, weight.transpose(1, 2), beta=0, alpha=scale)
    product = torch.addmm(_rows(layer_input), _rows(gradient), weight, beta=0, alpha=scale)
    return product.view(layer_input.shape)
