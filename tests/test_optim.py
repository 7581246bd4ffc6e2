"""AdamW's direct step: the same update as ``optimizer.step()``, or a fallback to it."""

import numpy as np
import pytest
import torch

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._training import net as training_net
from sktorch_mlp._training import optim as training_optim
from sktorch_mlp._training.net import supports_fused_adamw
from sktorch_mlp._training.optim import adamw_step


def make_params(device="cpu"):
    torch.manual_seed(0)
    shapes = [(8, 3), (8,), (1, 8), (1,)]
    return [torch.nn.Parameter(torch.randn(shape).to(device)) for shape in shapes]


def set_gradients(params, seed):
    generator = torch.Generator().manual_seed(seed)
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator).to(param.device)


def train(step, n_steps=6, reload_at=None, device="cpu", **options):
    params = make_params(device)
    options = {"lr": 0.01, "weight_decay": 0.3, "fused": True, **options}
    optimizer = torch.optim.AdamW(params, **options)
    for index in range(n_steps):
        set_gradients(params, index)
        optimizer.param_groups[0]["lr"] = 0.01 / (index + 1)  # as a scheduler would
        step(optimizer)
        if index == reload_at:  # state tensors replaced, as when a saved model is loaded
            optimizer.load_state_dict(optimizer.state_dict())
    return params, optimizer


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("reload_at", [None, 2])
def test_direct_step_equals_optimizer_step_exactly(reload_at, device):
    expected, expected_optimizer = train(torch.optim.AdamW.step, reload_at=reload_at, device=device)
    params, optimizer = train(adamw_step, reload_at=reload_at, device=device)
    assert training_optim._layouts.get(optimizer) is not None  # the direct step ran, on its buffers
    for param, reference in zip(params, expected, strict=True):
        assert torch.equal(param, reference)
        state, reference_state = optimizer.state[param], expected_optimizer.state[reference]
        assert state.keys() == reference_state.keys()
        for key in state:
            assert torch.equal(state[key], reference_state[key]), key


@pytest.mark.parametrize("options", [dict(amsgrad=True), dict(maximize=True), dict(fused=False)])
def test_other_options_fall_back_to_optimizer_step(options):
    params, _ = train(adamw_step, **options)
    expected, _ = train(torch.optim.AdamW.step, **options)
    for param, reference in zip(params, expected, strict=True):
        assert torch.equal(param, reference)


def test_step_hooks_still_run():
    params = make_params()
    optimizer = torch.optim.AdamW(params, fused=True)
    calls = []
    optimizer.register_step_post_hook(lambda *args: calls.append("post"))
    for seed in range(3):
        set_gradients(params, seed)
        adamw_step(optimizer)
    assert calls == ["post"] * 3


def train_writing_gradients_in_place(step, n_steps=6, between_steps=None):
    """Like ``train``, but gradients are written into ``.grad``, as the training step does."""
    params = make_params()
    optimizer = torch.optim.AdamW(params, lr=0.01, weight_decay=0.3, fused=True)
    for index in range(n_steps):
        generator = torch.Generator().manual_seed(index)
        for param in params:
            gradient = torch.randn(param.shape, generator=generator)
            if param.grad is None:
                param.grad = gradient
            else:
                param.grad.copy_(gradient)
        step(optimizer)
        if between_steps is not None:
            between_steps(index, params, optimizer)
    return params, optimizer


def assert_same_training(actual, expected):
    (params, optimizer), (reference_params, reference_optimizer) = actual, expected
    for param, reference in zip(params, reference_params, strict=True):
        assert torch.equal(param, reference)
        state, reference_state = optimizer.state[param], reference_optimizer.state[reference]
        for key in reference_state:
            assert torch.equal(state[key], reference_state[key]), key


def test_flat_layout_is_built_once_and_updates_exactly(monkeypatch):
    builds = []
    original_init = training_optim.FlatLayout.__init__
    monkeypatch.setattr(
        training_optim.FlatLayout,
        "__init__",
        lambda self, opt: builds.append(original_init(self, opt)),
    )
    params, optimizer = train_writing_gradients_in_place(adamw_step)
    assert len(builds) == 1
    # Every parameter, gradient and moment lives in one buffer of each kind.
    for tensors in [
        params,
        [param.grad for param in params],
        [optimizer.state[param]["exp_avg"] for param in params],
        [optimizer.state[param]["exp_avg_sq"] for param in params],
    ]:
        assert len({tensor.untyped_storage().data_ptr() for tensor in tensors}) == 1
    expected = train_writing_gradients_in_place(torch.optim.AdamW.step)
    assert_same_training((params, optimizer), expected)


def test_flat_layout_state_dict_loads_into_a_fresh_optimizer():
    params, optimizer = train_writing_gradients_in_place(adamw_step, n_steps=3)
    fresh = torch.optim.AdamW(params, lr=0.01, weight_decay=0.3, fused=True)
    fresh.load_state_dict(optimizer.state_dict())
    reference_params, reference = train_writing_gradients_in_place(torch.optim.AdamW.step, 3)
    for param, reference_param in zip(params, reference_params, strict=True):
        for key, value in reference.state[reference_param].items():
            assert torch.equal(fresh.state[param][key], value), key


