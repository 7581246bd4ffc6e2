"""Faults during training and prediction, injected: what the user sees, and the model after.

Faults are injected through a skorch callback added to the net that ``fit`` builds, or
in the network's computation: the training step, as it reads the network's layers, or
the forward pass of training or prediction.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.exceptions import InconsistentVersionWarning as SklearnInconsistentVersionWarning
from skorch.callbacks import Callback

import sktorch_mlp
from sktorch_mlp import TorchMLPRegressor, _regressor
from sktorch_mlp._network.mlp import MLP
from sktorch_mlp._training import faults as training_faults
from sktorch_mlp._training import net as training_net
from sktorch_mlp._training.faults import InconsistentVersionWarning

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 3))
y = X @ np.array([1.0, 2.0, -1.0])


def tiny_model(**params):
    defaults = dict(
        hidden_layer_sizes=(8,),
        max_epochs=5,
        batch_size=8,
        ensemble_size=1,
        embedding="none",
        early_stopping=False,
        random_state=0,
    )
    return TorchMLPRegressor(**{**defaults, **params})


class AtEpoch(Callback):
    """Runs ``action(net)`` at the start or end of one epoch (counting all epochs from 1)."""

    def __init__(self, epoch, action, when="begin"):
        self.epoch, self.action, self.when = epoch, action, when

    def on_epoch_begin(self, net, **kwargs):
        if self.when == "begin" and len(net.history) == self.epoch:
            self.action(net)

    def on_epoch_end(self, net, **kwargs):
        if self.when == "end" and len(net.history) == self.epoch:
            self.action(net)


def inject(monkeypatch, callback, first=False):
    """Add ``callback`` to the nets that fit builds: first, or last (after the guard)."""

    original = _regressor.build_net

    def build_net(**kwargs):
        net = original(**kwargs)
        net.callbacks.insert(0 if first else len(net.callbacks), ("injected", callback))
        return net

    monkeypatch.setattr(_regressor, "build_net", build_net)


def interrupt_next_training_batch(net):
    """Make the next training batch raise KeyboardInterrupt inside its step, as Ctrl-C would."""
    module = net.module_

    def interrupted_layers():
        del module.layers  # the method again, for later batches
        raise KeyboardInterrupt

    module.layers = interrupted_layers  # what the training step reads the network from


def poison_weights(net, value=np.nan):
    with torch.no_grad():
        next(net.module_.parameters()).view(-1)[0] = value


def raise_interrupt(net):
    raise KeyboardInterrupt


# Divergence


def test_absurd_learning_rate_with_no_good_epoch_raises_and_keeps_the_model():
    model = tiny_model().fit(X, y)
    expected = model.predict(X)
    with pytest.raises(ValueError, match=r"(?s)diverged in epoch 1.*no weights to keep.*lower lr"):
        model.set_params(lr=1e8).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), expected)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_absurd_learning_rate_in_a_fresh_fit_raises(early_stopping):
    with pytest.raises(ValueError, match=r"lr \(now 1e\+08\)"):
        tiny_model(lr=1e8, early_stopping=early_stopping).fit(X, y)


def test_nan_loss_stops_training_and_keeps_the_last_good_epoch(monkeypatch):
    inject(monkeypatch, AtEpoch(3, poison_weights), first=True)
    with pytest.warns(ConvergenceWarning, match=r"(?s)stopped in epoch 3.*weights of epoch 2.*lr"):
        model = tiny_model().fit(X, y)
    monkeypatch.undo()
    assert model.n_iter_ == 3 and np.isnan(model.loss_curve_[-1])
    assert model.best_epoch_ == 2
    # The kept weights are those a 2-epoch fit ends with.
    np.testing.assert_array_equal(model.predict(X), tiny_model(max_epochs=2).fit(X, y).predict(X))


def test_weights_that_overflow_with_a_finite_loss_are_caught(monkeypatch):
    # The epoch's loss was measured before its last step; the weights overflow after it.
    inject(monkeypatch, AtEpoch(2, lambda net: poison_weights(net, np.inf), when="end"), first=True)
    with pytest.warns(ConvergenceWarning, match="weights overflowed.*weights of epoch 1"):
        model = tiny_model().fit(X, y)
    monkeypatch.undo()
    assert np.isfinite(model.loss_curve_).all() and model.best_epoch_ == 1
    np.testing.assert_array_equal(model.predict(X), tiny_model(max_epochs=1).fit(X, y).predict(X))


def test_divergence_with_early_stopping_keeps_the_best_epoch(monkeypatch):
    inject(monkeypatch, AtEpoch(4, poison_weights), first=True)
    with pytest.warns(ConvergenceWarning, match="stopped in epoch 4.*the best epoch"):
        model = tiny_model(early_stopping=True).fit(X, y)
    monkeypatch.undo()
    valid_losses = model.history_[:, "valid_loss"]
    assert model.best_epoch_ == 1 + int(np.argmin(valid_losses[:3]))
    assert np.isfinite(model.predict(X)).all()


def test_partial_fit_that_diverges_keeps_the_previous_weights():
    model = tiny_model().fit(X, y)
    expected = model.predict(X)
    with pytest.warns(ConvergenceWarning, match="weights of epoch 5"):
        model.set_params(lr=1e8).partial_fit(X, y)
    assert model.n_iter_ == 6 and model.best_epoch_ == 5
    np.testing.assert_array_equal(model.predict(X), expected)
    # Adam's state saw the overflow and was reset, so a sane rate trains again.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.set_params(lr=1e-3).partial_fit(X, y)
    assert np.isfinite(model.loss_curve_[-1])


def test_prediction_overflow_is_reported_not_silent():
    model = tiny_model(input_transform="none").fit(X, y * 1e30)
    extreme = np.vstack([X[:2], X[:1] * 1e300])
    with pytest.warns(RuntimeWarning, match="1 of 3 predictions are NaN or infinite"):
        y_pred = model.predict(extreme)
    assert np.isfinite(y_pred[:2]).all()


# KeyboardInterrupt


def test_interrupt_during_an_epoch_keeps_the_last_complete_epoch(monkeypatch):
    inject(monkeypatch, AtEpoch(3, interrupt_next_training_batch))
    with pytest.warns(UserWarning, match=r"(?s)interrupted.*during epoch 3.*usable.*epoch 2"):
        model = tiny_model().fit(X, y)
    monkeypatch.undo()
    assert model.n_iter_ == 2 == model.best_epoch_ == len(model.history_)
    np.testing.assert_array_equal(model.predict(X), tiny_model(max_epochs=2).fit(X, y).predict(X))
    model.partial_fit(X, y)  # and training can go on
    assert model.n_iter_ == 3


def test_interrupt_between_epochs_keeps_the_weights_reached(monkeypatch):
    inject(monkeypatch, AtEpoch(2, raise_interrupt, when="end"))
    with pytest.warns(UserWarning, match="interrupted.*after epoch 2"):
        model = tiny_model().fit(X, y)
    monkeypatch.undo()
    assert model.n_iter_ == 2 == model.best_epoch_
    np.testing.assert_array_equal(model.predict(X), tiny_model(max_epochs=2).fit(X, y).predict(X))


def test_interrupt_with_early_stopping_keeps_the_best_epoch(monkeypatch):
    inject(monkeypatch, AtEpoch(4, interrupt_next_training_batch))
    with pytest.warns(UserWarning, match="during epoch 4.*the best epoch"):
        model = tiny_model(early_stopping=True).fit(X, y)
    monkeypatch.undo()
    assert model.n_iter_ == 3
    # A 3-epoch fit keeps its best epoch too: the same weights.
    reference = tiny_model(early_stopping=True, max_epochs=3).fit(X, y)
    assert model.best_epoch_ == reference.best_epoch_
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


def test_interrupt_in_the_first_epoch_is_raised_and_keeps_the_old_model(monkeypatch):
    model = tiny_model().fit(X, y)
    expected = model.predict(X)
    inject(monkeypatch, AtEpoch(1, interrupt_next_training_batch))
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    monkeypatch.undo()
    np.testing.assert_array_equal(model.predict(X), expected)


def raise_runtime_error(net):
    raise RuntimeError("a failure in the middle of training")


@pytest.mark.parametrize(
    "method, failure, error",
    [
        # The resumed net appends to the same history; its first new epoch is number 6.
        ("fit", AtEpoch(6, interrupt_next_training_batch), KeyboardInterrupt),
        ("partial_fit", AtEpoch(6, interrupt_next_training_batch), KeyboardInterrupt),
        ("fit", AtEpoch(7, raise_runtime_error), RuntimeError),  # after a complete epoch
    ],
)
def test_continued_training_that_fails_leaves_the_history_as_it_was(
    monkeypatch, method, failure, error
):
    model = tiny_model(warm_start=True).fit(X, y)
    losses = list(model.history_[:, "train_loss"])
    inject(monkeypatch, failure)
    with pytest.raises(error):
        getattr(model, method)(X, y)
    monkeypatch.undo()
    assert model.history_[:, "train_loss"] == losses and model.n_iter_ == 5
    model.partial_fit(X, y)
    assert len(model.history_) == 6 and model.loss_curve_[:5] == losses


def test_early_stopping_is_not_mistaken_for_an_interrupt():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = tiny_model(early_stopping=True, max_epochs=200, n_iter_no_change=2, tol=1.0)
        model.fit(X, y)
    assert model.n_iter_ < 200


# Out of memory


def raise_in_forward(monkeypatch, error):
    """Make the network's forward pass raise ``error``, in training and in prediction."""

    def forward(*args, **kwargs):
        raise error

    monkeypatch.setattr(MLP, "forward", forward)
    monkeypatch.setattr(training_net, "mse_backprop", forward)


