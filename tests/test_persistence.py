"""Saving and loading: the saved state is plain Python and numpy, loadable with skops.io."""

import io
import pickle
import pickletools
import warnings

import numpy as np
import pytest
import torch
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._training import net as training_net

OUR_TYPES = {
    "sktorch_mlp._regressor.TorchMLPRegressor",
    "sktorch_mlp._scaling.ColumnStandardizer",
    "sktorch_mlp._scaling.QuantileNormalizer",
    "sktorch_mlp._tabular.MissingValues",
}


def small_model(**params):
    defaults = dict(hidden_layer_sizes=(8,), ensemble_size=2, max_epochs=4, random_state=0)
    return TorchMLPRegressor(**{**defaults, **params})


def pickled_modules(payload):
    """Modules whose classes or functions a pickle imports when it is loaded."""
    modules, strings = set(), []
    for opcode, argument, _ in pickletools.genops(io.BytesIO(payload)):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(argument)
        elif opcode.name == "STACK_GLOBAL":
            modules.add(strings[-2])
        elif opcode.name == "GLOBAL":
            modules.add(argument.split(" ")[0])
    return modules


def test_pickle_holds_no_torch_or_skorch_objects(regression_data):
    X, y = regression_data
    model = small_model().fit(X, y)
    modules = pickled_modules(pickle.dumps(model))
    assert "sktorch_mlp._regressor" in modules  # the scan sees the classes a pickle names
    assert not [name for name in modules if name.split(".")[0] in ("torch", "skorch")]


def test_loaded_model_keeps_weights_history_and_curves(regression_data):
    X, y = regression_data
    model = small_model(early_stopping=True).fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    for name, tensor in model.net_.module_.state_dict().items():
        assert torch.equal(restored.net_.module_.state_dict()[name], tensor)
    assert restored.history_[:, "valid_rmse"] == model.history_[:, "valid_rmse"]
    assert restored.loss_curve_ == model.loss_curve_
    assert restored.best_epoch_ == model.best_epoch_


def test_partial_fit_after_loading_continues_as_without_saving(regression_data):
    X, y = regression_data
    model = small_model().partial_fit(X, y).partial_fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    # Adam's moments are saved too: the next step is the one the original model takes.
    np.testing.assert_array_equal(
        restored.partial_fit(X, y).predict(X), model.partial_fit(X, y).predict(X)
    )


def test_loading_leaves_torch_random_state_alone(regression_data):
    X, y = regression_data
    payload = pickle.dumps(small_model().fit(X, y))
    before = torch.random.get_rng_state()
    pickle.loads(payload)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.fixture(scope="module")
def fitted_pipeline(california_sample):
    X, y = california_sample
    preprocessing = make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), list(X.columns[:-1])),
        (OneHotEncoder(handle_unknown="ignore"), ["ocean_proximity"]),
    )
    return make_pipeline(preprocessing, small_model()).fit(X, y)


def test_skops_round_trip_trusts_only_our_types(california_sample, fitted_pipeline, tmp_path):
    sio = pytest.importorskip("skops.io")
    X, _ = california_sample
    path = tmp_path / "model.skops"
    sio.dump(fitted_pipeline, path)
    untrusted = sio.get_untrusted_types(file=path)
    # Beyond what the scikit-learn preprocessing needs (skops 0.16 asks to trust numpy.dtype
    # for SimpleImputer), only our types; torch's and skorch's never reach the file.
    preprocessing = fitted_pipeline[0]
    assert set(untrusted) - set(sio.get_untrusted_types(data=sio.dumps(preprocessing))) == OUR_TYPES
    assert "sktorch_mlp._regressor.TorchMLPRegressor" in untrusted
    restored = sio.load(path, trusted=untrusted)
    np.testing.assert_array_equal(restored.predict(X), fitted_pipeline.predict(X))


def test_skops_refuses_to_load_without_trusting_our_types(fitted_pipeline, tmp_path):
    sio = pytest.importorskip("skops.io")
    path = tmp_path / "model.skops"
    sio.dump(fitted_pipeline, path)
    with pytest.raises(Exception, match="Untrusted types found"):
        sio.load(path)


