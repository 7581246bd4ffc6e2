"""AdamW's direct step: the same update as ``optimizer.step()``, or a fallback to it."""

import pytest
import torch

from sktorch_mlp._optim import adamw_step


def make_params():
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(shape)) for shape in [(8, 3), (8,), (1, 8), (1,)]]


def set_gradients(params, seed):
    generator = torch.Generator().manual_seed(seed)
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator)


def train(step, n_steps=6, reload_at=None, **options):
    params = make_params()
    options = {"lr": 0.01, "weight_decay": 0.3, "fused": True, **options}
    optimizer = torch.optim.AdamW(params, **options)
    for index in range(n_steps):
        set_gradients(params, index)
        optimizer.param_groups[0]["lr"] = 0.01 / (index + 1)  # as a scheduler would
        step(optimizer)
        if index == reload_at:  # state tensors replaced, as when a saved model is loaded
            optimizer.load_state_dict(optimizer.state_dict())
    return params, optimizer


@pytest.mark.parametrize("reload_at", [None, 2])
def test_direct_step_equals_optimizer_step_exactly(reload_at):
    expected, expected_optimizer = train(torch.optim.AdamW.step, reload_at=reload_at)
    params, optimizer = train(adamw_step, reload_at=reload_at)
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