def test_replaced_tensors_leave_the_layout_and_training_stays_exact():
    def replace(index, params, optimizer):
        if index == 1:
            params[0].data = params[0].data.clone()  # as moving a module does
        if index == 2:
            params[1].grad = params[1].grad.clone()  # a new gradient tensor
        if index == 3:
            state = optimizer.state[params[2]]
            state["exp_avg"] = state["exp_avg"].clone()  # as loading a state dict does

    actual = train_writing_gradients_in_place(adamw_step, between_steps=replace)
    expected = train_writing_gradients_in_place(torch.optim.AdamW.step, between_steps=replace)
    assert_same_training(actual, expected)


def test_parameters_at_different_steps_fall_back_to_optimizer_step():
    def desynchronize(index, params, optimizer):
        if index == 1:
            optimizer.state[params[0]]["step"] = torch.tensor(10.0)

    actual = train_writing_gradients_in_place(adamw_step, between_steps=desynchronize)
    expected = train_writing_gradients_in_place(torch.optim.AdamW.step, between_steps=desynchronize)
    assert_same_training(actual, expected)


def epoch_steps():
    """A step function running each optimizer's steps through one ``AdamWSteps``, as in an epoch."""
    runs = {}

    def step(optimizer):
        if optimizer not in runs:
            runs[optimizer] = training_optim.AdamWSteps(optimizer)
        runs[optimizer]()

    return step


def decay_learning_rate(index, params, optimizer):
    optimizer.param_groups[0]["lr"] = 0.01 / (index + 2)  # as a scheduler would, between steps


def test_steps_checked_once_per_epoch_update_exactly_like_optimizer_step(monkeypatch):
    checks = []
    original = training_optim.adamw_step
    monkeypatch.setattr(training_optim, "adamw_step", lambda opt: checks.append(1) or original(opt))
    actual = train_writing_gradients_in_place(epoch_steps(), between_steps=decay_learning_rate)
    # The first step creates the state, the second builds the layout; then no checks.
    assert len(checks) == 2
    monkeypatch.undo()
    expected = train_writing_gradients_in_place(
        torch.optim.AdamW.step, between_steps=decay_learning_rate
    )
    assert_same_training(actual, expected)


def test_steps_of_an_epoch_notice_gradients_replaced_instead_of_written_into():
    # A backward pass through autograd after zero_grad(set_to_none=True) makes new tensors.
    assert_same_training(train(epoch_steps()), train(torch.optim.AdamW.step))


def train_two_groups(step, n_steps=6):
    """Like ``train``, with the first two parameters in a group of their own weight decay."""
    params = make_params()
    groups = [{"params": params[:2], "weight_decay": 0.05}, {"params": params[2:]}]
    optimizer = torch.optim.AdamW(groups, lr=0.01, weight_decay=0.3, fused=True)
    for index in range(n_steps):
        set_gradients(params, index)
        for group in optimizer.param_groups:
            group["lr"] = 0.01 / (index + 1)  # as a scheduler would, for every group
        step(optimizer)
    return params, optimizer


@pytest.mark.parametrize("step", [adamw_step, epoch_steps()], ids=["step", "epoch"])
def test_parameter_groups_update_exactly_each_with_its_own_weight_decay(step):
    params, optimizer = train_two_groups(step)
    assert training_optim._layouts.get(optimizer) is not None  # the direct step ran
    expected = train_two_groups(torch.optim.AdamW.step)
    assert_same_training((params, optimizer), expected)
    # The groups' decays differ, so a single decay for all would not have matched.
    assert not torch.equal(params[0], train(torch.optim.AdamW.step)[0][0])


def test_an_empty_parameter_without_gradient_leaves_the_direct_step():
    # A network's vectors for one-hot groups, on a table without two-valued columns.
    def with_empty_parameter(step):
        params = make_params()
        empty = torch.nn.Parameter(torch.empty(0, 4))
        optimizer = torch.optim.AdamW([*params, empty], lr=0.01, weight_decay=0.3, fused=True)
        for index in range(4):
            set_gradients(params, index)
            step(optimizer)
        return params, optimizer

    params, optimizer = with_empty_parameter(adamw_step)
    assert training_optim._layouts.get(optimizer) is not None  # the direct step ran
    assert_same_training((params, optimizer), with_empty_parameter(torch.optim.AdamW.step))


def test_parameters_on_two_devices_fall_back_to_optimizer_step():
    # The meta device stands in for a GPU: a second device, without needing one.
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, device="meta"))]
    optimizer = torch.optim.AdamW(params)
    assert not training_optim.FlatLayout.possible(optimizer)  # decided before any state is read


def test_fused_adamw_is_used_only_where_the_device_has_a_fused_kernel():
    check = supports_fused_adamw.__wrapped__  # uncached
    assert check("cpu") is True
    assert check("meta") is False  # a device torch's fused AdamW does not run on


def test_training_without_a_fused_kernel_steps_through_torch_optim(monkeypatch):
    X = np.random.default_rng(0).normal(size=(64, 3))
    y = X.sum(axis=1)
    params = dict(hidden_layer_sizes=(8,), ensemble_size=1, embedding="none", max_epochs=3)
    params.update(early_stopping=False, random_state=0, device="cpu")
    fused = TorchMLPRegressor(**params).fit(X, y)
    monkeypatch.setattr(training_net, "supports_fused_adamw", lambda device: False)
    model = TorchMLPRegressor(**params).fit(X, y)
    assert not model.net_.optimizer_.param_groups[0]["fused"]
    assert training_optim._layouts.get(model.net_.optimizer_) is None
    # The same update, rounded differently.
    np.testing.assert_allclose(model.predict(X), fused.predict(X), rtol=1e-4, atol=1e-4)