def test_gpu_out_of_memory_in_fit_says_what_to_change(monkeypatch):
    model = tiny_model().fit(X, y)
    expected = model.predict(X)
    released = []
    monkeypatch.setattr(_regressor, "release_cached_memory", released.append)
    raise_in_forward(monkeypatch, torch.OutOfMemoryError("CUDA out of memory. Tried 20 GiB"))
    with pytest.raises(
        torch.OutOfMemoryError,
        match=r"(?s)while training.*Tried 20 GiB.*smaller batch_size \(now 8\).*device='cpu'",
    ):
        model.fit(X, y)
    assert released == ["cpu"]  # cached GPU memory is given back even after the failure
    monkeypatch.undo()
    np.testing.assert_array_equal(model.predict(X), expected)


def test_gpu_out_of_memory_in_predict_says_what_to_change(monkeypatch):
    model = tiny_model().fit(X, y)
    raise_in_forward(monkeypatch, torch.OutOfMemoryError("CUDA out of memory."))
    with pytest.raises(torch.OutOfMemoryError, match="while predicting.*fewer rows") as info:
        model.predict(X)
    assert "device='cpu'" not in str(info.value)  # set_params cannot move fitted weights


def test_cpu_out_of_memory_is_a_memory_error_with_advice(monkeypatch):
    raise_in_forward(
        monkeypatch,
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 4e12"),
    )
    with pytest.raises(MemoryError, match=r"(?s)can't allocate.*smaller network") as info:
        tiny_model().fit(X, y)
    assert "device='cpu'" not in str(info.value)


