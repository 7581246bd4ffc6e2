"""The ``sktorch-mlp`` command line: train on a CSV table, predict with the saved model, or demo.

``sktorch-mlp fit DATA.csv --target COLUMN --out MODEL`` trains
:class:`~sktorch_mlp.TorchMLPRegressor` on the table as it is read (the estimator embeds its text
columns and fills its missing numbers), reports RMSE and saves the fitted model as a one-step
``Pipeline``: with skops.io when MODEL ends in ``.skops``, else with joblib.
``sktorch-mlp predict MODEL DATA.csv --out PREDICTIONS.csv`` writes one prediction per row.
``sktorch-mlp`` alone (or ``sktorch-mlp demo``) trains on the bundled California housing data.
``python -m sktorch_mlp`` is the same command.

``predict`` loads a ``.skops`` MODEL with skops.io, trusting only the types this package
saves, and refuses a file holding others. Any other MODEL is loaded with joblib, that is with
pickle, which can run arbitrary code while loading: only load such files if you trust them.
"""

import argparse
import ast
import difflib
import pickle
import sys
import time
from pathlib import Path

import joblib
import pandas as pd
from sklearn.exceptions import NotFittedError
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import KFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from . import __version__
from ._persistence import SKOPS_EXPECTED_TYPES
from ._regressor import TorchMLPRegressor
from .datasets import load_california_housing

PROG = "sktorch-mlp"

# Exceptions joblib.load raises on a file that is not a pickle, or one of classes not installed.
_UNLOADABLE = (
    pickle.UnpicklingError,
    EOFError,
    ImportError,
    AttributeError,
    LookupError,
    ValueError,
    TypeError,
)


# Beyond SKOPS_EXPECTED_TYPES, what skops.io reports as untrusted in the preprocessing 'fit'
# builds: its columns are picked by dtype, with make_column_selector(dtype_include=np.number).
_PREPROCESSING_TYPES = frozenset(
    {"numpy.number", "sklearn.compose._column_transformer.make_column_selector"}
)


class CommandError(Exception):
    """A problem with the command's input, reported in one line without a traceback.

    Parameters
    ----------
    message : str
        What is wrong and what to do about it.
    status : int, default=1
        Exit status: 2 for a wrong command line (as argparse uses), 1 for unusable files.
    """

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def main(argv=None):
    """Run the ``sktorch-mlp`` command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success. Errors in the input exit with status 2 (command line) or 1
        (files), after printing ``sktorch-mlp: error: ...`` to stderr.
    """
    parser = _build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # The demo is the default command, and its options may be given without its name.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["demo", *argv]
    args = parser.parse_args(argv)
    try:
        args.command(args)
    except CommandError as exc:
        parser.exit(exc.status, f"{PROG}: error: {exc}\n")
    return 0


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
    pipeline = _make_pipeline(TorchMLPRegressor(random_state=random_state, verbose=verbose))
    print_fn(
        f"California housing: {len(X_train)} training rows, {len(X_test)} test rows, "
        f"{X.shape[1]} columns; target median_house_value in $100,000."
    )
    train_rmse, test_rmse = _fit_and_report(
        pipeline,
        (X_train, y_train),
        (X_test, y_test),
        format_rmse=lambda rmse: f"{rmse:.3f}  (${rmse * 100_000:,.0f})",
        print_fn=print_fn,
    )
    return {"pipeline": pipeline, "train_rmse": train_rmse, "test_rmse": test_rmse}


