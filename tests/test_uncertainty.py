"""predict(X, return_std=True): the spread of Monte-Carlo dropout passes and ensemble members."""

import numpy as np
import pytest

from sktorch_mlp import TorchMLPRegressor

rng = np.random.default_rng(0)
# Dense data on [-1, 1]; nothing beyond.
X_DENSE = rng.uniform(-1, 1, size=(300, 1))
Y_DENSE = np.sin(3 * X_DENSE[:, 0]) + 0.1 * rng.normal(size=300)


def mc_model(**params):
    defaults = dict(
        hidden_layer_sizes=(32, 32),
        dropout=0.1,
        ensemble_size=1,
        embedding="none",
        input_transform="standard",
        max_epochs=40,
        early_stopping=False,
        lr=3e-3,
        mc_dropout_passes=20,
        random_state=0,
    )
    return TorchMLPRegressor(**{**defaults, **params})


@pytest.fixture(scope="module")
def fitted():
    return mc_model().fit(X_DENSE, Y_DENSE)


def test_std_is_positive_and_smaller_where_the_training_data_is_dense(fitted):
    inside = np.linspace(-0.5, 0.5, 11)[:, None]
    far = np.array([[-3.0], [-2.5], [2.5], [3.0]])
    _, std_inside = fitted.predict(inside, return_std=True)
    _, std_far = fitted.predict(far, return_std=True)
    assert np.all(std_inside > 0)
    # Over random_state 0 to 7 the ratio ranges from 1.6 to 3.8.
    assert std_far.min() > 1.25 * std_inside.max()


@pytest.mark.parametrize("params", [{}, {"dropout": 0.0, "ensemble_size": 3}])
def test_mean_is_predict_and_the_model_is_left_as_it_was(params):
    model = mc_model(**params).fit(X_DENSE, Y_DENSE)
    expected = model.predict(X_DENSE)
    mean, std = model.predict(X_DENSE, return_std=True)
    np.testing.assert_array_equal(mean, expected)
    assert std.shape == expected.shape and np.all(std > 0)
    # Dropout is off again for plain predictions.
    np.testing.assert_array_equal(model.predict(X_DENSE), expected)


def test_std_is_reproducible_with_an_int_random_state(fitted):
    _, first = fitted.predict(X_DENSE[:20], return_std=True)
    _, second = fitted.predict(X_DENSE[:20], return_std=True)
    np.testing.assert_array_equal(first, second)


def test_std_is_in_target_units():
    _, std = mc_model(max_epochs=5).fit(X_DENSE, Y_DENSE).predict(X_DENSE[:10], return_std=True)
    scaled = mc_model(max_epochs=5).fit(X_DENSE, 1000 * Y_DENSE)
    # The same standardized target trains the same network; only the units differ.
    np.testing.assert_allclose(
        scaled.predict(X_DENSE[:10], return_std=True)[1], 1000 * std, rtol=1e-4
    )


def test_multi_output_std_has_one_column_per_output():
    Y = np.column_stack([Y_DENSE, X_DENSE[:, 0]])
    mean, std = mc_model(max_epochs=2).fit(X_DENSE, Y).predict(X_DENSE[:10], return_std=True)
    assert mean.shape == std.shape == (10, 2)


def test_more_passes_estimate_the_same_spread(fitted):
    few = fitted.set_params(mc_dropout_passes=200).predict(X_DENSE[:50], return_std=True)[1]
    many = fitted.set_params(mc_dropout_passes=400).predict(X_DENSE[:50], return_std=True)[1]
    fitted.set_params(mc_dropout_passes=20)
    np.testing.assert_allclose(few.mean(), many.mean(), rtol=0.1)


def test_one_network_without_dropout_has_no_spread_to_measure():
    model = mc_model(dropout=0.0, ensemble_size=1, max_epochs=2).fit(X_DENSE, Y_DENSE)
    with pytest.raises(ValueError, match="dropout > 0 .* or ensemble_size > 1"):
        model.predict(X_DENSE, return_std=True)
    assert model.predict(X_DENSE).shape == (300,)
