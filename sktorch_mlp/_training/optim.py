"""AdamW's step, without ``Optimizer.step``'s per-call Python work.

With a fused AdamW the update of every parameter is one kernel, but each call of
``optimizer.step()`` first runs about a hundred microseconds of Python: it opens a
profiler range, runs the step hooks, gathers each parameter's state into lists,
and groups the tensors by device and dtype. At tabular batch sizes that is a tenth
of the training step. :func:`adamw_step` calls the fused kernel directly whenever
none of that work is needed, and ``optimizer.step()`` otherwise; the parameters and
the optimizer's state end up the same either way.

The kernel still works tensor by tensor, and an MLP has two small tensors per layer.
So the direct step also lays the parameters, their gradients and AdamW's two moments
out as slices of one buffer each (:class:`FlatLayout`): every parameter stays its own
tensor, a view of its slice, and the whole update is one kernel on four buffers.

Checking that the direct step applies is itself Python work per step; within one
epoch of the engine nothing else touches the optimizer, and :class:`AdamWSteps`
makes those checks once.
"""

import functools
import weakref

import torch
from torch.optim import optimizer as _optimizer_module

# Each optimizer's flat layout, kept beside it rather than on it, so that it is neither
# pickled nor copied with the optimizer; a loaded or copied optimizer builds its own.
_layouts = weakref.WeakKeyDictionary()


def adamw_step(optimizer):
    """Update the parameters with their gradients, as ``optimizer.step()`` does.

    The direct path is taken when ``optimizer`` is a fused ``torch.optim.AdamW``
    with one parameter group, plain options (no amsgrad, maximize, capturable or
    differentiable), a float learning rate, state already created (the first
    step goes through ``optimizer.step()``), a gradient for every parameter, and
    no step hooks; when the parameters share a dtype, a device and a step count;
    and when this version of torch offers the fused kernel with the signature used
    here.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer

    Returns
    -------
    FlatLayout or None
        The layout the direct step updated; None when ``optimizer.step()`` ran.
    """
    if not _direct_step_possible(optimizer):
        optimizer.step()
        return None
    layout = _layouts.get(optimizer)
    if layout is None or not layout.holds(optimizer):
        if not FlatLayout.possible(optimizer):
            optimizer.step()
            return None
        layout = _layouts[optimizer] = FlatLayout(optimizer)
    layout.step(optimizer.param_groups[0])
    return layout