def _build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train TorchMLPRegressor, a PyTorch multi-layer perceptron, on a CSV table\n"
        "and predict with it. Without a command, run the demo: train on the bundled\n"
        "California housing data and print train and test RMSE.",
        epilog="examples:\n"
        f"  {PROG} fit houses.csv --target price --param max_epochs=50 --out model.skops\n"
        f"  {PROG} predict model.skops new_houses.csv --out predictions.csv\n"
        f"  {PROG} --test-size 0.3    (the demo; see '{PROG} demo --help')\n\n"
        "predict loads a .skops model safely; any other model file is loaded with joblib "
        "(pickle), which can run arbitrary code: only load such files if you trust them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sktorch_mlp {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="{fit,predict,demo}")

    fit = commands.add_parser(
        "fit",
        help="train on a CSV table, print train and test RMSE, save the model",
        description="Train TorchMLPRegressor on a CSV table as it is. Columns that do not hold "
        "numbers are categorical: each category gets a learned embedding, and categories "
        "unseen in training map to an 'unknown' one. Missing numbers are filled with the "
        "column's training median and flagged. Prints the RMSE on the training rows and on "
        "held-out test rows, then saves the fitted model (a Pipeline of one step).",
    )
    fit.add_argument("data", metavar="DATA.csv", help="the table, with a header line")
    fit.add_argument("--target", required=True, metavar="COLUMN", help="the column to predict")
    fit.add_argument(
        "--test-size",
        type=_fraction,
        default=0.2,
        metavar="FRACTION",
        help="fraction of rows held out to measure the test RMSE; 0 trains on every row "
        "(default: 0.2)",
    )
    fit.add_argument(
        "--cv",
        type=_n_folds,
        metavar="K",
        help="also report the K-fold cross-validated RMSE on the training rows (K >= 2)",
    )
    fit.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a TorchMLPRegressor parameter, as a Python literal, e.g. "
        '--param hidden_layer_sizes="(64, 64)" --param max_epochs=20 (repeatable; '
        "default verbose=1, a progress bar)",
    )
    fit.add_argument(
        "--random-state",
        type=int,
        default=0,
        metavar="SEED",
        help="seed of the split and the network (default: 0)",
    )
    fit.add_argument(
        "--out",
        required=True,
        metavar="MODEL",
        help="where to save the model: a name ending in .skops saves in skops' safe format "
        "(needs the skops extra: pip install 'sktorch-mlp[skops]'), any other with joblib",
    )
    fit.set_defaults(command=_fit_command)

    predict = commands.add_parser(
        "predict",
        help="predict with a model saved by 'fit'",
        description="Predict one value per row of a CSV table with a model saved by "
        f"'{PROG} fit'. The target column, if present, is ignored. A .skops MODEL is "
        "loaded with skops.io, trusting only the types this package saves; any other MODEL "
        "with joblib (pickle), which can run arbitrary code: only load such files if you "
        "trust them.",
    )
    predict.add_argument("model", metavar="MODEL", help="a model file written by 'fit'")
    predict.add_argument("data", metavar="DATA.csv", help="the rows to predict, with a header")
    predict.add_argument(
        "--out",
        metavar="PREDICTIONS.csv",
        help="where to write the predictions, one column with a header (default: stdout)",
    )
    predict.set_defaults(command=_predict_command)

    demo = commands.add_parser(
        "demo",
        help="train on the bundled California housing data (the default command)",
        description="Train the default model on the bundled California housing data, holding "
        "out test rows, and print train and test RMSE.",
    )
    demo.add_argument(
        "--test-size",
        type=_fraction,
        default=0.2,
        metavar="FRACTION",
        help="held-out fraction (default: 0.2)",
    )
    demo.add_argument(
        "--random-state",
        type=int,
        default=0,
        metavar="SEED",
        help="seed of the split and the network (default: 0)",
    )
    demo.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="0 silent, 1 a progress bar on stderr, 2 a line per epoch (default: 1)",
    )
    demo.set_defaults(command=_demo_command)
    return parser


def _fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _n_folds(text):
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 folds, got {text}")
    return value


def _demo_command(args):
    if args.test_size == 0:
        raise CommandError("the demo needs test rows; pass --test-size above 0.", status=2)
    run_demo(test_size=args.test_size, random_state=args.random_state, verbose=args.verbose)


