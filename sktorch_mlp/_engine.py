"""The skorch engine behind :class:`~sktorch_mlp.TorchMLPRegressor`.

skorch owns the training loop (epochs, batches, callbacks, history). This module
configures it: the :class:`~sktorch_mlp._module.MLP`, MSE loss, Adam, batches fed
from device-resident tensors, and early stopping on a held-out validation set.
"""

from functools import partial

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.callbacks import EarlyStopping, EpochScoring
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch.func import functional_call

from ._batches import TensorBatches
from ._module import MLP

# Prediction and validation have no gradients to keep, so batches can be large.
EVAL_BATCH_SIZE = 8192


class MLPNet(NeuralNetRegressor):
    """skorch ``NeuralNetRegressor`` with the adjustments this package relies on.

    - Gradients are released (``set_to_none``) rather than zero-filled.
    - The epoch's loss is summed on the device and read once per epoch, not once
      per batch (a host-device synchronization each time on a GPU). The history
      therefore holds one batch entry per epoch and phase: the epoch's mean loss
      and its number of samples, from which skorch computes ``train_loss`` and
      ``valid_loss`` as usual.
    - float64 inputs run through the float32-trained weights in float64. Predictions
      are then independent of how rows are batched (float32 matrix products round
      differently for different batch shapes) and match scikit-learn's float64 output.
    - A pickle made on a GPU machine loads on a CPU-only machine without a warning:
      the estimator documents that it runs wherever it is loaded.
    """

    def _zero_grad_optimizer(self, set_to_none=None):
        super()._zero_grad_optimizer(set_to_none=True)

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        # skorch opens a history entry per batch here; run_single_epoch opens one per epoch.
        pass

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        loss_sum = torch.zeros((), device=self.device)
        n_samples = n_batches = 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            batch_size = len(batch[0])
            loss_sum.add_(step["loss"].detach(), alpha=batch_size)
            n_samples += batch_size
            n_batches += 1
            self.notify("on_batch_end", batch=batch, training=training, **step)
        self.history.new_batch()
        self.history.record_batch(prefix + "_loss", loss_sum.item() / max(n_samples, 1))
        self.history.record_batch(prefix + "_batch_size", n_samples)
        self.history.record(prefix + "_batch_count", n_batches)

    def infer(self, x, **fit_params):
        if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
            float64_state = {
                name: tensor.double() for name, tensor in self.module_.state_dict().items()
            }
            return functional_call(self.module_, float64_state, (x.to(self.device),))
        return super().infer(x, **fit_params)

    def __setstate__(self, state):
        if str(state["device"]).startswith("cuda") and not torch.cuda.is_available():
            state["device"] = "cpu"
        super().__setstate__(state)


def rmse_in_target_units(net, dataset, y_true, *, target_scale):
    """Root mean squared error in the units of the original target.

    The network is trained on standardized targets, so errors are multiplied back
    by each output's standard deviation before averaging over samples and outputs.
    Used as a skorch scoring function; ``dataset`` is the validation set.
    """
    errors = (net.predict(dataset) - y_true) * target_scale
    return float(np.sqrt(np.mean(np.square(errors, dtype=np.float64))))


def build_net(
    *,
    n_features,
    n_outputs,
    hidden_layer_sizes,
    dropout,
    lr,
    weight_decay,
    batch_size,
    max_epochs,
    device,
    verbose,
    validation_data=None,
    target_scale=None,
    n_iter_no_change=10,
    tol=1e-4,
):
    """Configure (but do not initialize) the skorch net that trains the MLP.

    Parameters
    ----------
    validation_data : tuple of (ndarray, ndarray) or None
        Standardized float32 ``(X_valid, y_valid)``. When given, validation RMSE is
        recorded every epoch as ``valid_rmse`` and training stops once the validation
        loss has not improved by ``tol`` for ``n_iter_no_change`` epochs, keeping
        the best epoch's weights.
    target_scale : ndarray of shape (n_outputs,)
        Standard deviation of each original target column, to report RMSE in
        target units.

    Other parameters are those of :class:`~sktorch_mlp.TorchMLPRegressor`;
    ``device`` is already resolved (e.g. "cpu" or "cuda:0").

    Returns
    -------
    MLPNet
    """
    callbacks = []
    train_split = None
    if validation_data is not None:
        train_split = predefined_split(Dataset(*validation_data))
        callbacks = [
            (
                "valid_rmse",
                EpochScoring(
                    partial(rmse_in_target_units, target_scale=target_scale),
                    name="valid_rmse",
                    lower_is_better=True,
                    use_caching=True,
                ),
            ),
            (
                "early_stopping",
                EarlyStopping(
                    monitor="valid_loss",
                    patience=n_iter_no_change,
                    threshold=tol,
                    threshold_mode="abs",
                    load_best=True,
                ),
            ),
        ]
    return MLPNet(
        module=MLP,
        module__n_features=n_features,
        module__n_outputs=n_outputs,
        module__hidden_layer_sizes=hidden_layer_sizes,
        module__dropout=dropout,
        criterion=torch.nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr=lr,
        optimizer__weight_decay=weight_decay,
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
        verbose=verbose,
    )
