"""The skorch engine behind :class:`~sktorch_mlp.TorchMLPRegressor`.

skorch owns the training loop (epochs, batches, callbacks, history). This module
configures it: the :class:`~sktorch_mlp._network.mlp.MLP`, a (weighted) MSE loss, AdamW,
batches fed from device-resident tensors, a learning-rate schedule, and early
stopping on a held-out validation set (one per member of an ensemble); and it replaces
the training step with one whose backward pass and optimizer step skip autograd's and
torch.optim's per-call work (``_backprop.py``, ``_optim.py``).
"""

import functools

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.callbacks import Callback, EarlyStopping, LRScheduler
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn
from torch.func import functional_call

from .._network.mlp import MLP
from .averaging import WeightAverage
from .backprop import mse_backprop
from .batches import TensorBatches
from .device import device_for_loading
from .faults import TrainingGuard
from .optim import AdamWSteps, adamw_step
from .progress import progress_callbacks

# Prediction and validation keep no activations for a backward pass, so batches can be large.
EVAL_BATCH_SIZE = 8192


@functools.cache
def supports_fused_adamw(device):
    """Whether torch's fused AdamW (one kernel for all parameters) runs on ``device``.

    It does on CUDA and, from torch 2.4, on the CPU, where it saves a third of the
    optimizer's time at tabular batch sizes. Trying it is the only check that
    follows torch's own rules across versions.

    Parameters
    ----------
    device : str
        A resolved device name such as "cpu" or "cuda:0".

    Returns
    -------
    bool
    """
    try:
        parameter = torch.zeros(1, device=device, requires_grad=True)
        parameter.grad = torch.zeros_like(parameter)
        torch.optim.AdamW([parameter], fused=True).step()
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


class MSELoss(nn.Module):
    """Mean squared error, optionally weighted per sample or per member and sample.

    Parameters
    ----------
    weighted : bool, default=False
        If True, the last column of the target holds each sample's weight
        (normalized to mean 1 over the training set), so weights travel through
        batching and shuffling together with their rows.
    n_members : int or None, default=None
        If given, the last ``n_members`` columns of the target hold each member's
        weight of the sample (0 for the rows a member holds out for validation),
        and predictions are the members' own, of shape (n_members, n_samples,
        n_outputs). Replaces ``weighted``.
    """

    def __init__(self, weighted=False, n_members=None):
        super().__init__()
        self.weighted = weighted
        self.n_members = n_members

    def split_target(self, y_true):
        """Return ``(targets, weights)``; weights are None when unweighted.

        Weights are of shape (n_samples, 1), or (n_members, n_samples, 1) per member.
        """
        if self.n_members:
            return y_true[:, : -self.n_members], y_true[:, -self.n_members :].T.unsqueeze(-1)
        if self.weighted:
            return y_true[:, :-1], y_true[:, -1:]
        return y_true, None

    def forward(self, y_pred, y_true):
        y, weight = self.split_target(y_true)
        squared_error = (y_pred - y).square()
        return squared_error.mean() if weight is None else (weight * squared_error).mean()


