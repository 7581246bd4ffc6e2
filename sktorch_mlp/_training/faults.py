"""Faults during training and prediction, detected and explained to the user.

A loss or weights that overflow (NaN or inf), an interrupted fit, memory that runs
out, and a model pickled by another version of the package each end in a fitted
model that still predicts finite values, or in an error that says what to change.
"""

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.exceptions import InconsistentVersionWarning as _SklearnInconsistentVersionWarning
from skorch.callbacks import Callback, EarlyStopping


class TrainingGuard(Callback):
    """Stop training when it diverges, and keep the last good weights.

    After every epoch the recorded losses (``train_loss``, and ``valid_loss``
    with early stopping) and the weights are checked for NaN and inf: a loss
    can still be finite when the epoch's last optimizer step overflowed the
    weights. The weights of the last epoch that passes are kept (a copy, made
    in place). When an epoch fails, training stops and the model returns to
    the best epoch's weights (with early stopping) or to the last good ones, a
    :class:`~sklearn.exceptions.ConvergenceWarning` says what happened and what
    to change, and the optimizer's state, which saw the overflow, is reset. If
    no epoch of this call passed and no earlier weights exist, a ``ValueError``
    is raised instead, so that a model never predicts NaN silently.

    skorch stops training on ``KeyboardInterrupt`` (early stopping raises it
    too) and still runs ``on_train_end``. There, an interrupt by the user is
    told from a normal end: the partial record of an interrupted epoch is
    dropped from the history, the weights of the last complete epoch (or of
    the best one, with early stopping) are kept, and a ``UserWarning`` names
    the epoch reached. An interrupt before the first epoch of the call
    completes is raised again, as there is nothing new to keep.

    Attributes
    ----------
    kept_epoch_ : int or None
        After training, the epoch (counting from 1) whose weights the module
        holds when this callback intervened (divergence or interrupt); None
        when training ended normally.
    """

    def on_train_begin(self, net, **kwargs):
        self.kept_epoch_ = None
        self._start_epoch = self._checked_epoch = len(net.history)
        self._good_epoch = self._good_weights = self._diverged = None
        # A resumed fit (warm_start, partial_fit) can fall back to the weights it starts from.
        if self._start_epoch and _all_finite(net.module_.parameters()):
            self._keep_weights(net, self._start_epoch)

    def on_epoch_end(self, net, **kwargs):
        if not self._check_last_epoch(net):
            raise KeyboardInterrupt  # how skorch callbacks stop training, as EarlyStopping does

    def on_train_end(self, net, **kwargs):
        history = net.history
        interrupted, interrupted_in = False, None
        if len(history) > self._start_epoch and not _epoch_complete(net, history[-1]):
            # Interrupted inside an epoch: drop its partial record (no losses to read).
            interrupted, interrupted_in = True, len(history)
            history.pop()
        elif self._diverged is None and len(history) > self._checked_epoch:
            # Another callback stopped training before this one saw the last epoch.
            self._check_last_epoch(net)
        n_epochs = len(history) - self._start_epoch
        if (
            not interrupted
            and self._diverged is None
            and n_epochs < net.max_epochs
            and not _stopped_early(net)
        ):
            interrupted = True  # by the user, between two epochs
        try:
            if self._diverged is not None:
                self._recover_from_divergence(net)
            elif interrupted:
                self._recover_from_interrupt(net, n_epochs, interrupted_in)
        finally:
            self._good_weights = None  # not to be pickled with the model

    def _check_last_epoch(self, net):
        """Whether the last epoch's losses and the weights are finite; keep them if so."""
        epoch = self._checked_epoch = len(net.history)
        row = net.history[-1]
        bad = {
            name: float(row[key])
            for key, name in (("train_loss", "training loss"), ("valid_loss", "validation loss"))
            if key in row and not np.isfinite(row[key])
        }
        if not bad and _all_finite(net.module_.parameters()):
            self._keep_weights(net, epoch)
            return True
        self._diverged = (epoch, bad)
        return False

    def _keep_weights(self, net, epoch):
        state = net.module_.state_dict()
        if self._good_weights is None:
            self._good_weights = {name: tensor.detach().clone() for name, tensor in state.items()}
        else:
            for name, tensor in state.items():
                self._good_weights[name].copy_(tensor)
        self._good_epoch = epoch

    def _restore_weights(self, net):
        """Load the weights to keep; returns their epoch and how they were chosen, or None."""
        best = _best_weights_callback(net)
        if best is not None:
            # EarlyStopping.on_train_end, which runs before this callback, has loaded them.
            return best.best_epoch_, "the best epoch"
        if self._good_weights is None:
            return None
        net.module_.load_state_dict(self._good_weights)
        return self._good_epoch, "the last complete epoch with finite losses"

    def _recover_from_divergence(self, net):
        epoch, bad = self._diverged
        what = (
            " and ".join(f"the {name} became {value}" for name, value in bad.items())
            if bad
            else "the weights overflowed to NaN or inf (the losses were still finite)"
        )
        advice = (
            f"This usually means the learning rate is too high: lower lr (now {net.lr:g}) "
            "by a factor of 10 or more. Extreme values in X also cause it when "
            "input_transform='none'; input_transform='quantile' bounds them."
        )
        kept = self._restore_weights(net)
        if kept is None:
            raise ValueError(
                f"Training diverged in epoch {epoch}: {what}, and no epoch ended with finite "
                f"losses, so there are no weights to keep. {advice}"
            )
        self.kept_epoch_, which = kept
        # Adam's moment estimates saw the overflow; continuing with them would diverge again.
        net.optimizer_.state.clear()
        warnings.warn(
            f"Training stopped in epoch {epoch}: {what}. The model keeps the weights of "
            f"epoch {self.kept_epoch_}, {which}. {advice}",
            ConvergenceWarning,
            stacklevel=2,
        )

    def _recover_from_interrupt(self, net, n_epochs, interrupted_in):
        kept = self._restore_weights(net) if n_epochs else None
        if kept is None:
            raise KeyboardInterrupt  # no epoch of this call completed: nothing new to keep
        self.kept_epoch_, which = kept
        if interrupted_in is None:
            when = f"after epoch {len(net.history)}"
        else:
            when = f"during epoch {interrupted_in}"
        warnings.warn(
            f"Training was interrupted (KeyboardInterrupt) {when}, with {n_epochs} epoch(s) of "
            f"this call complete out of max_epochs={net.max_epochs}. The model is fitted and "
            f"usable: it keeps the weights of epoch {self.kept_epoch_}, {which}. Call fit to "
            "train again, or continue training with warm_start=True or partial_fit.",
            UserWarning,
            stacklevel=2,
        )


