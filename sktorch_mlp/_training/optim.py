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
tensor, a view of its slice, and the update of each parameter group (the input
embedding can have a weight decay of its own) is one kernel on four slices of the buffers.

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
    whose parameter groups have plain options (no amsgrad, maximize, capturable or
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
    layout.step(optimizer.param_groups)
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
            layout.step(self.optimizer.param_groups)
        else:
            self._layout = adamw_step(self.optimizer)


def _direct_step_possible(optimizer):
    if type(optimizer) is not torch.optim.AdamW:
        return False
    for group in optimizer.param_groups:
        if not group.get("fused") or any(
            group.get(option) for option in ("amsgrad", "maximize", "capturable", "differentiable")
        ):
            return False
        numbers = (group["lr"], *group["betas"], group["eps"], group["weight_decay"])
        if not all(isinstance(value, float | int) for value in numbers):
            return False  # e.g. a tensor learning rate
    params = _all_params(optimizer)
    if not params or any(param.grad is None or param not in optimizer.state for param in params):
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


def _all_params(optimizer):
    """The parameters of every group of ``optimizer``, group after group, but empty ones.

    A parameter of no elements (a network's vectors for one-hot groups, on a table
    without any) has nothing to update and never a gradient, so ``optimizer.step()``
    skips it; so does the direct step.
    """
    return [param for group in optimizer.param_groups for param in _group_params(group)]


def _group_params(group):
    return [param for param in group["params"] if param.numel()]


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

    The parameters lie group after group, so that each parameter group is one slice
    of every buffer, updated by one kernel with the group's options.

    Parameters
    ----------
    optimizer : torch.optim.AdamW
        Whose parameters all have a gradient and a state, of one dtype and device,
        at the same step.
    """

    def __init__(self, optimizer):
        params = _all_params(optimizer)
        states = [optimizer.state[param] for param in params]
        with torch.no_grad():
            self.params = torch.cat([param.detach().reshape(-1) for param in params])
            self.grads = torch.cat([param.grad.reshape(-1) for param in params])
            self.exp_avgs = torch.cat([state["exp_avg"].reshape(-1) for state in states])
            self.exp_avg_sqs = torch.cat([state["exp_avg_sq"].reshape(-1) for state in states])
            self.steps = torch.stack([state["step"] for state in states])
        self.step_count = self.steps[0]  # all equal; the kernel reads one for each slice
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
        # Each group's slices of the four buffers, made once: a view costs a few
        # microseconds, and a step would otherwise make four per group.
        self.group_sizes, self._slices, start = [], [], 0
        buffers = (self.params, self.grads, self.exp_avgs, self.exp_avg_sqs)
        for group in optimizer.param_groups:
            params = _group_params(group)
            stop = start + sum(param.numel() for param in params)
            self.group_sizes.append(len(params))
            self._slices.append(tuple(buffer[start:stop] for buffer in buffers))
            start = stop

    def step(self, groups):
        """One AdamW update of every parameter, each group with its own options.

        Parameters
        ----------
        groups : list of dict
            The optimizer's ``param_groups``, in the order the layout was built from.
        """
        self.steps.add_(1)  # every parameter's step count, which the bias correction uses
        for group, (params, grads, exp_avgs, exp_avg_sqs) in zip(groups, self._slices, strict=True):
            if not len(params):
                continue
            beta1, beta2 = group["betas"]
            torch._fused_adamw_(
                [params],
                [grads],
                [exp_avgs],
                [exp_avg_sqs],
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
        params = _all_params(optimizer)
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
        if [len(_group_params(group)) for group in optimizer.param_groups] != self.group_sizes:
            return False
        params = _all_params(optimizer)
        for param, (expected, data_ptr, views) in zip(params, self._views, strict=True):
            if param is not expected or param.data_ptr() != data_ptr:
                return False
            state = optimizer.state.get(param)
            current = (param.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])
            if any(tensor is not view for tensor, view in zip(current, views, strict=True)):
                return False
        return True