class MLPNet(NeuralNetRegressor):
    """skorch ``NeuralNetRegressor`` with the adjustments this package relies on.

    - Each epoch sums the squared errors per output on the device and reads them
      once at the end, not once per batch (a host-device synchronization each time
      on a GPU). From them it records the epoch's mean loss (MSE of the
      standardized target) and its RMSE in target units, ``train_rmse`` and
      ``valid_rmse``: of the members' average prediction, or, with per-member
      weights (``MSELoss(n_members=...)``), of each member's own prediction on the
      rows it trains or validates on. The history holds one batch entry per epoch
      and phase.
    - A training step computes the gradients with the hand-written backward pass of
      :func:`~sktorch_mlp._backprop.mse_backprop`, which sets them (no zeroing), and
      updates the weights with AdamW's fused kernel, called directly
      (:func:`~sktorch_mlp._optim.adamw_step`); in an epoch whose batches no callback
      sees, whether that direct call applies is checked once
      (:class:`~sktorch_mlp._optim.AdamWSteps`). With ``mixed_precision`` or
      ``compile_mode`` it goes through autograd instead.
    - With ``ema_decay``, an exponential moving average of the weights
      (:class:`~sktorch_mlp._training.averaging.WeightAverage`) follows every
      training step. Between epochs the module holds the average: validation
      scores it, the callbacks at the end of an epoch see it (early stopping keeps
      the best epoch's average, the training guard the last good one), and it is
      the model when training ends, from which a resumed fit continues. Each
      training epoch continues from the trained weights.
    - Batch notifications are sent only when a callback acts on them.
    - float64 inputs run through the float32-trained weights in float64. Predictions
      are then independent of how rows are batched (float32 matrix products round
      differently for different batch shapes) and match scikit-learn's float64 output.
    - A pickle made on a GPU machine loads on a CPU-only machine without a warning:
      the estimator documents that it runs wherever it is loaded.

    Parameters
    ----------
    target_scale : ndarray of shape (n_outputs,)
        Standard deviation of each original target column, to report RMSE in
        target units.
    mixed_precision : {None, "bfloat16", "float16"}
        Autocast dtype of the training step's matrix products; None for float32.
    compile_mode : {None, "default", "reduce-overhead", "max-autotune"}
        ``torch.compile`` mode of the network for training; None does not compile.
    ema_decay : float
        Decay per step of the moving average of the weights; 0 keeps no average.
    *args, **kwargs
        Passed to ``skorch.NeuralNetRegressor``.
    """

    def __init__(
        self,
        *args,
        target_scale=None,
        mixed_precision=None,
        compile_mode=None,
        ema_decay=0.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.target_scale = target_scale
        self.mixed_precision = mixed_precision
        self.compile_mode = compile_mode
        self.ema_decay = ema_decay

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        # Each call starts its own average, from the weights it starts from.
        average = WeightAverage(self.module_, self.ema_decay) if self.ema_decay else None
        self._weight_average = average

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        # Between epochs the module holds the average; the epoch trains the trained weights.
        # Before the callbacks, which then see (and may change) the weights about to train.
        average = getattr(self, "_weight_average", None)
        if average is not None:
            average.swap_out()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # Before the callbacks: early stopping then loads the best epoch's average, which
        # replaces this one; without it, the last average is the model.
        average = getattr(self, "_weight_average", None)
        if average is not None:
            average.swap_in()
            self._weight_average = None
        super().on_train_end(net, X=X, y=y, **kwargs)

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        # skorch opens a history entry per batch here; run_single_epoch opens one per epoch.
        pass

    def train_step(self, batch, **fit_params):
        # skorch's version wraps autograd's backward pass in an optimizer closure, offers every
        # parameter to an ``on_grad_computed`` notification and switches the module to training
        # mode, all per batch; at tabular batch sizes that bookkeeping costs as much as the
        # arithmetic. Here the gradients come from the hand-written backward pass of
        # ``mse_backprop``, the mode is set once per epoch in run_single_epoch, and no callback
        # of ours needs the gradients.
        X, y = batch
        if self.mixed_precision is not None or self.compile_mode is not None:
            return self._autograd_train_step(X, y)
        y_true, weight = self.criterion_.split_target(y)
        # Sets every gradient, so zeroing them first would be wasted work.
        loss, y_pred = mse_backprop(self.module_, X, y_true, weight)
        epoch_steps = getattr(self, "_epoch_optimizer_steps", None)
        if epoch_steps is None:
            adamw_step(self.optimizer_)
        else:
            epoch_steps()
        average = getattr(self, "_weight_average", None)
        if average is not None:
            average.update()
        return {"loss": loss, "y_pred": y_pred}

    def _autograd_train_step(self, X, y):
        """A training step through autograd, under autocast and with a compiled network.

        Used for what the hand-written backward pass does not do: matrix products in
        bfloat16 or float16 (``mixed_precision``; weights, loss and optimizer stay in
        float32, and float16 gradients are scaled against underflow), and the network
        compiled by ``torch.compile`` (``compile_mode``), for training only.
        """
        device_type = torch.device(self.device).type
        dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(self.mixed_precision)
        forward = self.module_
        if self.compile_mode is not None:
            # Compiled once per module (a new one after re-initialization); the compiled
            # function is kept beside the net's modules, not as one of them.
            compiled = getattr(self, "_compiled_forward", None)
            if compiled is None or compiled[0] is not self.module_:
                mode = None if self.compile_mode == "default" else self.compile_mode
                compiled = (self.module_, torch.compile(self.module_.forward, mode=mode))
                self._compiled_forward = compiled
            forward = compiled[1]
        scaler = None
        if dtype is torch.float16:
            scaler = getattr(self, "_grad_scaler", None)
            if scaler is None:
                scaler = self._grad_scaler = torch.amp.GradScaler(device_type)

        self.optimizer_.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            y_pred = forward(X)
        y_pred = y_pred.float()
        loss = self.criterion_(y_pred, y)
        if scaler is None:
            loss.backward()
            self.optimizer_.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(self.optimizer_)
            scaler.update()
        average = getattr(self, "_weight_average", None)
        if average is not None:
            average.update()
        return {"loss": loss.detach(), "y_pred": y_pred.detach()}

    def validation_step(self, batch, **fit_params):
        X, y = batch
        with torch.no_grad():
            if self.criterion_.n_members:
                # Each member is scored on the rows it held out, by its own prediction.
                y_pred = self.module_.member_predictions(X)
            else:
                y_pred = self.module_(X, **fit_params)
            return {"loss": self.criterion_(y_pred, y), "y_pred": y_pred}

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        self._set_training(training)
        # Sum of products of the errors of every pair of outputs: its diagonal holds each
        # output's sum of squared errors, gathered with one matrix product per batch.
        error_products = None
        weight_sum = None  # only weighted targets need it; otherwise it is n_samples
        n_samples = n_batches = 0
        per_member = False  # each member scored on its own rows, the loss per unit of weight
        notify_batches = self._callbacks_listen_to_batches()
        # When no callback sees the batches, nothing but the training step touches the
        # optimizer during the epoch, so whether its direct step applies is checked once.
        if training and not notify_batches:
            self._epoch_optimizer_steps = AdamWSteps(self.optimizer_)
        split_target = self.criterion_.split_target
        try:
            for batch in iterator:
                if notify_batches:
                    self.notify("on_batch_begin", batch=batch, training=training)
                step = step_fn(batch, **fit_params)
                y_true, weight = split_target(batch[1])
                y_pred = step["y_pred"].detach()
                if weight is not None and weight.dim() == 3:
                    # Each member on the rows it trains or validates on: one row per member
                    # and sample, weighted by the member's weight of the sample.
                    y_true = y_true.repeat(len(weight), 1)
                    y_pred, weight = y_pred.flatten(0, 1), weight.flatten(0, 1)
                    per_member = True
                elif y_pred.dim() == 3:  # an ensemble's members: score their average
                    y_pred = y_pred.mean(dim=0)
                error = y_pred - y_true
                weighted_error = error
                if weight is not None:
                    weighted_error = error * weight
                    weight_sum = weight.sum() if weight_sum is None else weight_sum + weight.sum()
                if error_products is None:
                    error_products = weighted_error.T @ error
                else:
                    error_products.addmm_(weighted_error.T, error)
                n_samples += len(batch[1])
                n_batches += 1
                if notify_batches:
                    self.notify("on_batch_end", batch=batch, training=training, **step)
        finally:
            self._epoch_optimizer_steps = None
        average = getattr(self, "_weight_average", None)
        if training and average is not None:
            average.swap_in()  # to validate, and for the callbacks at the end of the epoch

        per_output = torch.diagonal(error_products).double().cpu().numpy()
        total_weight = n_samples if weight_sum is None else weight_sum.item()
        self.history.new_batch()
        self.history.record_batch(
            prefix + "_loss",
            per_output.sum() / ((total_weight if per_member else n_samples) * len(per_output)),
        )
        self.history.record_batch(prefix + "_batch_size", n_samples)
        self.history.record(prefix + "_batch_count", n_batches)
        scale = 1.0 if self.target_scale is None else np.asarray(self.target_scale)
        mean_squared_error = np.sum(per_output * scale**2) / max(
            total_weight * len(per_output), 1e-300
        )
        self.history.record(prefix + "_rmse", float(np.sqrt(mean_squared_error)))

    def _callbacks_listen_to_batches(self):
        """Whether any callback does something on ``on_batch_begin`` or ``on_batch_end``.

        None of this package's callbacks do (a learning-rate schedule steps once per
        epoch); notifying every callback twice per batch regardless costs as much as a
        small tensor operation.
        """

        def listens(callback, name):
            if getattr(type(callback), name) is getattr(Callback, name):
                return False
            return not (isinstance(callback, LRScheduler) and callback.step_every != "batch")

        return any(
            listens(callback, name)
            for _, callback in self.callbacks_
            for name in ("on_batch_begin", "on_batch_end")
        )

    def _zero_grad_optimizer(self, set_to_none=None):
        super()._zero_grad_optimizer(set_to_none=True)

    def infer(self, x, **fit_params):
        if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
            float64_state = {
                name: tensor.double() for name, tensor in self.module_.state_dict().items()
            }
            return functional_call(self.module_, float64_state, (x.to(self.device),))
        return super().infer(x, **fit_params)

    def __setstate__(self, state):
        state["device"] = device_for_loading(state["device"])
        super().__setstate__(state)


def build_net(
    *,
    n_features,
    n_outputs,
    hidden_layer_sizes,
    dropout,
    lr,
    lr_schedule,
    weight_decay,
    batch_size,
    max_epochs,
    device,
    verbose,
    embedding="none",
    ensemble_size=1,
    ensemble_type="independent",
    passthrough_features=(),
    passthrough_groups=None,
    passthrough_levels=None,
    category_sizes=(),
    embedding_dim=16,
    n_bins=48,
    weighted=False,
    member_validation=False,
    target_scale=None,
    validation_data=None,
    n_iter_no_change=10,
    tol=1e-4,
    mixed_precision=None,
    compile_mode=None,
    ema_decay=0.0,
    embedding_weight_decay=None,
):
    """Configure (but do not initialize) the skorch net that trains the MLP.

    Parameters
    ----------
    weighted : bool
        Whether the last target column holds sample weights.
    member_validation : bool
        Whether the last ``ensemble_size`` target columns hold each member's
        weights: every member of an ensemble trains on all rows but those it holds
        out, and is validated on those by its own prediction.
    target_scale : ndarray of shape (n_outputs,)
        Standard deviation of each original target column.
    validation_data : tuple of (ndarray, ndarray) or None
        Standardized float32 ``(X_valid, y_valid)``. When given, the validation
        loss and RMSE are recorded every epoch and training stops once the
        validation loss has not improved by ``tol`` for ``n_iter_no_change``
        epochs, keeping the best epoch's weights. With ``member_validation``,
        ``y_valid`` ends with each member's weights of the rows, as the training
        target does.
    embedding_dim : int
        Width of each numeric feature's embedding; 16 in models saved before it
        was configured.
    n_bins : int
        Bins of the piecewise-linear encoding; 48 in models saved before it was
        configured.
    mixed_precision : {None, "bfloat16", "float16"}
        Autocast dtype of the training step's matrix products.
    compile_mode : {None, "default", "reduce-overhead", "max-autotune"}
        ``torch.compile`` mode of the network for training; None does not compile.
    ema_decay : float
        Decay per step of the moving average of the weights that is validated and
        kept (:class:`~sktorch_mlp._training.averaging.WeightAverage`); 0 keeps the
        trained weights themselves, as models saved before it was introduced do.
    embedding_weight_decay : float or None
        Weight decay of the input embedding's parameters, in a parameter group of
        their own; None: ``weight_decay``, as in models saved before it was
        introduced.

    Other parameters are those of :class:`~sktorch_mlp.TorchMLPRegressor`;
    ``device`` is already resolved (e.g. "cpu" or "cuda:0").

    Returns
    -------
    MLPNet
    """
    monitor = "train_loss" if validation_data is None else "valid_loss"
    callbacks = []
    if lr_schedule == "plateau":
        patience = max(n_iter_no_change // 2 - 1, 1)
        callbacks.append(
            (
                "lr_schedule",
                LRScheduler("ReduceLROnPlateau", monitor=monitor, factor=0.3, patience=patience),
            )
        )
    elif lr_schedule == "cosine":
        callbacks.append(("lr_schedule", LRScheduler("CosineAnnealingLR", T_max=max_epochs)))
    train_split = None
    if validation_data is not None:
        train_split = predefined_split(Dataset(*validation_data))
        callbacks.append(
            (
                "early_stopping",
                EarlyStopping(
                    monitor=monitor,
                    patience=n_iter_no_change,
                    threshold=tol,
                    threshold_mode="rel",
                    load_best=True,
                ),
            )
        )
    callbacks += progress_callbacks(verbose)
    # Last: after early stopping, whose best weights it keeps when training diverges, and
    # after the progress output, which then shows the diverged epoch and is closed if it raises.
    callbacks.append(("training_guard", TrainingGuard()))
    return MLPNet(
        module=MLP,
        module__n_features=n_features,
        module__n_outputs=n_outputs,
        module__hidden_layer_sizes=hidden_layer_sizes,
        module__dropout=dropout,
        module__embedding=embedding,
        module__ensemble_size=ensemble_size,
        module__ensemble_type=ensemble_type,
        module__passthrough_features=tuple(passthrough_features),
        module__passthrough_groups=passthrough_groups,
        module__passthrough_levels=passthrough_levels,
        module__category_sizes=tuple(category_sizes),
        module__embedding_dim=embedding_dim,
        module__n_bins=n_bins,
        criterion=MSELoss,
        criterion__weighted=weighted,
        criterion__n_members=ensemble_size if member_validation else None,
        optimizer=torch.optim.AdamW,
        lr=lr,
        optimizer__weight_decay=weight_decay,
        # skorch's groups by parameter name; a network without an embedding matches none.
        optimizer__param_groups=(
            []
            if embedding_weight_decay is None
            else [("embedding.*", {"weight_decay": embedding_weight_decay})]
        ),
        optimizer__fused=True if supports_fused_adamw(str(device)) else None,
        batch_size=batch_size,
        max_epochs=max_epochs,
        train_split=train_split,
        iterator_train=TensorBatches,
        iterator_train__shuffle=True,
        iterator_train__device=device,
        iterator_valid=TensorBatches,
        iterator_valid__batch_size=max(batch_size, EVAL_BATCH_SIZE),
        iterator_valid__device=device,
        callbacks=callbacks,
        device=device,
        verbose=0,  # progress is reported by our callbacks, not skorch's PrintLog
        target_scale=target_scale,
        mixed_precision=mixed_precision,
        compile_mode=compile_mode,
        ema_decay=ema_decay,
    )
