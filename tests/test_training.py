"""Training behaviour: sample weights, partial_fit, warm start, schedules, internal scaling."""

import numpy as np
import pytest
import torch

from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._scaling import make_input_transformer


def exact_model(**params):
    """Full-batch, no dropout, no early stopping: training depends only on the data's content."""
    defaults = dict(
        hidden_layer_sizes=(16,),
        dropout=0.0,
        batch_size=1000,
        max_epochs=20,
        early_stopping=False,
        lr=1e-2,
        random_state=0,
    )
    return TorchMLPRegressor(**{**defaults, **params})


def test_zero_sample_weight_removes_the_rows_influence(regression_data):
    X, y = regression_data
    rng = np.random.default_rng(0)
    outliers_X = rng.normal(size=(30, X.shape[1])) * 5
    outliers_y = rng.normal(size=30) * 1e4
    X_all, y_all = np.vstack([X, outliers_X]), np.concatenate([y, outliers_y])
    weights = np.concatenate([np.ones(len(y)), np.zeros(30)])

    clean = exact_model().fit(X, y).predict(X)
    weighted = exact_model().fit(X_all, y_all, sample_weight=weights).predict(X)
    unweighted = exact_model().fit(X_all, y_all).predict(X)
    np.testing.assert_allclose(weighted, clean, rtol=1e-4, atol=1e-3)
    assert not np.allclose(unweighted, clean, rtol=1e-2)


def test_sample_weight_scale_does_not_matter(regression_data):
    X, y = regression_data
    weights = np.random.default_rng(0).uniform(0.5, 2, size=len(y))
    small = exact_model().fit(X, y, sample_weight=weights).predict(X)
    large = exact_model().fit(X, y, sample_weight=weights * 1000).predict(X)
    np.testing.assert_allclose(small, large, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "weights, match",
    [
        (np.ones(5), "inconsistent numbers of samples|sample_weight.shape"),
        (-np.ones(120), "Negative values"),
        (np.zeros(120), "at least one non-zero"),
    ],
)
def test_invalid_sample_weight(regression_data, weights, match):
    X, y = regression_data
    with pytest.raises(ValueError, match=match):
        exact_model().fit(X, y, sample_weight=weights)


def test_partial_fit_trains_one_epoch_per_call_and_continues(regression_data):
    X, y = regression_data
    model = exact_model(batch_size=32)
    model.partial_fit(X, y)
    assert model.n_iter_ == 1
    first_loss = model.loss_curve_[0]
    steps_after_first = _adam_steps(model)
    for _ in range(9):
        model.partial_fit(X, y)
    assert model.n_iter_ == 10 == len(model.loss_curve_)
    assert model.loss_curve_[-1] < 0.5 * first_loss
    # Adam's state is carried over: its step count keeps growing.
    assert _adam_steps(model) == 10 * steps_after_first == 10 * 4


def test_partial_fit_over_chunks_learns_like_epochs(regression_data):
    X, y = regression_data
    # Quantiles learned from a 40-row first chunk would be coarse; standardize instead.
    model = exact_model(batch_size=20, input_transform="standard")
    for _ in range(15):
        for chunk in np.array_split(np.arange(len(X)), 3):
            model.partial_fit(X[chunk], y[chunk])
    assert model.score(X, y) > 0.9


def test_partial_fit_rejects_data_of_another_shape(regression_data):
    X, y = regression_data
    model = exact_model().partial_fit(X, y)
    with pytest.raises(ValueError, match="5 features"):
        model.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match="output"):
        model.partial_fit(X, np.column_stack([y, y]))
    assert model.n_iter_ == 1


def test_partial_fit_after_fit_continues_from_the_fitted_weights(regression_data):
    X, y = regression_data
    model = exact_model(early_stopping=True, max_epochs=10, batch_size=32).fit(X, y)
    n_iter = model.n_iter_
    score = model.score(X, y)
    model.partial_fit(X, y)
    assert model.n_iter_ == n_iter + 1
    assert model.score(X, y) > score - 0.05


def test_warm_start_keeps_the_weights(regression_data):
    X, y = regression_data
    model = exact_model(max_epochs=5).fit(X, y)
    weights = _weights(model)
    # A learning rate this small leaves the weights where the first fit put them.
    model.set_params(warm_start=True, lr=1e-12, max_epochs=2).fit(X, y)
    assert model.n_iter_ == 7 == len(model.loss_curve_)
    np.testing.assert_allclose(_weights(model), weights, atol=1e-8)
    model.set_params(warm_start=False).fit(X, y)
    assert model.n_iter_ == 2
    assert not np.allclose(_weights(model), weights, atol=1e-3)


def test_warm_start_with_another_architecture_is_refused(regression_data):
    X, y = regression_data
    model = exact_model(max_epochs=2).fit(X, y)
    with pytest.raises(ValueError, match="warm_start=False"):
        model.set_params(warm_start=True, hidden_layer_sizes=(8,)).fit(X, y)
    assert model.net_.module_.output.in_features == 16


@pytest.mark.parametrize("embedding", ["piecewise", "periodic"])
def test_the_embedding_is_decayed_by_its_own_weight_decay(regression_data, embedding):
    X, y = regression_data
    lr = 1e-2
    params = dict(
        hidden_layer_sizes=(8,),
        embedding=embedding,
        lr=lr,
        weight_decay=0.0,
        ema_decay=0.0,
        early_stopping=False,
        max_epochs=2,
        random_state=0,
    )
    # lr * embedding_weight_decay = 1: each step first sets the embedding to zero, so it
    # holds no more than the last Adam step; the layers, undecayed, keep their scale.
    decayed = TorchMLPRegressor(**params, embedding_weight_decay=1 / lr).fit(X, y)
    undecayed = TorchMLPRegressor(**params, embedding_weight_decay=None).fit(X, y)

    def largest(module):
        return max(param.abs().max().item() for param in module.parameters() if param.numel())

    assert largest(decayed.net_.module_.embedding) < 5 * lr
    assert largest(undecayed.net_.module_.embedding) > 10 * lr
    assert largest(decayed.net_.module_.hidden) > 10 * lr