def test_net_pickled_on_a_gpu_loads_on_a_cpu_without_warnings(regression_data, monkeypatch):
    X, y = regression_data
    net = small_model().fit(X, y).net_
    X_t = torch.as_tensor(X)
    expected = net.infer(X_t)
    net.device = "cuda:0"  # what a net trained there records; its tensors are on the CPU here
    payload = pickle.dumps(net)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restored = pickle.loads(payload)
    assert restored.device == "cpu"
    torch.testing.assert_close(restored.infer(X_t), expected, rtol=0, atol=0)


def test_gpu_optimizer_flags_give_way_to_the_loading_machine(regression_data, monkeypatch):
    X, y = regression_data
    model = small_model(max_epochs=2).fit(X, y)
    # Saved with a fused optimizer (as on a GPU), loaded where the device has no fused kernel.
    payload = pickle.dumps(model)
    monkeypatch.setattr(training_net, "supports_fused_adamw", lambda device: False)
    restored = pickle.loads(payload)
    assert model.net_.optimizer_.param_groups[0]["fused"]
    assert not restored.net_.optimizer_.param_groups[0]["fused"]
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    restored.partial_fit(X, y)  # and it trains on, with torch.optim's step
    assert restored.n_iter_ == 3


def test_a_model_saved_before_the_embedding_width_was_configured_loads_with_width_16(
    monkeypatch,
):
    from sktorch_mlp._network import mlp

    X = np.random.default_rng(0).normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5]
    monkeypatch.setitem(mlp.EMBEDDING_DIMS, "piecewise", 16)
    model = small_model(embedding="piecewise").fit(X, y)
    del model._net_config["embedding_dim"]  # as those models saved their configuration
    monkeypatch.undo()

    loaded = pickle.loads(pickle.dumps(model))

    assert loaded.net_.module_.embedding.weight.shape[-1] == 16
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))


def test_a_model_saved_before_the_number_of_bins_was_configured_loads_with_48_bins(
    monkeypatch,
):
    from sktorch_mlp import _regressor
    from sktorch_mlp._network import mlp

    X = np.random.default_rng(0).normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5]
    monkeypatch.setattr(_regressor, "PIECEWISE_BINS", 48)
    model = small_model(embedding="piecewise").fit(X, y)
    del model._net_config["n_bins"]  # as those models saved their configuration
    monkeypatch.undo()
    assert mlp.PIECEWISE_BINS != 48

    loaded = pickle.loads(pickle.dumps(model))

    assert loaded.net_.module_.embedding.weight.shape[1] == 48
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))


def test_a_model_saved_before_the_embedding_had_its_own_decay_loads_and_continues():
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5]
    model = small_model(embedding="piecewise", embedding_weight_decay=None).fit(X, y)
    del model._net_config["embedding_weight_decay"]  # as those models saved their configuration
    model.set_params(embedding_weight_decay=0.1)  # and a decay of its own asked for now

    loaded = pickle.loads(pickle.dumps(model))

    np.testing.assert_allclose(loaded.predict(X), model.predict(X))
    # Adam's state continues in the one parameter group it was saved with.
    loaded.partial_fit(X, y)
    assert [group["weight_decay"] for group in loaded.net_.optimizer_.param_groups] == [0.4]


def test_the_embeddings_decay_is_kept_through_saving_and_partial_fit():
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5]
    model = small_model(embedding="piecewise", embedding_weight_decay=0.05).fit(X, y)

    loaded = pickle.loads(pickle.dumps(model))
    loaded.partial_fit(X, y)

    decays = [group["weight_decay"] for group in loaded.net_.optimizer_.param_groups]
    assert decays == [0.05, 0.4]
    embedding = {id(param) for param in loaded.net_.module_.embedding.parameters()}
    assert {id(param) for param in loaded.net_.optimizer_.param_groups[0]["params"]} == embedding
