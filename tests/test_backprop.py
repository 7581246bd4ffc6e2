"""The hand-written forward and backward pass of the training step, against autograd's."""

import itertools

import numpy as np
import pytest
import torch

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._network.mlp import MLP
from sktorch_mlp._training import net as training_net
from sktorch_mlp._training.backprop import mse_backprop
from sktorch_mlp._training.net import MSELoss

CONFIGURATIONS = list(
    itertools.product(
        ["none", "periodic", "piecewise"],  # embedding
        [(1, "independent"), (3, "independent"), (3, "shared")],  # ensemble_size and type
        [0.0, 0.3],  # dropout
        [(16, 8), (5,), ()],  # hidden_layer_sizes
    )
)


def autograd_backprop(module, X, y, weight=None):
    """The reference: the MSE criterion on the module's forward pass, and autograd."""
    module.zero_grad(set_to_none=True)
    if weight is None or weight.dim() == 2:
        target = y if weight is None else torch.cat([y, weight], dim=1)
        criterion = MSELoss(weighted=weight is not None)
    else:  # one weight per member and sample, as columns after the targets
        target = torch.cat([y, weight.squeeze(-1).T], dim=1)
        criterion = MSELoss(n_members=len(weight))
    y_pred = module(X)
    loss = criterion(y_pred, target)
    loss.backward()
    return loss.detach(), y_pred.detach()


@pytest.mark.parametrize(
    ("embedding", "ensemble", "dropout", "hidden", "weighted"),
    [
        (*configuration, weighted)
        for configuration in CONFIGURATIONS
        for weighted in ["no", "per sample", "per member"]
        if weighted != "per member" or configuration[1][0] > 1
    ],
)
def test_gradients_loss_and_predictions_match_autograd(
    embedding, ensemble, dropout, hidden, weighted
):
    torch.manual_seed(0)
    ensemble_size, ensemble_type = ensemble
    module = MLP(
        4,
        2,
        hidden,
        dropout,
        embedding=embedding,
        ensemble_size=ensemble_size,
        ensemble_type=ensemble_type,
    )
    X, y = torch.randn(10, 4), torch.randn(10, 2)
    weight = {"no": None, "per sample": torch.rand(10, 1)}.get(weighted)
    if weighted == "per member":  # each member holds out a row of its own
        weight = torch.rand(ensemble_size, 10, 1)
        weight[torch.arange(ensemble_size), torch.arange(ensemble_size)] = 0.0
    results = {}
    for name, backprop in [("autograd", autograd_backprop), ("by hand", mse_backprop)]:
        module.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same dropout masks for both
        module.train()
        loss, y_pred = backprop(module, X, y, weight)
        grads = {name: p.grad.clone() for name, p in module.named_parameters()}
        results[name] = loss, y_pred, grads
    (loss, y_pred, grads), (loss_hand, y_pred_hand, grads_hand) = results.values()
    torch.testing.assert_close(loss_hand, loss)
    torch.testing.assert_close(y_pred_hand, y_pred)
    assert grads_hand.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grads_hand[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    if dropout and hidden:  # the masks were in effect
        without_dropout = module.eval().member_predictions(X)
        assert not torch.allclose(y_pred.reshape(without_dropout.shape), without_dropout)


@pytest.mark.parametrize("embedding", ["none", "periodic", "piecewise"])
@pytest.mark.parametrize("ensemble", [(1, "independent"), (3, "independent"), (3, "shared")])
def test_gradients_of_category_vectors_match_autograd(embedding, ensemble):
    # Two numeric columns, then codes of two categorical columns (tables of 4 and 3 rows).
    torch.manual_seed(0)
    ensemble_size, ensemble_type = ensemble
    module = MLP(
        4,
        1,
        (8,),
        0.0,
        embedding=embedding,
        ensemble_size=ensemble_size,
        ensemble_type=ensemble_type,
        category_sizes=(4, 3),
    ).train()
    codes = torch.stack([torch.randint(1, 4, (12,)), torch.randint(0, 3, (12,))], dim=1)
    X, y = torch.cat([torch.randn(12, 2), codes.float()], dim=1), torch.randn(12, 1)
    autograd_backprop(module, X, y)
    expected = {name: p.grad.clone() for name, p in module.named_parameters()}
    mse_backprop(module, X, y)
    for name, parameter in module.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-5, atol=1e-6, msg=name)
    # Only the rows of categories in the batch learn: row 0 of the first table is unused.
    table = module.embedding.categories.weight.grad
    assert torch.all(table[0] == 0) and torch.any(table[1:4] != 0)


