"""The PyTorch module: architecture, initialization and dropout."""

import copy
import pickle

import pytest
import torch

from sktorch_mlp._module import MLP, Dropout


def test_blocks_and_output_layer():
    module = MLP(n_features=7, n_outputs=2, hidden_layer_sizes=(16, 8), dropout=0.25)
    kinds = [type(layer).__name__ for layer in module.hidden]
    assert kinds == ["Linear", "ReLU", "Dropout"] * 2
    assert module(torch.randn(5, 7)).shape == (5, 2)


def test_empty_hidden_layers_give_a_linear_model():
    module = MLP(n_features=3, n_outputs=1, hidden_layer_sizes=(), dropout=0.0)
    assert len(module.hidden) == 0
    X = torch.randn(4, 3)
    torch.testing.assert_close(module(X), X @ module.output.weight.T)


def test_small_random_weights_and_zero_biases():
    torch.manual_seed(0)
    module = MLP(n_features=200, n_outputs=1, hidden_layer_sizes=(400,), dropout=0.0)
    first = module.hidden[0]
    assert torch.count_nonzero(first.bias) == 0 and torch.count_nonzero(module.output.bias) == 0
    # Kaiming (He) normal: std sqrt(2 / fan_in) for ReLU layers, sqrt(1 / fan_in) for the output.
    assert first.weight.std().item() == pytest.approx((2 / 200) ** 0.5, rel=0.02)
    assert module.output.weight.std().item() == pytest.approx((1 / 400) ** 0.5, rel=0.1)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_zeroes_a_fraction_p_and_preserves_the_mean(p):
    torch.manual_seed(0)
    dropout = Dropout(p).train()
    X = torch.ones(400, 500)
    out = dropout(X)
    assert (out == 0).float().mean().item() == pytest.approx(p, abs=0.005)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)), rtol=1e-3, atol=0)


def test_dropout_masks_the_gradient_like_the_output():
    torch.manual_seed(0)
    X = torch.randn(64, 32, requires_grad=True)
    out = Dropout(0.3).train()(X)
    out.sum().backward()
    assert torch.equal(X.grad == 0, out == 0)


def test_dropout_is_identity_in_eval_mode_and_seeded_in_training():
    X = torch.randn(32, 16)
    dropout = Dropout(0.5)
    torch.testing.assert_close(dropout.eval()(X), X)
    torch.manual_seed(1)
    first = dropout.train()(X)
    # Each call draws a new mask, even from the same block.
    assert not torch.equal(dropout(X), first)
    # Setting the mode starts a new block, drawn from the random state at that point.
    torch.manual_seed(1)
    assert torch.equal(dropout.train()(X), first)


def test_dropout_masks_are_fresh_across_blocks_and_valid_for_any_shape(monkeypatch):
    monkeypatch.setattr(Dropout, "BLOCK_ELEMENTS", 64)
    dropout = Dropout(0.5).train()
    X = torch.ones(5, 7)  # 35 values: each block holds at most one mask
    masks = [dropout(X) for _ in range(20)]
    assert len({tuple(mask.flatten().tolist()) for mask in masks}) == 20
    assert all(set(mask.unique().tolist()) <= {0.0, 2.0} for mask in masks)
    # A larger request than the block size gets a block of its own.
    large = dropout(torch.ones(30, 30))
    assert large.shape == (30, 30)
    assert (large == 0).float().mean().item() == pytest.approx(0.5, abs=0.1)


def test_dropout_mask_reused_before_backward_is_detected():
    # Masks are views of a block that is refilled in place; a backward pass that still
    # needs a refilled mask fails loudly instead of using the wrong values.
    dropout = Dropout(0.5)
    dropout.BLOCK_ELEMENTS = 16
    dropout.train()
    X = torch.ones(4, 4, requires_grad=True)
    out = dropout(X)
    dropout(torch.ones(4, 4))  # refills the block that ``out``'s mask lives in
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_dropout_close_to_one_stays_finite():
    out = Dropout(0.99999).train()(torch.ones(10, 10))
    assert torch.isfinite(out).all()


def test_ensemble_members_are_independent_networks():
    torch.manual_seed(0)
    module = MLP(n_features=4, n_outputs=2, hidden_layer_sizes=(8,), dropout=0.0, ensemble_size=3)
    X = torch.randn(5, 4)
    members = module.train()(X)
    assert members.shape == (3, 5, 2)
    assert not torch.allclose(members[0], members[1])
    # Member m computes a plain MLP with its own slice of every weight.
    first, output = module.hidden[0], module.output
    member_1 = torch.relu(X @ first.weight[1] + first.bias[1]) @ output.weight[1] + output.bias[1]
    torch.testing.assert_close(members[1], member_1)
    torch.testing.assert_close(module.eval()(X), members.mean(dim=0))


def test_ensemble_members_start_from_kaiming_weights_and_zero_biases():
    torch.manual_seed(0)
    module = MLP(
        n_features=300, n_outputs=1, hidden_layer_sizes=(200,), dropout=0.0, ensemble_size=4
    )
    weight = module.hidden[0].weight
    assert weight.std().item() == pytest.approx((2 / 300) ** 0.5, rel=0.02)
    assert torch.count_nonzero(module.hidden[0].bias) == 0


def test_layers_for_the_training_step_follow_the_mode_and_copies():
    module = MLP(n_features=3, n_outputs=1, hidden_layer_sizes=(8, 4), dropout=0.2).train()
    hidden, output, embedding = module.layers()
    assert [layer[0] for layer in hidden] == [module.hidden[0].weight, module.hidden[3].weight]
    assert [layer[2] for layer in hidden] == [1.0, module.hidden[2].scale]  # input scales
    assert output[2] == module.hidden[5].scale and embedding is None
    assert module.layers() is module.layers()
    # A new dropout rate takes effect when the mode is next set, as at every epoch.
    module.hidden[5].p = 0.0
    module.train()
    assert module.layers()[0][1][3] is None and module.layers()[1][2] == 1.0
    # A copy refers to its own parameters.
    for duplicate in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert duplicate.layers()[1][0] is duplicate.output.weight
