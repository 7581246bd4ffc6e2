"""scikit-learn's own estimator checks, run on the default estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktorch_mlp import TorchMLPRegressor

# Each entry needs a reason, and only a check that scikit-learn's MLPRegressor fails in the
# same configuration qualifies.
_WEIGHTS_VERSUS_REPEATS = (
    "With early stopping (on by default) a random validation fraction is held out, and "
    "repeating a row changes which rows are held out, so weighting by k and repeating k "
    "times train on different data. scikit-learn's MLPRegressor(early_stopping=True) "
    "fails this check for the same reason."
)
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": _WEIGHTS_VERSUS_REPEATS,
    "check_sample_weight_equivalence_on_sparse_data": _WEIGHTS_VERSUS_REPEATS,
}


@parametrize_with_checks(
    [TorchMLPRegressor()], expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
