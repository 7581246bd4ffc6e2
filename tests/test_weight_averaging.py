"""The moving average of the weights: what it averages, what trains, what is kept."""

import numpy as np
import pytest
import torch
from torch import nn

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._training.averaging import WeightAverage


def small_model(**params):
    defaults = dict(
        hidden_layer_sizes=(16,),
        ensemble_size=1,
        batch_size=32,
        max_epochs=3,
        lr=1e-2,
        lr_schedule="constant",
        random_state=0,
    )
    return TorchMLPRegressor(**{**defaults, **params})


def _parameters(module):
    return [param.detach().clone() for param in module.parameters()]


def test_average_moves_towards_the_weights_by_one_minus_the_decay():
    layer = nn.Linear(3, 2)
    start = _parameters(layer)
    average = WeightAverage(layer, decay=0.5)
    expected = [tensor.clone() for tensor in start]
    for step in range(1, 30):
        with torch.no_grad():
            for param in layer.parameters():
                param.add_(1.0)
        average.update()
        # Short of the decay while few steps are averaged: (1 + t) / (10 + t), at most 0.5.
        decay = min(0.5, (1 + step) / (10 + step))
        expected = [
            e + (1 - decay) * (p - e) for e, p in zip(expected, _parameters(layer), strict=True)
        ]
    average.swap_in()
    for param, value in zip(layer.parameters(), expected, strict=True):
        torch.testing.assert_close(param.detach(), value)
    assert decay == 0.5  # the last steps averaged at the decay itself


def test_swapping_the_average_in_and_out_keeps_the_parameter_tensors():
    layer = nn.Linear(3, 2)
    average = WeightAverage(layer, decay=0.9)
    with torch.no_grad():
        layer.weight.add_(1.0)
    trained = _parameters(layer)
    pointers = [param.data_ptr() for param in layer.parameters()]
    average.swap_in()
    assert average.swapped_in
    assert not torch.equal(layer.weight.detach(), trained[0])
    average.swap_in()  # a second call changes nothing
    average.swap_out()
    assert not average.swapped_in
    for param, value in zip(layer.parameters(), trained, strict=True):
        torch.testing.assert_close(param.detach(), value, rtol=0, atol=0)
    # Values are copied, so views of the parameters (the optimizer's flat layout) stay valid.
    assert [param.data_ptr() for param in layer.parameters()] == pointers


# Without an embedding every parameter has a gradient and the optimizer's fused step lays
# them out in buffers of its own (optim.FlatLayout); the piecewise embedding of these
# columns has empty group parameters, and the steps go through optimizer.step().
EMBEDDINGS = pytest.mark.parametrize("embedding", ["none", "piecewise"])


@EMBEDDINGS
def test_training_follows_the_trained_weights_and_validation_their_average(
    regression_data, embedding
):
    X, y = regression_data
    # A constant rate and no stop within the epochs: validation cannot steer training.
    params = dict(max_epochs=4, n_iter_no_change=50, embedding=embedding)
    plain = small_model(ema_decay=0.0, **params).fit(X, y)
    averaged = small_model(ema_decay=0.9, **params).fit(X, y)
    np.testing.assert_allclose(averaged.loss_curve_, plain.loss_curve_, rtol=1e-6)
    assert not np.allclose(averaged.validation_scores_, plain.validation_scores_, rtol=1e-3)


@EMBEDDINGS
def test_fitted_model_keeps_the_average_of_every_step(monkeypatch, regression_data, embedding):
    X, y = regression_data
    starts, steps = [], []
    init, update = WeightAverage.__init__, WeightAverage.update

    def recording_init(self, module, decay):
        init(self, module, decay)
        starts.append(_parameters(module))

    def recording_update(self):
        steps.append(_parameters(self.module))  # after the optimizer's step
        update(self)

    monkeypatch.setattr(WeightAverage, "__init__", recording_init)
    monkeypatch.setattr(WeightAverage, "update", recording_update)
    model = small_model(ema_decay=0.8, early_stopping=False, embedding=embedding).fit(X, y)
    assert len(starts) == 1
    assert len(steps) == 3 * int(np.ceil(len(X) / 32))  # every step of every epoch
    expected = starts[0]
    for step, params in enumerate(steps, start=1):
        decay = min(0.8, (1 + step) / (10 + step))
        expected = [e + (1 - decay) * (p - e) for e, p in zip(expected, params, strict=True)]
    fitted = list(model.net_.module_.parameters())
    for param, value in zip(fitted, expected, strict=True):
        torch.testing.assert_close(param.detach(), value)
    # The average, not the last step's weights.
    assert not all(
        torch.allclose(param.detach(), last) for param, last in zip(fitted, steps[-1], strict=True)
    )


def test_partial_fit_keeps_the_trained_weights(monkeypatch, regression_data):
    X, y = regression_data
    calls = []
    monkeypatch.setattr(WeightAverage, "update", lambda self: calls.append(1))
    model = small_model(ema_decay=0.99).partial_fit(X, y)
    assert calls == []
    assert model.n_iter_ == 1


@pytest.mark.parametrize("ema_decay", [-0.1, 1.0, 1.5])
def test_ema_decay_out_of_range_is_refused(regression_data, ema_decay):
    X, y = regression_data
    with pytest.raises(ValueError, match="ema_decay"):
        small_model(ema_decay=ema_decay).fit(X, y)