def test_other_runtime_errors_pass_through(monkeypatch):
    raise_in_forward(monkeypatch, RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        tiny_model().fit(X, y)


def test_cached_memory_is_released_after_fit_and_predict(monkeypatch):
    released = []
    monkeypatch.setattr(_regressor, "release_cached_memory", released.append)
    model = tiny_model().fit(X, y)
    model.predict(X)
    assert released == [model.device_, model.device_]


@pytest.mark.parametrize(
    "device, initialized, released",
    [("cuda:0", True, True), ("cuda:0", False, False), ("cpu", True, False)],
)
def test_cached_gpu_memory_is_given_back_only_where_there_is_some(
    monkeypatch, device, initialized, released
):
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialized)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    training_faults.release_cached_memory(device)
    assert emptied == ([True] if released else [])


# Persistence


def test_pickle_records_the_package_version_and_loads_silently():
    model = tiny_model().fit(X, y)
    payload = pickle.dumps(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restored = pickle.loads(payload)
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert "_sktorch_mlp_version" not in vars(restored)


@pytest.mark.parametrize("pickled_version", ["0.0.1", None])
def test_model_pickled_by_another_version_warns(monkeypatch, pickled_version):
    model = tiny_model().fit(X, y)
    if pickled_version is None:  # a pickle made before the version was recorded
        older_state = model.__getstate__()
        del older_state["_sktorch_mlp_version"]
        monkeypatch.setattr(TorchMLPRegressor, "__getstate__", lambda self: older_state)
    else:
        monkeypatch.setattr(sktorch_mlp, "__version__", pickled_version)
    payload = pickle.dumps(model)
    monkeypatch.undo()
    original = pickled_version or "unknown"
    with pytest.warns(
        InconsistentVersionWarning,
        match=f"TorchMLPRegressor from sktorch_mlp version {original} when using "
        f"sktorch_mlp version {sktorch_mlp.__version__}",
    ) as record:
        restored = pickle.loads(payload)
    assert isinstance(record[0].message, SklearnInconsistentVersionWarning)
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))


def test_pickling_leaves_the_model_intact():
    model = tiny_model().fit(X, y)
    pickle.dumps(model)
    model.predict(X)  # pickling must not take state the live model needs
