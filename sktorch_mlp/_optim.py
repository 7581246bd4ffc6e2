"""AdamW's step, without ``Optimizer.step``'s per-call Python work.

With a fused AdamW the update of every parameter is one kernel, but each call of
``optimizer.step()`` first runs about a hundred microseconds of Python: it opens a
profiler range, runs the step hooks, gathers each parameter's state into lists,
and groups the tensors by device and dtype. At tabular batch sizes that is a tenth
of the training step. :func:`adamw_step` calls the fused kernel directly whenever
none of that work is needed, and ``optimizer.step()`` otherwise; the parameters and
the optimizer's state end up the same either way.
"""

import functools

import torch
from torch.optim import optimizer as _optimizer_module


def adamw_step(optimizer):
    """Update the parameters with their gradients, as ``optimizer.step()`` does.

    The direct path is taken when ``optimizer`` is a fused ``torch.optim.AdamW``
    with one parameter group, plain options (no amsgrad, maximize, capturable or
    differentiable), a float learning rate, state already created (the first
    step goes through ``optimizer.step()``), a gradient for every parameter, and
    no step hooks; and when this version of torch offers the fused kernel with
    the signature used here.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    """
    if not _direct_step_possible(optimizer):
        optimizer.step()
        return
    group = optimizer.param_groups[0]
    params = group["params"]
    states = [optimizer.state[param] for param in params]
    steps = [state["step"] for state in states]
    torch._foreach_add_(steps, 1)  # the step count each update's bias correction uses
    beta1, beta2 = group["betas"]
    torch._fused_adamw_(
        params,
        [param.grad for param in params],
        [state["exp_avg"] for state in states],
        [state["exp_avg_sq"] for state in states],
        [],
        steps,
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=False,
    )


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