def _all_finite(tensors):
    """Whether every tensor is free of NaN and inf, read with one device synchronization."""
    checks = [torch.isfinite(tensor).all() for tensor in tensors]
    return bool(torch.stack(checks).all()) if checks else True


def _epoch_complete(net, row):
    """Whether skorch recorded the epoch's losses, i.e. it was not interrupted midway."""
    return "train_loss" in row and (net.train_split is None or "valid_loss" in row)


def _early_stopping_callbacks(net):
    return [cb for _, cb in net.callbacks_ if isinstance(cb, EarlyStopping)]


def _stopped_early(net):
    return any(cb.misses_ >= cb.patience for cb in _early_stopping_callbacks(net))


def _best_weights_callback(net):
    """The EarlyStopping callback holding this call's best weights, if any."""
    for cb in _early_stopping_callbacks(net):
        if cb.load_best and cb.best_model_weights_ is not None:
            return cb
    return None


def out_of_memory_error(exc, device, action, remedies, *, suggest_cpu=True):
    """An out-of-memory error that says what ran out and what to change.

    Parameters
    ----------
    exc : BaseException
        The original error: ``torch.OutOfMemoryError`` from a GPU, or the
        ``RuntimeError`` of torch's CPU allocator.
    device : str
        The torch device, such as "cpu" or "cuda:0".
    action : str
        What was running, such as "training".
    remedies : list of str
        What the user can change.
    suggest_cpu : bool, default=True
        Whether to add ``device='cpu'`` to the remedies when a GPU ran out.

    Returns
    -------
    torch.OutOfMemoryError or MemoryError
        ``torch.OutOfMemoryError`` for a GPU, so that code catching it still
        does; Python's ``MemoryError`` for the CPU.
    """
    text = str(exc).strip()
    first_line = text.splitlines()[0] if text else type(exc).__name__
    on_gpu = isinstance(exc, torch.OutOfMemoryError)
    if on_gpu and suggest_cpu:
        remedies = [*remedies, "device='cpu'"]
    choices = remedies[0] if len(remedies) == 1 else f"{', '.join(remedies[:-1])} or {remedies[-1]}"
    message = (
        f"Out of memory while {action} on {device}: {first_line} Use {choices}. "
        "The estimator was left as it was before this call."
    )
    return torch.OutOfMemoryError(message) if on_gpu else MemoryError(message)


def is_out_of_memory(exc):
    """Whether ``exc`` is torch running out of GPU or CPU memory."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    )


def release_cached_memory(device):
    """Give the GPU memory torch's caching allocator holds but no tensor uses back to the GPU."""
    if str(device).startswith("cuda") and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class InconsistentVersionWarning(_SklearnInconsistentVersionWarning):
    """A model is unpickled by another version of sktorch_mlp than the one that pickled it.

    A subclass of scikit-learn's
    :class:`~sklearn.exceptions.InconsistentVersionWarning`, so filters and
    handlers written for scikit-learn's warning catch it too.

    Parameters
    ----------
    estimator_name : str
        The estimator's class name.
    current_version : str
        The installed version of sktorch_mlp.
    original_version : str
        The version that pickled the model, or "unknown" for pickles made before
        sktorch_mlp recorded it.
    """

    def __init__(self, *, estimator_name, current_version, original_version):
        super().__init__(
            estimator_name=estimator_name,
            current_sklearn_version=current_version,
            original_sklearn_version=original_version,
        )

    def __str__(self):
        original = self.original_sklearn_version
        load_with = "" if original == "unknown" else f", or load it with sktorch_mlp=={original}"
        return (
            f"Trying to unpickle estimator {self.estimator_name} from sktorch_mlp version "
            f"{original} when using sktorch_mlp version {self.current_sklearn_version}. "
            "This might lead to breaking code or invalid results. Use at your own risk: to be "
            f"safe, refit the model with this version{load_with}."
        )