def _fit_command(args):
    # Cheap checks first, so a typo does not cost a training run.
    regressor = _configured_regressor(args.param, random_state=args.random_state)
    out = _writable_path(args.out)
    if out.suffix == ".skops":
        _skops_io()  # installed? Before training, not after
    table = _read_table(args.data)
    X, y = _features_and_target(table, args.target, args.data)
    n_numeric = len(X.select_dtypes("number").columns)
    print(
        f"{args.data}: {len(X)} rows, {X.shape[1]} feature columns ({n_numeric} numeric, "
        f"{X.shape[1] - n_numeric} categorical or text); target {args.target}."
    )
    test = None
    if args.test_size > 0:
        X, X_test, y, y_test = train_test_split(
            X, y, test_size=args.test_size, random_state=args.random_state
        )
        test = (X_test, y_test)
        print(f"Training on {len(X)} rows, testing on {len(X_test)}.")
    pipeline = _make_pipeline(regressor)
    if args.cv:
        folds = KFold(n_splits=args.cv, shuffle=True, random_state=args.random_state)
        scores = -cross_val_score(pipeline, X, y, cv=folds, scoring="neg_root_mean_squared_error")
        print(
            f"{args.cv}-fold CV RMSE: {_format_rmse(scores.mean())} "
            f"+/- {_format_rmse(scores.std())}"
        )
    _fit_and_report(pipeline, (X, y), test, format_rmse=_format_rmse, print_fn=print)
    # predict names its output column after the target.
    pipeline.target_name_ = args.target
    _save_model(pipeline, out)
    print(f"Saved the fitted model to {out}.")


def _predict_command(args):
    out = None if args.out is None else _writable_path(args.out)
    model = _load_model(args.model)
    table = _read_table(args.data)
    target = getattr(model, "target_name_", None)
    if target in table.columns:
        table = table.drop(columns=target)
    features = getattr(model, "feature_names_in_", None)
    if features is not None:
        missing = [str(name) for name in features if name not in table.columns]
        if missing:
            raise CommandError(
                f"{args.data} lacks column(s) the model was trained with: "
                f"{', '.join(missing)}. Add them and run predict again."
            )
        table = table[list(features)]  # also drops extra columns and restores the order
    predictions = model.predict(table)
    if predictions.ndim == 1:
        columns = [target or "prediction"]
    else:
        columns = [f"prediction_{i}" for i in range(predictions.shape[1])]
    frame = pd.DataFrame(predictions, columns=columns)
    frame.to_csv(sys.stdout if out is None else out, index=False)
    if out is not None:
        print(f"Wrote {len(predictions)} predictions to {out}.")


def _make_pipeline(regressor):
    # The estimator handles categories and missing values itself: on the accuracy suite
    # that is as accurate as one-hot encoding in a ColumnTransformer, and faster on wide
    # tables. A Pipeline keeps the saved files' shape of earlier versions.
    return Pipeline([("mlp", regressor)])


def _fit_and_report(pipeline, train, test, *, format_rmse, print_fn):
    """Fit on ``train``, print the epochs run and the train (and test) RMSE; return the RMSEs."""
    X_train, y_train = train
    start = time.perf_counter()
    pipeline.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    mlp = pipeline[-1]
    print_fn(
        f"Trained {mlp.n_iter_} epochs on {mlp.device_} in {seconds:.1f} s "
        f"(kept the weights of epoch {mlp.best_epoch_})."
    )
    train_rmse = root_mean_squared_error(y_train, pipeline.predict(X_train))
    print_fn(f"Train RMSE: {format_rmse(train_rmse)}")
    test_rmse = None
    if test is not None:
        X_test, y_test = test
        test_rmse = root_mean_squared_error(y_test, pipeline.predict(X_test))
        print_fn(f"Test RMSE:  {format_rmse(test_rmse)}")
    return train_rmse, test_rmse


def _format_rmse(value):
    # Four significant digits, but no exponent for large targets such as prices.
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:#.4g}"


