"""``python -m sktorch_mlp``: train the default model on the bundled California housing data.

The main job for a newcomer: preprocessing and ``TorchMLPRegressor`` in one Pipeline,
fitted on 80% of the rows, with RMSE on the training rows and on the 20% held out,
so the gap between them (generalization) is visible.
"""

import argparse
import time

from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from . import TorchMLPRegressor, __version__
from ._preprocessing import make_tabular_preprocessor
from .datasets import load_california_housing


def run_demo(*, test_size=0.2, random_state=0, verbose=0, print_fn=print):
    """Fit the default Pipeline on California housing and report train and test RMSE.

    Parameters
    ----------
    test_size : float, default=0.2
        Fraction of rows held out to measure generalization.
    random_state : int, default=0
        Seeds the train/test split and the network.
    verbose : int, default=0
        Passed to :class:`~sktorch_mlp.TorchMLPRegressor`.
    print_fn : callable, default=print
        Where the report lines go.

    Returns
    -------
    dict
        ``pipeline`` (fitted), ``train_rmse`` and ``test_rmse`` (in $100,000).
    """
    X, y = load_california_housing(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state
    )
    pipeline = Pipeline(
        [
            ("prep", make_tabular_preprocessor()),
            ("mlp", TorchMLPRegressor(random_state=random_state, verbose=verbose)),
        ]
    )
    print_fn(
        f"California housing: {len(X_train)} training rows, {len(X_test)} test rows, "
        f"{X.shape[1]} columns; target median_house_value in $100,000."
    )
    start = time.perf_counter()
    pipeline.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    mlp = pipeline.named_steps["mlp"]
    train_rmse = root_mean_squared_error(y_train, pipeline.predict(X_train))
    test_rmse = root_mean_squared_error(y_test, pipeline.predict(X_test))
    print_fn(
        f"Trained {mlp.n_iter_} epochs on {mlp.device_} in {seconds:.1f} s "
        f"(kept the weights of epoch {mlp.best_epoch_})."
    )
    print_fn(f"Train RMSE: {train_rmse:.3f}  (${train_rmse * 100_000:,.0f})")
    print_fn(f"Test RMSE:  {test_rmse:.3f}  (${test_rmse * 100_000:,.0f})")
    return {"pipeline": pipeline, "train_rmse": train_rmse, "test_rmse": test_rmse}


def main(argv=None):
    """Command-line entry point of ``python -m sktorch_mlp``."""
    parser = argparse.ArgumentParser(
        prog="python -m sktorch_mlp",
        description="Train TorchMLPRegressor on the bundled California housing data "
        "and print train and test RMSE.",
    )
    parser.add_argument("--test-size", type=float, default=0.2, help="held-out fraction")
    parser.add_argument("--random-state", type=int, default=0, help="seed")
    parser.add_argument("--verbose", type=int, default=0, help="print a line per epoch if 1")
    parser.add_argument("--version", action="version", version=f"sktorch_mlp {__version__}")
    args = parser.parse_args(argv)
    run_demo(test_size=args.test_size, random_state=args.random_state, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