@pytest.mark.parametrize(
    "params",
    [dict(dropout=0.2), dict(sample_weight=True), dict(ensemble_size=3, ensemble_type="shared")],
)
def test_training_by_hand_matches_training_with_autograd(monkeypatch, regression_data, params):
    # Whole fits, through the engine: zeroed gradients, the optimizer steps and the epoch
    # losses are the same whichever backward pass computes the gradients.
    X, y = regression_data
    sample_weight = np.linspace(0.5, 2.0, len(y)) if params.pop("sample_weight", False) else None

    def fit():
        model = TorchMLPRegressor(
            (16, 16), max_epochs=3, batch_size=16, early_stopping=False, random_state=0, **params
        )
        return model.fit(X, y, sample_weight=sample_weight)

    by_hand = fit()
    monkeypatch.setattr(training_net, "mse_backprop", autograd_backprop)
    with_autograd = fit()
    np.testing.assert_allclose(by_hand.predict(X), with_autograd.predict(X), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        by_hand.history_[:, "train_loss"], with_autograd.history_[:, "train_loss"], rtol=1e-4
    )


@pytest.mark.parametrize(
    ("embedding", "ensemble_size", "ensemble_type"),
    [("none", 1, "independent"), ("periodic", 3, "independent"), ("none", 3, "shared")],
)
def test_gradients_overwrite_the_existing_gradient_tensors(embedding, ensemble_size, ensemble_type):
    # The optimizer keeps gradients as views of one buffer: they are written into, not
    # replaced, and stale values are overwritten rather than added to.
    torch.manual_seed(0)
    module = MLP(
        4,
        2,
        (8, 8),
        0.0,
        embedding=embedding,
        ensemble_size=ensemble_size,
        ensemble_type=ensemble_type,
    ).train()
    X, y = torch.randn(10, 4), torch.randn(10, 2)
    autograd_backprop(module, X, y)
    expected = {name: p.grad.clone() for name, p in module.named_parameters()}
    for param in module.parameters():
        param.grad.fill_(1e3)
    tensors = {name: p.grad for name, p in module.named_parameters()}
    mse_backprop(module, X, y)
    for name, param in module.named_parameters():
        assert param.grad is tensors[name], name
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_each_shared_member_is_trained_on_its_own_loss():
    # The loss is the mean of the members' losses: a member's output layer gets the gradient
    # of its own squared error alone, not that of the members' average.
    torch.manual_seed(0)
    module = MLP(4, 1, (8,), 0.0, ensemble_size=3, ensemble_type="shared").train()
    X, y = torch.randn(10, 4), torch.randn(10, 1)
    mse_backprop(module, X, y)
    members = module(X).detach()
    hidden = torch.relu(module.members_input(X) @ module.hidden[0].weight.T + module.hidden[0].bias)
    for member in range(3):
        own_error = 2 * (members[member] - y) / (3 * len(y))
        expected = hidden[member].detach().T @ own_error
        torch.testing.assert_close(module.output.weight.grad[member], expected)


@pytest.mark.parametrize("ensemble_type", ["independent", "shared"])
def test_a_member_learns_nothing_from_the_rows_it_holds_out(ensemble_type):
    # With per-member weights, member 0's weight of row 0 is zero: its target moves member 1's
    # gradients, and leaves member 0's own layers (and the output layer's member 0) untouched.
    torch.manual_seed(0)
    module = MLP(4, 1, (8,), 0.0, ensemble_size=2, ensemble_type=ensemble_type).train()
    X, y = torch.randn(6, 4), torch.randn(6, 1)
    weight = torch.ones(2, 6, 1)
    weight[0, 0] = 0.0
    gradients = []
    for target in (y, y.index_fill(0, torch.tensor([0]), 10.0)):
        mse_backprop(module, X, target, weight)
        gradients.append({name: p.grad.clone() for name, p in module.named_parameters()})
    before, after = gradients
    torch.testing.assert_close(after["output.weight"][0], before["output.weight"][0])
    assert not torch.allclose(after["output.weight"][1], before["output.weight"][1])
    if ensemble_type == "independent":
        torch.testing.assert_close(after["hidden.0.weight"][0], before["hidden.0.weight"][0])
        assert not torch.allclose(after["hidden.0.weight"][1], before["hidden.0.weight"][1])