def _configured_regressor(param_args, *, random_state):
    """A TorchMLPRegressor with the ``--param NAME=VALUE`` settings, validated."""
    regressor = TorchMLPRegressor(random_state=random_state, verbose=1)
    valid_names = sorted(regressor.get_params())
    params = {}
    for arg in param_args:
        name, sep, text = arg.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CommandError(
                f"--param expects NAME=VALUE, got {arg!r}; for example --param max_epochs=20.",
                status=2,
            )
        if name not in valid_names:
            close = difflib.get_close_matches(name, valid_names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise CommandError(
                f"unknown parameter {name!r} in --param.{hint} "
                f"TorchMLPRegressor's parameters are: {', '.join(valid_names)}.",
                status=2,
            )
        try:
            params[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError):
            params[name] = text  # a bare word such as cpu or periodic is a string
    regressor.set_params(**params)
    try:
        regressor._validate_params()
        regressor._checked_hidden_layer_sizes()  # the one rule parameter constraints cannot state
    except (InvalidParameterError, ValueError) as exc:
        raise CommandError(f"{exc} Change it with --param.", status=2) from None
    return regressor


def _check_readable(path):
    path = Path(path)
    if not path.exists():
        raise CommandError(f"cannot read {path}: no such file.")
    if path.is_dir():
        raise CommandError(f"cannot read {path}: it is a directory, not a file.")
    return path


def _writable_path(path):
    path = Path(path)
    if path.is_dir():
        raise CommandError(f"cannot write {path}: it is a directory. Pass a file name.", status=2)
    if not path.parent.is_dir():
        raise CommandError(
            f"cannot write {path}: the directory {path.parent} does not exist.", status=2
        )
    return path


def _read_table(path):
    """The CSV table at ``path`` as a DataFrame, with at least one row."""
    path = _check_readable(path)
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise CommandError(
            f"{path} is empty. Pass a CSV file with a header line and one row per sample."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise CommandError(f"cannot read {path} as a CSV table: {reason}") from None
    if len(table) == 0:
        raise CommandError(
            f"{path} has a header but no rows. Pass a CSV file with one row per sample."
        )
    return table


def _features_and_target(table, target, path):
    """Split the table into the feature columns and a numeric target without missing values."""
    if target not in table.columns:
        raise CommandError(
            f"column {target!r} not found in {path}. Pass one of its columns to --target: "
            f"{', '.join(map(str, table.columns))}."
        )
    y = table[target]
    if not pd.api.types.is_numeric_dtype(y):
        example = y.dropna().iloc[0] if y.notna().any() else None
        raise CommandError(
            f"the target column {target!r} must be numeric for regression, but it holds "
            f"{y.dtype} values such as {example!r}. Pass a numeric column to --target."
        )
    n_missing = int(y.isna().sum())
    if n_missing:
        raise CommandError(
            f"the target column {target!r} has {n_missing} missing value(s). Remove those "
            "rows or fill them in, then run fit again."
        )
    X = table.drop(columns=target)
    if X.shape[1] == 0:
        raise CommandError(f"{path} has no column besides the target {target!r} to learn from.")
    return X, y


def _skops_io():
    try:
        import skops.io
    except ImportError:
        raise CommandError(
            "model files ending in .skops need the skops package: pip install 'sktorch-mlp[skops]'."
        ) from None
    return skops.io


def _save_model(pipeline, out):
    if out.suffix == ".skops":
        _skops_io().dump(pipeline, out)
    else:
        joblib.dump(pipeline, out)


def _load_skops(path, not_ours):
    """Load a .skops file if it creates no types beyond those this package saves."""
    sio = _skops_io()
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception:  # skops raises zipfile, json and its own errors on a foreign file
        raise CommandError(
            f"cannot load {path}: it is not a file saved with skops. {not_ours}"
        ) from None
    unexpected = sorted(set(untrusted) - SKOPS_EXPECTED_TYPES - _PREPROCESSING_TYPES)
    if unexpected:
        raise CommandError(
            f"refusing to load {path}: it would create types that models saved by "
            f"'{PROG} fit' do not hold: {', '.join(unexpected)}. {not_ours}"
        )
    return sio.load(path, trusted=untrusted)


def _load_model(path):
    """The fitted Pipeline (or TorchMLPRegressor) saved in ``path`` by ``fit``."""
    path = _check_readable(path)
    not_ours = f"Pass a model file written by '{PROG} fit'."
    try:
        if path.suffix == ".skops":
            model = _load_skops(path, not_ours)
        else:
            model = joblib.load(path)  # unpickles: the documented trust requirement
    except (ImportError, AttributeError) as exc:
        # A pickle of classes from a package (or version) that is not installed here.
        reason = str(exc).strip().splitlines()[0]
        raise CommandError(f"cannot load {path}: {reason}. {not_ours}") from None
    except _UNLOADABLE:
        raise CommandError(
            f"cannot load {path}: it is not a file saved with joblib or pickle. {not_ours}"
        ) from None
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if isinstance(model, Pipeline) and steps else model
    if not isinstance(final, TorchMLPRegressor):
        raise CommandError(
            f"{path} holds a {type(model).__name__}, not a Pipeline ending in "
            f"TorchMLPRegressor. {not_ours}"
        )
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise CommandError(f"the model in {path} is not fitted. {not_ours}") from None
    return model
