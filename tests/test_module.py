"""The PyTorch module: architecture, initialization and dropout."""

import copy
import pickle

import pytest
import torch

from sktorch_mlp._network.dropout import Dropout
from sktorch_mlp._network.embeddings import PeriodicEmbedding, PiecewiseLinearEmbedding
from sktorch_mlp._network.mlp import MLP


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


def test_shared_members_share_hidden_weights_and_differ_by_input_scale_and_output():
    torch.manual_seed(0)
    module = MLP(4, 2, (8,), dropout=0.0, ensemble_size=3, ensemble_type="shared")
    assert type(module.hidden[0]).__name__ == "Linear"  # one weight matrix for every member
    assert module.member_scale.shape == (3, 1, 4) and module.output.weight.shape == (3, 8, 2)
    # Without an embedding the scales start as random signs, one per member and feature.
    assert set(module.member_scale.unique().tolist()) <= {-1.0, 1.0}
    X = torch.randn(5, 4)
    members = module.train()(X)
    assert members.shape == (3, 5, 2) and not torch.allclose(members[0], members[1])
    first, output = module.hidden[0], module.output
    scaled = X * module.member_scale[2]
    member_2 = torch.relu(scaled @ first.weight.T + first.bias) @ output.weight[2] + output.bias[2]
    torch.testing.assert_close(members[2], member_2)
    torch.testing.assert_close(module.eval()(X), members.mean(dim=0))


def test_shared_member_scales_behind_an_embedding_are_one_normal_value_per_feature():
    torch.manual_seed(0)
    module = MLP(3, 1, (8,), 0.0, embedding="periodic", ensemble_size=50, ensemble_type="shared")
    per_feature = module.member_scale.reshape(50, 3, -1)
    assert torch.equal(per_feature, per_feature[..., :1].expand_as(per_feature))
    assert per_feature[..., 0].std().item() == pytest.approx(1.0, abs=0.2)


def test_one_shared_member_is_the_plain_mlp():
    torch.manual_seed(0)
    plain = MLP(4, 2, (8,), 0.1)
    torch.manual_seed(0)
    shared = MLP(4, 2, (8,), 0.1, ensemble_size=1, ensemble_type="shared")
    assert shared.member_scale is None
    assert plain.state_dict().keys() == shared.state_dict().keys()
    for name, tensor in plain.state_dict().items():
        torch.testing.assert_close(shared.state_dict()[name], tensor)


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
    hidden, output, embedding, member_scale = module.layers()
    assert [layer[0] for layer in hidden] == [module.hidden[0].weight, module.hidden[3].weight]
    assert [layer[2] for layer in hidden] == [1.0, module.hidden[2].scale]  # input scales
    assert output[2] == module.hidden[5].scale and embedding is None and member_scale is None
    assert module.layers() is module.layers()
    # A new dropout rate takes effect when the mode is next set, as at every epoch.
    module.hidden[5].p = 0.0
    module.train()
    assert module.layers()[0][1][3] is None and module.layers()[1][2] == 1.0
    # A copy refers to its own parameters.
    for duplicate in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert duplicate.layers()[1][0] is duplicate.output.weight


def test_dropout_masks_from_the_gpu_path_are_uniform_in_every_lane(monkeypatch):
    # The GPU's path draws the bits with torch's generator on the device; run it on the CPU.
    monkeypatch.setattr(Dropout, "_NUMPY_BITS_DEVICES", frozenset())
    dropout = Dropout(0.25).train()
    torch.manual_seed(0)
    mask = dropout.mask((2**18,), "cpu").clone()  # a view of the block, which is reused
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    # Each 64-bit word gives four masks: every one of its 16-bit lanes must keep 1 - p.
    keep_per_lane = mask.view(-1, 4).mean(dim=0)
    torch.testing.assert_close(keep_per_lane, torch.full((4,), 0.75), rtol=0, atol=0.01)
    torch.manual_seed(0)
    assert torch.equal(dropout.train().mask((2**18,), "cpu"), mask)  # seeded by torch's generator
    monkeypatch.undo()
    torch.manual_seed(0)
    assert not torch.equal(dropout.train().mask((2**18,), "cpu"), mask)  # numpy's bits, not these


