"""The fitted estimator's saved state: plain Python and numpy, no torch objects.

Pickling the skorch net itself would store torch tensors and classes, which only
``pickle`` can load and which remember the device they lived on. Instead, the
estimator saves the network's configuration (numbers and strings), its weights and
Adam's moments as numpy arrays, and the training history as lists and dicts, and
rebuilds the net on load. The same state serves ``pickle``, ``joblib`` and
``skops.io``; with skops, the only types a user must trust are this package's own,
and a model trained on a GPU loads on any machine.
"""

import numpy as np
import torch
from skorch.history import History

from ._seeding import seeded_torch_rng
from ._training.device import device_for_loading
from ._training.net import build_net

# What skops.io reports as untrusted in a saved Pipeline of scikit-learn preprocessing and our
# estimator: this package's classes, and numpy.dtype, which SimpleImputer stores and skops
# (0.16) does not trust by default.
SKOPS_EXPECTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sktorch_mlp._regressor.TorchMLPRegressor",
        "sktorch_mlp._scaling.ColumnStandardizer",
        "sktorch_mlp._scaling.QuantileNormalizer",
        "sktorch_mlp._tabular.CategoricalColumns",
        "sktorch_mlp._tabular.MissingValues",
    }
)

# Optimizer flags that depend on the device the net is rebuilt on, not on the saved model.
_DEVICE_FLAGS = ("fused", "foreach", "capturable", "differentiable")


def net_state(net):
    """Return the trained state of a skorch net as plain Python and numpy values.

    Parameters
    ----------
    net : MLPNet
        An initialized net.

    Returns
    -------
    dict
        ``"module"`` (parameter name to ndarray), ``"optimizer"`` (the
        optimizer's ``state_dict`` with arrays for tensors) and ``"history"``
        (a list of dicts, one per epoch).
    """
    return {
        "module": plain(net.module_.state_dict()),
        "optimizer": plain(net.optimizer_.state_dict()),
        "history": plain(list(net.history)),
    }


def restore_net(state, config, device):
    """Rebuild a trained net from :func:`net_state`'s output.

    Parameters
    ----------
    state : dict
        What :func:`net_state` returned.
    config : dict
        The keyword arguments ``build_net`` received in ``fit``, without
        ``device``, ``verbose`` and ``validation_data``.
    device : str
        The device the model was trained on; the net is rebuilt on
        :func:`~sktorch_mlp._training.device.device_for_loading`'s choice for it.

    Returns
    -------
    MLPNet
        An initialized net holding the saved weights, optimizer state and history.
    """
    device = device_for_loading(device)
    net = build_net(**config, device=device, verbose=0)
    # Initializing draws random weights, replaced just below; the caller's random stream stays.
    with seeded_torch_rng(0, device):
        net.initialize()
    net.module_.load_state_dict(_tensors(state["module"]))
    optimizer_state = _tensors(state["optimizer"])
    fresh_groups = net.optimizer_.state_dict()["param_groups"]
    optimizer_state["param_groups"] = [
        {**saved, **{flag: fresh[flag] for flag in _DEVICE_FLAGS if flag in fresh}}
        for saved, fresh in zip(optimizer_state["param_groups"], fresh_groups, strict=True)
    ]
    net.optimizer_.load_state_dict(optimizer_state)
    net.history = History(state["history"])
    return net


def plain(value):
    """Convert tensors to ndarrays and numpy scalars to Python numbers, recursively.

    Parameters
    ----------
    value : object
        Nested dicts, lists and tuples of tensors, arrays, numbers and strings.

    Returns
    -------
    object
        The same structure holding only Python values and ndarrays.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(item) for item in value)
    return value


def _tensors(value):
    """Inverse of :func:`plain` for what torch's ``load_state_dict`` expects: arrays to tensors."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))  # a writable copy: torch shares the buffer
    if isinstance(value, dict):
        return {key: _tensors(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_tensors(item) for item in value)
    return value