class AdamWSteps:
    """The steps of one optimizer over a run of training steps, checked once.

    :func:`adamw_step` checks before every step that the direct path still applies:
    no hooks, the same tensors in the flat layout. Within an epoch whose batches no
    callback sees, nothing but the training step itself touches the optimizer; so once
    a direct step has been taken, the following ones check only that the gradients are
    still the layout's (a backward pass may have replaced them rather than written into
    them). The learning rate and the other options are read from the parameter group
    at every step, as ``optimizer.step()`` does.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self._layout = None

    def __call__(self):
        """Update the parameters with their gradients, as ``optimizer.step()`` does."""
        layout = self._layout
        if layout is not None and layout.holds_gradients():
            layout.step(self.optimizer.param_groups[0])
        else:
            self._layout = adamw_step(self.optimizer)


def _direct_step_possible(optimizer):
    if type(optimizer) is not torch.optim.AdamW or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    if not group.get("fused") or any(
        group.get(option) for option in ("amsgrad", "maximize", "capturable", "differentiable")
    ):
        return False
    numbers = (group["lr"], *group["betas"], group["eps"], group["weight_decay"])
    if not all(isinstance(value, float | int) for value in numbers):
        return False  # e.g. a tensor learning rate
    params = group["params"]
    if any(param.grad is None or param not in optimizer.state for param in params):
        return False
    hooks = (
        getattr(optimizer, "_optimizer_step_pre_hooks", None),
        getattr(optimizer, "_optimizer_step_post_hooks", None),
        getattr(_optimizer_module, "_global_optimizer_pre_hooks", None),
        getattr(_optimizer_module, "_global_optimizer_post_hooks", None),
    )
    if any(registered is None or registered for registered in hooks):
        return False  # hooks to run, or a torch that keeps them elsewhere
    return _fused_kernel_callable(params[0].device)


@functools.cache
def _fused_kernel_callable(device):
    """Whether ``torch._fused_adamw_`` takes the arguments used above, on ``device``.

    The kernel is internal to torch; trying it once on a scratch tensor follows its
    signature across versions, and falls back to ``optimizer.step()`` if it changed.
    """
    param = torch.zeros(1, device=device)
    tensors = [[param], [torch.ones_like(param)], [torch.zeros_like(param)]]
    try:
        torch._fused_adamw_(
            tensors[0],
            tensors[1],
            tensors[2],
            [torch.zeros_like(param)],
            [],
            [torch.ones((), device=device)],
            amsgrad=False,
            lr=0.1,
            beta1=0.9,
            beta2=0.999,
            weight_decay=0.0,
            eps=1e-8,
            maximize=False,
        )
    except (AttributeError, RuntimeError, TypeError):
        return False
    return bool(param.item() != 0)  # the step moved the parameter


class FlatLayout:
    """The parameters, gradients and AdamW moments of an optimizer, as slices of one buffer each.

    Building the layout copies each tensor into its slice of a new buffer and puts the
    slice in its place: ``param.data``, ``param.grad`` and the optimizer's
    ``exp_avg``, ``exp_avg_sq`` and ``step`` entries all become views. Values,
    shapes and the optimizer's ``state_dict`` are unchanged, and a parameter is still
    its own ``nn.Parameter``. Whoever replaces one of these tensors instead of writing
    into it (loading a state dict, moving the module, assigning a new gradient) leaves
    the layout, which :meth:`holds` notices, and the next direct step builds a new one.

    Parameters
    ----------
    optimizer : torch.optim.AdamW
        With one parameter group whose parameters all have a gradient and a state,
        of one dtype and device, at the same step.
    """

    def __init__(self, optimizer):
        params = optimizer.param_groups[0]["params"]
        states = [optimizer.state[param] for param in params]
        with torch.no_grad():
            self.params = torch.cat([param.detach().reshape(-1) for param in params])
            self.grads = torch.cat([param.grad.reshape(-1) for param in params])
            self.exp_avgs = torch.cat([state["exp_avg"].reshape(-1) for state in states])
            self.exp_avg_sqs = torch.cat([state["exp_avg_sq"].reshape(-1) for state in states])
            self.steps = torch.stack([state["step"] for state in states])
        self.step_count = self.steps[0]  # all equal; the kernel reads one for the single buffer
        self._views, start = [], 0
        for index, (param, state) in enumerate(zip(params, states, strict=True)):
            stop = start + param.numel()
            param.data = self.params[start:stop].view_as(param)
            param.grad = self.grads[start:stop].view_as(param)
            state["exp_avg"] = self.exp_avgs[start:stop].view_as(param)
            state["exp_avg_sq"] = self.exp_avg_sqs[start:stop].view_as(param)
            state["step"] = self.steps[index]
            views = (param.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])
            self._views.append((param, param.data_ptr(), views))
            start = stop

    def step(self, group):
        """One AdamW update of every parameter, with the options of ``group``."""
        self.steps.add_(1)  # every parameter's step count, which the bias correction uses
        beta1, beta2 = group["betas"]
        torch._fused_adamw_(
            [self.params],
            [self.grads],
            [self.exp_avgs],
            [self.exp_avg_sqs],
            [],
            [self.step_count],
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )

    @staticmethod
    def possible(optimizer):
        """Whether the parameters share a dtype, a device and a step count.

        Reads the step counts, so on a GPU it waits for the device: it is called only
        when a layout is to be built.
        """
        params = optimizer.param_groups[0]["params"]
        first = params[0]
        if any(param.dtype != first.dtype or param.device != first.device for param in params):
            return False
        steps = torch.stack([optimizer.state[param]["step"].float() for param in params])
        return bool((steps == steps[0]).all())

    def holds_gradients(self):
        """Whether every parameter's gradient is still its view in this layout."""
        for param, _, (grad, *_) in self._views:
            if param.grad is not grad:
                return False
        return True

    def holds(self, optimizer):
        """Whether every tensor of ``optimizer``'s update is still a view in this layout."""
        params = optimizer.param_groups[0]["params"]
        if len(params) != len(self._views):
            return False
        for param, (expected, data_ptr, views) in zip(params, self._views, strict=True):
            if param is not expected or param.data_ptr() != data_ptr:
                return False
            state = optimizer.state.get(param)
            current = (param.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])
            if any(tensor is not view for tensor, view in zip(current, views, strict=True)):
                return False
        return True
