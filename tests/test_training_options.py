"""Opt-in training options: mixed precision (autocast) and a compiled network.

They train through autograd instead of the hand-written backward pass; on the CPU
they run too (bfloat16 and float16 autocast, torch.compile with a C++ compiler).
"""

import pickle
import shutil

import numpy as np
import pytest

from sktorch_mlp import TorchMLPRegressor


def small_model(**params):
    defaults = dict(
        hidden_layer_sizes=(16,),
        dropout=0.1,
        max_epochs=3,
        batch_size=32,
        early_stopping=False,
        ensemble_size=1,
        random_state=0,
    )
    return TorchMLPRegressor(**{**defaults, **params})


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_trains_close_to_float32(regression_data, dtype):
    X, y = regression_data
    reference = small_model().fit(X, y)
    model = small_model(mixed_precision=dtype).fit(X, y)
    assert np.all(np.isfinite(model.loss_curve_))
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    # 16-bit products change the path a little, not the model.
    difference = np.abs(model.predict(X) - reference.predict(X)).max()
    assert 0 < difference < 0.05 * np.ptp(y)
    assert model.predict(X).dtype == np.float64
    # float16 gradients are scaled against underflow; bfloat16 has float32's range.
    assert hasattr(model.net_, "_grad_scaler") == (dtype == "float16")
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile needs a C++ compiler")
# torch's own compiler still calls a deprecated torch.jit helper.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_network_trains_as_the_uncompiled_one(regression_data):
    X, y = regression_data
    reference = small_model(ensemble_size=2).fit(X, y)
    model = small_model(ensemble_size=2, compile=True).fit(X, y)
    # Same dropout masks (drawn outside the compiled graph) and the same arithmetic.
    np.testing.assert_allclose(model.predict(X), reference.predict(X), rtol=1e-4, atol=1e-4)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    restored.set_params(warm_start=True, max_epochs=1).fit(X, y)  # compiles the new module
    assert restored.n_iter_ == 4
