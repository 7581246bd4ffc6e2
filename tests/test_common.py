"""scikit-learn's own estimator checks, run on the default estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktorch_mlp import TorchMLPRegressor


@parametrize_with_checks([TorchMLPRegressor()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
