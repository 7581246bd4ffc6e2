"""An exponential moving average of the weights, validated and kept in their place.

Adam's steps leave the weights scattered around the region the loss settles in, and
one epoch's weights are one draw from that scatter. Their moving average over the
last steps sits nearer its centre and predicts better (Polyak averaging;
the same average that ``torch.optim.swa_utils.get_ema_multi_avg_fn`` keeps). It is
kept here as tensors beside the module rather than as the second module of
``torch.optim.swa_utils.AveragedModel``: skorch's early stopping, the learning-rate
schedule and prediction all read ``net.module_``, so the average is copied into the
module's own parameters for validation and the trained weights are put back before
the next training epoch. Copying values, not replacing tensors, keeps the views of
the optimizer's flat layout (``optim.py``) intact.
"""

import torch


class WeightAverage:
    """The exponential moving average of a module's parameters, updated after every step.

    After step ``t`` the average moves towards the parameters by ``1 - decay_t``,
    where ``decay_t = min(decay, (1 + t) / (10 + t))``: early on, when the weights
    are still far from where they settle, the average follows them closely, and
    from a few hundred steps on it averages over about ``1 / (1 - decay)`` steps.

    Parameters
    ----------
    module : nn.Module
        The module whose parameters are averaged; the average starts at their
        current values.
    decay : float
        In (0, 1).
    """

    def __init__(self, module, decay):
        self.module = module
        self.decay = decay
        # The Parameter objects themselves, not their detached tensors: the optimizer's flat
        # layout later moves their values into buffers of its own (``param.data = view``),
        # which a Parameter follows and a tensor detached before would not.
        self._params = list(module.parameters())
        self._average = [param.detach().clone() for param in self._params]
        self._trained = None  # the trained weights while the average is in their place
        self.n_steps = 0

    @torch.no_grad()
    def update(self):
        """Move the average towards the parameters after a training step."""
        self.n_steps += 1
        decay = min(self.decay, (1 + self.n_steps) / (10 + self.n_steps))
        torch._foreach_lerp_(self._average, self._params, 1 - decay)

    @property
    def swapped_in(self):
        """Whether the module holds the average, its trained weights set aside."""
        return self._trained is not None

    @torch.no_grad()
    def swap_in(self):
        """Put the average in the module's parameters, keeping the trained weights aside."""
        if self._trained is None:
            self._trained = [param.detach().clone() for param in self._params]
            torch._foreach_copy_(self._params, self._average)

    @torch.no_grad()
    def swap_out(self):
        """Put the trained weights back in the module's parameters, to train on."""
        if self._trained is not None:
            torch._foreach_copy_(self._params, self._trained)
            self._trained = None