def test_cosine_schedule_anneals_the_learning_rate_to_zero(regression_data):
    X, y = regression_data
    model = exact_model(lr_schedule="cosine", max_epochs=8).fit(X, y)
    assert model.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    constant = exact_model(lr_schedule="constant", max_epochs=8).fit(X, y)
    assert constant.net_.optimizer_.param_groups[0]["lr"] == 1e-2


def test_plateau_schedule_lowers_the_learning_rate_when_stuck():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 3)), rng.normal(size=64)  # nothing to learn
    model = exact_model(lr_schedule="plateau", lr=0.3, max_epochs=30, n_iter_no_change=4)
    model.fit(X, y)
    assert model.net_.optimizer_.param_groups[0]["lr"] < 0.3


@pytest.mark.parametrize("input_transform", ["standard", "quantile"])
def test_internal_input_transform_makes_the_input_scale_irrelevant(
    regression_data, input_transform
):
    X, y = regression_data
    shifted = X * 1e4 + 1e5
    model = exact_model(input_transform=input_transform)
    reference = model.fit(X, y).predict(X)
    np.testing.assert_allclose(
        model.fit(shifted, y).predict(shifted), reference, rtol=1e-3, atol=1e-2
    )
    raw = exact_model(input_transform="none").fit(shifted, y).predict(shifted)
    assert not np.allclose(raw, reference, rtol=1e-2)


def test_quantile_transform_bounds_outliers_and_rare_indicators():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.lognormal(sigma=3, size=2000), rng.random(2000) < 0.001])
    transformer = make_input_transformer("quantile", X)
    Z = transformer.transform(X)
    assert Z.dtype == np.float32 and np.all(np.abs(Z) < 5.5)
    np.testing.assert_allclose(np.median(Z[:, 0]), 0.0, atol=0.05)


def test_weighted_quantiles_count_each_row_by_its_weight():
    rng = np.random.default_rng(0)
    X = rng.lognormal(size=(3000, 2)).astype(np.float32)
    counts = rng.integers(1, 4, size=len(X))
    repeated = make_input_transformer("quantile", np.repeat(X, counts, axis=0)).transform(X)
    weighted = make_input_transformer("quantile", X, counts.astype(float)).transform(X)
    unweighted = make_input_transformer("quantile", X).transform(X)
    assert np.abs(weighted - repeated).mean() < 0.002 < np.abs(unweighted - repeated).mean()
    # Equal weights are scikit-learn's quantiles; rows of weight zero are left out.
    equal = make_input_transformer("quantile", X, np.full(len(X), 0.3)).transform(X)
    np.testing.assert_array_equal(equal, unweighted)
    zeros = np.r_[np.ones(2000), np.zeros(1000)]
    np.testing.assert_array_equal(
        make_input_transformer("quantile", X, zeros).transform(X),
        make_input_transformer("quantile", X[:2000]).transform(X),
    )


def test_rmse_curves_are_in_target_units(regression_data):
    X, y = regression_data
    model = exact_model(early_stopping=True, max_epochs=6).fit(X, y)
    y_std = np.std(y)
    # The network trains on y / std(y): its MSE times std(y)^2 is the MSE in target units.
    np.testing.assert_allclose(model.train_scores_, np.sqrt(model.loss_curve_) * y_std, rtol=1e-5)
    valid_loss = np.asarray(model.history_[:, "valid_loss"])
    np.testing.assert_allclose(model.validation_scores_, np.sqrt(valid_loss) * y_std, rtol=1e-5)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.net_.module_.parameters()]).numpy()


def _adam_steps(model):
    state = model.net_.optimizer_.state
    return int(next(iter(state.values()))["step"])


def test_ensemble_predicts_the_average_of_its_members(regression_data):
    X, y = regression_data
    model = exact_model(ensemble_size=3).fit(X, y)
    module = model.net_.module_.train()
    with torch.no_grad():
        members = module(torch.as_tensor(model._input_transformer.transform(X)))
    module.eval()
    averaged = model._target_standardizer.inverse_transform(members.mean(dim=0).numpy())
    np.testing.assert_allclose(model.predict(X), averaged.ravel(), rtol=1e-4, atol=1e-4)
    assert model.score(X, y) > 0.5


def test_callbacks_that_listen_to_batches_are_notified_of_each(monkeypatch, regression_data):
    # The engine skips batch notifications when no callback acts on them; a callback that
    # does (a user's own) still sees every training batch, with its loss and predictions.
    from skorch.callbacks import Callback

    from sktorch_mlp import _regressor

    seen = []

    class RecordBatches(Callback):
        def on_batch_end(self, net, batch=None, training=False, loss=None, y_pred=None, **kw):
            if training:
                seen.append((len(batch[0]), float(loss), tuple(y_pred.shape)))

    original = _regressor.build_net

    def build_net(**kwargs):
        net = original(**kwargs)
        net.callbacks.append(("record", RecordBatches()))
        return net

    monkeypatch.setattr(_regressor, "build_net", build_net)
    X, y = regression_data
    model = TorchMLPRegressor(
        (8,), batch_size=50, max_epochs=2, ensemble_size=1, early_stopping=False
    ).fit(X, y)
    assert [size for size, _, _ in seen] == [50, 50, 20] * 2
    assert all(np.isfinite(loss) and shape == (size, 1) for size, loss, shape in seen)
    assert model.net_._callbacks_listen_to_batches()