def test_periodic_embedding_passes_two_valued_features_through():
    torch.manual_seed(0)
    embedding = PeriodicEmbedding(4, embedding_dim=3, passthrough=[3, 1])
    X = torch.randn(6, 4)
    out = embedding(X)
    assert out.shape == (6, 2 * 3 + 2) == (6, embedding.out_features)
    assert embedding.feature_widths == (3, 3, 1, 1)
    torch.testing.assert_close(out[:, -2:], X[:, [1, 3]])  # as they are, after the others
    # The embedded part is the embedding of the other features alone.
    alone = PeriodicEmbedding(2, embedding_dim=3)
    alone.load_state_dict(embedding.state_dict())
    torch.testing.assert_close(out[:, :6], alone(X[:, [0, 2]]))


def test_piecewise_linear_encoding_counts_the_bins_below_and_the_fraction_of_its_own():
    embedding = PiecewiseLinearEmbedding(1, n_bins=4, embedding_dim=2)
    # Four bins of equal probability under the standard normal: inner edges at the quartiles.
    quartile = float(torch.special.ndtri(torch.tensor(0.75)))
    midway = torch.tensor([[quartile / 2]])  # halfway through the third bin
    torch.testing.assert_close(embedding.encode(midway)[0, 0], torch.tensor([1, 1, 0.5, 0]))
    # Beyond the outer edges the outer bins keep growing: the encoding stays linear there.
    outer_width = 5.2 - quartile  # the outer bins end at +-5.2
    far = embedding.encode(torch.tensor([[-5.2 - outer_width], [5.2 + outer_width]]))[:, 0]
    torch.testing.assert_close(far[0], torch.tensor([-1.0, 0, 0, 0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(far[1], torch.tensor([1.0, 1, 1, 2.0]), atol=1e-6, rtol=0)


def test_grouped_two_valued_features_are_looked_up_as_categories():
    torch.manual_seed(0)
    # Features 1-3 are a one-hot category (low -1, high 2 after the input transform).
    embedding = PiecewiseLinearEmbedding(
        4,
        embedding_dim=4,
        passthrough=[1, 2, 3],
        groups=[[1, 2, 3]],
        group_dim=3,
        levels=[[-1, 2]] * 3,
    )
    assert embedding.feature_widths == (4, 3) and embedding.out_features == 7
    with torch.no_grad():
        embedding.group_bias.normal_()
    X = torch.tensor([[0.5, 2.0, -1, -1], [0.5, -1, -1, 2.0], [-0.5, -1, -1, -1]])
    vectors = embedding(X)[:, 4:]
    bias = embedding.group_bias[0]
    # A category's vector is the bias plus its column's vector; none high: the bias alone.
    torch.testing.assert_close(vectors[0], bias + embedding.group_weight[0])
    torch.testing.assert_close(vectors[1], bias + embedding.group_weight[2])
    torch.testing.assert_close(vectors[2], bias)


def test_piecewise_embedding_starts_linear_and_passes_two_valued_features_through():
    torch.manual_seed(0)
    embedding = PiecewiseLinearEmbedding(3, embedding_dim=4, passthrough=[2])
    X = torch.randn(5, 3)
    out = embedding(X)
    assert out.shape == (5, 2 * 4 + 1) and embedding.feature_widths == (4, 4, 1)
    # The piecewise part starts at zero: each feature's embedding is x * w + b at first.
    expected = X[:, :2, None] * embedding.linear_weight + embedding.linear_bias
    torch.testing.assert_close(out[:, :8], expected.flatten(1))
    torch.testing.assert_close(out[:, 8], X[:, 2])
    with torch.no_grad():
        embedding.weight.normal_()
    assert not torch.allclose(embedding(X)[:, :8], expected.flatten(1))  # and learns kinks
