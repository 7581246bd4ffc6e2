"""The scikit-learn facade: parameters, input validation and fitted attributes.

Training itself is delegated to a skorch net (see ``_training/net.py``), which is built
in ``fit`` and kept as the fitted attribute ``net_``.
"""

import threading
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    _check_y,
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from ._network.mlp import EMBEDDING_DIMS, PIECEWISE_BINS
from ._persistence import net_state, restore_net
from ._scaling import ColumnStandardizer, make_input_transformer
from ._seeding import seeded_torch_rng
from ._tabular import CategoricalColumns, MissingValues, is_categorical_dtype
from ._tabular import resolve as resolve_categorical
from ._training.device import DeviceName, resolve_device
from ._training.faults import (
    InconsistentVersionWarning,
    is_out_of_memory,
    out_of_memory_error,
    release_cached_memory,
)
from ._training.net import build_net
from ._uncertainty import prediction_spread
from ._validation_split import member_holdout, merge_and_split

_SPARSE_FORMATS = ("csr", "csc", "coo")


class TorchMLPRegressor(RegressorMixin, BaseEstimator):
    """Multi-layer perceptron regressor trained with PyTorch, used like any scikit-learn regressor.

    The network is a stack of ``Linear -> ReLU -> Dropout`` blocks followed by a
    linear output layer, optionally preceded by a learned embedding of each
    input feature (by default a piecewise-linear one). Weights start small and
    random (Kaiming normal), biases at zero. Training minimizes the mean squared
    error (MSE) with Adam (AdamW, with decoupled weight decay), over epochs of
    shuffled mini-batches, on a GPU when one is available.

    Inputs are rescaled internally (see ``input_transform``) and each target
    column is standardized, with predictions mapped back, so targets in dollars
    train as well as targets near one, and a forgotten scaler does not ruin the
    fit. A DataFrame can be passed as it is: its categorical columns are
    embedded (one learned vector per category) and missing numbers are filled
    with the training median and flagged (see ``categorical_features`` and
    ``handle_missing``); a :class:`~sklearn.compose.ColumnTransformer` in a
    :class:`~sklearn.pipeline.Pipeline` remains the way to choose the encoding
    yourself.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(256, 256)
        Width of each hidden layer, from input to output. An int means one
        hidden layer; an empty tuple gives a linear model.

    dropout : float in [0, 1), default=0.0
        Probability of zeroing each hidden unit while training, which
        regularizes the network. Dropout is off at prediction time.

    embedding : {"piecewise", "periodic", "none"}, default="piecewise"
        How each input feature enters the network. "piecewise" encodes it on
        96 bins (at the quantiles of the training data, with
        ``input_transform="quantile"``): 1 for each bin below the value, the
        fraction of its own bin, 0 above; a learned linear map of that encoding
        plus a linear term of the feature gives its embedding of 32 values (PLE
        embeddings, Gorishniy et al. 2022), so the first layer can bend the
        feature's effect at any bin edge. "periodic" maps every feature through
        sines and cosines of learned frequencies and a small per-feature ReLU
        layer (PLR embeddings, same paper). "none" feeds the features as they
        are. Columns with at most two values skip the embedding: the adjacent
        one-hot columns of a category (at most one of them high in any training
        row) enter as one learned vector per category, as the categorical
        columns of a raw table do, and a flag as a vector of its own.

    ensemble_size : int >= 1, default=4
        Number of networks trained side by side on the same mini-batches, each
        from its own random initial weights; predictions are their average.
        Averaging several networks reduces the variance of the prediction. The
        members are computed in one batched matrix product per layer, so the
        cost grows more slowly than ``ensemble_size``. With early stopping, each
        member holds out validation rows of its own and trains on all the
        others, so the ensemble learns from every row (see ``early_stopping``).

    ensemble_type : {"independent", "shared"}, default="independent"
        How the members of an ensemble differ. "independent": each member has
        its own hidden layers. "shared": the members share the hidden layers'
        weights and differ by a learned scaling of their input features and by
        their own output layer (TabM-mini, Gorishniy et al., ICLR 2025); sharing
        regularizes the members and needs ``ensemble_size`` times fewer hidden
        weights. In both, each member is trained on its own loss (the loss is the
        mean of the members' squared errors, not the squared error of their
        mean), and predictions are the members' average. Unused with
        ``ensemble_size=1``.

    mc_dropout_passes : int >= 2, default=30
        Number of forward passes with dropout kept on that
        ``predict(X, return_std=True)`` draws (Monte-Carlo dropout) to measure
        the spread of the predictions. Unused with ``dropout=0``, where each
        pass would be the same.

    lr : float > 0, default=1e-3
        Initial learning rate of the Adam optimizer.

    lr_schedule : {"plateau", "cosine", "constant"}, default="plateau"
        How the learning rate changes over epochs. "plateau" divides it by 3.3
        once the validation loss (the training loss without early stopping)
        has failed to improve for more than ``max(n_iter_no_change // 2 - 1, 1)``
        epochs; "cosine" anneals it to zero over ``max_epochs``; "constant"
        keeps it.

    weight_decay : float >= 0, default=0.4
        Decoupled weight decay (AdamW): every step shrinks the weights by
        ``lr * weight_decay`` times their value. It applies to the hidden and
        output layers, and to the input embedding unless
        ``embedding_weight_decay`` says otherwise.

    embedding_weight_decay : float >= 0 or None, default=None
        Weight decay of the input embedding (``embedding="periodic"`` or
        ``"piecewise"``, the vectors of one-hot groups and of categories), in a
        parameter group of its own; None applies ``weight_decay`` to it too. Less
        decay on the embedding than on the layers leaves it free to draw sharper
        functions of each feature while the layers that combine the features stay
        regularized: a setting to search on tables of a few numeric columns.

    ema_decay : float in [0, 1), default=0.99
        Decay of an exponential moving average of the weights, kept beside the
        weights being trained: after every optimizer step it moves
        ``1 - ema_decay`` of the way towards them (further in the first few
        hundred steps, which have less to average), so it averages about the
        last ``1 / (1 - ema_decay)`` steps (100 by default). Early stopping and
        the "plateau" schedule score the average, and the fitted model keeps
        it: Adam's steps leave the weights scattered around the region the loss
        settles in, and their average predicts better than any one step's.
        0 keeps the trained weights themselves. Not used by :meth:`partial_fit`,
        whose calls each see one pass over a chunk.

    batch_size : int >= 1, default=128
        Number of samples per mini-batch; one optimizer step per batch. Values
        between 16 and 256 suit most tabular data sets.

    max_epochs : int >= 1, default=200
        Maximum number of passes over the training data.

    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training data, stop when the
        validation loss has not improved by ``tol`` for ``n_iter_no_change``
        epochs, and keep the weights of the best epoch. In an ensemble every
        member holds out its own ``validation_fraction`` of the rows (apart from
        the other members' while they fit), and the validation loss is the
        members' loss on the rows each held out, by its own prediction; all
        members keep the weights of the same epoch. If False, train for
        ``max_epochs`` on all the data.

    validation_fraction : float in (0, 1), default=0.1
        Fraction of the training data held out for early stopping (of the total
        weight, with ``sample_weight``). Identical rows (same features and target)
        are merged into one weighted row first, so copies of a row are never split
        between training and validation. Only used if ``early_stopping=True``.

    n_iter_no_change : int >= 1, default=20
        Number of epochs without improvement before training stops. Only used
        if ``early_stopping=True``.

    tol : float >= 0, default=1e-4
        Minimum relative decrease of the validation loss that counts as an
        improvement: the loss must fall below ``(1 - tol)`` times the best so
        far. Only used if ``early_stopping=True``.

    input_transform : {"quantile", "standard", "none"}, default="quantile"
        How each input column is rescaled inside the estimator, learned from the
        training data. "quantile" maps it through its empirical distribution
        onto a standard normal (scikit-learn's ``QuantileTransformer``), which
        tames skewed columns and outliers; "standard" subtracts the mean and
        divides by the standard deviation; "none" uses the inputs as given.

    categorical_features : "from_dtype", array-like of str, int or bool, or None, \
default="from_dtype"
        Which columns hold categories. Each is embedded inside the network: every
        category seen in :meth:`fit` gets a learned vector (an embedding, of size 16),
        missing values are a category of their own, and a category not seen in
        training maps to a reserved "unknown" vector rather than an error.
        "from_dtype": the DataFrame columns of pandas ``category`` dtype, and the
        ``object`` and ``string`` columns that do not hold numbers (none for arrays).
        A list of column names, of column indices, or a boolean mask over the
        columns names them explicitly (numbers can then be categories too, such as
        postcodes). None or an empty list: no categorical columns, every column must
        be numeric.

    handle_missing : {"impute", "error"}, default="impute"
        What to do with missing values (NaN) in numeric columns. "impute": fill
        them with the column's median in the training data, and add a 0/1 column
        marking them for each column that had missing values in :meth:`fit` (a NaN
        at prediction time in a column that had none is filled with its median,
        and no other row changes). "error": refuse them with a ValueError, to be
        handled before (for example with a ``SimpleImputer``).

    warm_start : bool, default=False
        If True, :meth:`fit` continues from the weights of the previous fit
        (with a fresh optimizer), keeping the input transformation and target
        standardization it learned, and the training curves continue.

    device : {"auto", "cpu", "cuda"} or "cuda:N", default="auto"
        Where to train and predict. "auto" uses the first GPU when
        ``torch.cuda.is_available()``, else the CPU. A fitted model loads and
        predicts on a machine without a GPU whatever device trained it.

    mixed_precision : {None, "bfloat16", "float16"}, default=None
        Train with the matrix products in a 16-bit float format (automatic mixed
        precision, ``torch.autocast``), which recent GPUs compute several times
        faster; weights, loss and optimizer stay in float32, and "float16"
        gradients are scaled against underflow. None trains in float32. Meant
        for large networks or batches on a GPU: at tabular sizes and on CPUs the
        float32 step, which has a hand-written backward pass, is usually faster.
        Predictions are computed as without it.

    compile : bool or {"default", "reduce-overhead", "max-autotune"}, default=False
        Train the network compiled by ``torch.compile`` (True means "default";
        "reduce-overhead" replays CUDA graphs). Compiling takes seconds to
        minutes when training starts and needs a C++ compiler on the CPU. Like
        ``mixed_precision``, meant for GPUs and measured before use.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialization, the validation split, shuffling and
        dropout. Pass an int for reproducible results: the same data, device and
        ``random_state`` give identical predictions. torch's global random
        state is left as it was.

    verbose : int, default=0
        0 trains silently. 1 shows a progress bar over the epochs on stderr, with
        the last training loss and validation RMSE. 2 prints a line per epoch on
        stdout: training loss, training and validation RMSE, learning rate and
        duration.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during :meth:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`. Defined only when `X` has
        feature names that are all strings.

    n_outputs_ : int
        Number of regression targets.

    is_categorical_ : ndarray of bool, of shape (`n_features_in_`,)
        Which columns were taken as categorical (``categorical_features``).

    categories_ : list of ndarray
        The categories seen in :meth:`fit` in each categorical column, in the order
        of the columns, sorted, missing values excluded (like
        :attr:`sklearn.preprocessing.OneHotEncoder.categories_`). Later calls of
        :meth:`partial_fit` or ``warm_start`` fits keep them: categories they meet
        for the first time are treated as unknown.

    n_iter_ : int
        Number of epochs run.

    loss_curve_ : list of float
        Mean training loss (MSE of the standardized target, with dropout
        active) of each epoch; for an ensemble, the MSE of the members'
        average prediction.

    train_scores_ : list of float
        Root mean squared error on the training batches of each epoch, in the
        units of the target (measured while training, so with dropout active).

    validation_scores_ : list of float or None
        Root mean squared error on the held-out validation data after each
        epoch, in the units of the target. None if ``early_stopping=False``.
        Set side by side with ``train_scores_``, it shows how well the model
        generalizes.

    best_epoch_ : int
        The epoch (counting from 1) whose weights the model holds: the best
        validation epoch with early stopping, else the last one.

    device_ : str
        The torch device the model lives on, such as "cpu" or "cuda:0".

    net_ : skorch.NeuralNetRegressor
        The trained skorch engine, holding the PyTorch module (``net_.module_``)
        and the training history.

    See Also
    --------
    sklearn.neural_network.MLPRegressor : scikit-learn's own multi-layer
        perceptron, trained with NumPy on the CPU.

    Notes
    -----
    Training computes in float32. :meth:`predict` runs the trained weights in
    float64 and returns float64 like other scikit-learn regressors, so a
    sample's prediction does not depend, beyond float64 rounding (about 1e-13),
    on which other samples share its batch. Sparse inputs are densified.

    A call that fails leaves a fitted model as it was. Training that diverges
    (a NaN or infinite loss or weights, usually from too high a learning rate)
    stops and keeps the best or last good epoch's weights, with a warning, so
    the model never predicts NaN silently. A fit interrupted with Ctrl-C
    (``KeyboardInterrupt``) after at least one epoch ends fitted, with the
    weights of the last complete (or best) epoch, and warns. ``predict`` may be
    called from several threads at once. A model unpickled by another version
    of sktorch_mlp warns with an ``InconsistentVersionWarning``. The
    documentation's reliability page lists every fault and its message.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sktorch_mlp import TorchMLPRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    >>> model = TorchMLPRegressor(hidden_layer_sizes=(32,), max_epochs=20,
    ...                           random_state=0).fit(X, y)
    >>> model.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "embedding": [StrOptions({"none", "periodic", "piecewise"})],
        "ensemble_size": [Interval(Integral, 1, None, closed="left")],
        "categorical_features": ["array-like", StrOptions({"from_dtype"}), None],
        "handle_missing": [StrOptions({"impute", "error"})],
        "ensemble_type": [StrOptions({"independent", "shared"})],
        "mc_dropout_passes": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions({"constant", "plateau", "cosine"})],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "embedding_weight_decay": [Interval(Real, 0, None, closed="left"), None],
        "ema_decay": [Interval(Real, 0, 1, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "input_transform": [StrOptions({"quantile", "standard", "none"})],
        "warm_start": ["boolean"],
        "device": [DeviceName()],
        "mixed_precision": [None, StrOptions({"bfloat16", "float16"})],
        "compile": ["boolean", StrOptions({"default", "reduce-overhead", "max-autotune"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(256, 256),
        *,
        dropout=0.0,
        embedding="piecewise",
        ensemble_size=4,
        ensemble_type="independent",
        mc_dropout_passes=30,
        lr=1e-3,
        lr_schedule="plateau",
        weight_decay=0.4,
        embedding_weight_decay=None,
        ema_decay=0.99,
        batch_size=128,
        max_epochs=200,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        tol=1e-4,
        input_transform="quantile",
        categorical_features="from_dtype",
        handle_missing="impute",
        warm_start=False,
        device="auto",
        mixed_precision=None,
        compile=False,
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.embedding = embedding
        self.ensemble_size = ensemble_size
        self.ensemble_type = ensemble_type
        self.mc_dropout_passes = mc_dropout_passes
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.embedding_weight_decay = embedding_weight_decay
        self.ema_decay = ema_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.input_transform = input_transform
        self.categorical_features = categorical_features
        self.handle_missing = handle_missing
        self.warm_start = warm_start
        self.device = device
        self.mixed_precision = mixed_precision
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network on (X, y).

        Training starts from freshly initialized weights, or from the current
        ones if ``warm_start=True`` and the model is fitted.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Training data: numbers, and in a DataFrame categorical columns too (see
            ``categorical_features``); missing numbers as NaN (see ``handle_missing``).

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values. A 2-D ``y`` trains one output per column.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample in the squared error, the
            target's standardization and the input quantiles. A weight of zero
            removes a sample, and with ``early_stopping=True`` an integer weight
            k trains exactly like k copies of it; None weighs all samples equally.

        Returns
        -------
        self : TorchMLPRegressor
            The fitted estimator.

        Raises
        ------
        ValueError
            For invalid parameters or data, or when training diverges before
            any epoch ends with finite losses (lower ``lr``). The estimator is
            left as it was.
        torch.OutOfMemoryError, MemoryError
            When the GPU or the CPU runs out of memory; the message says what
            to make smaller. The estimator is left as it was.

        Warns
        -----
        sklearn.exceptions.ConvergenceWarning
            When training diverges after some good epochs: it stops and keeps
            the best or last good epoch's weights.
        UserWarning
            When training is interrupted (``KeyboardInterrupt``) after at least
            one epoch: the model is fitted with the weights of the last complete
            (or best) epoch. An earlier interrupt is raised again.
        """
        with _unchanged_on_error(self):
            resume = self.warm_start and hasattr(self, "net_")
            return self._train(X, y, sample_weight, resume=resume, streaming=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Train for one epoch over (X, y), continuing from the current weights.

        The first call initializes the model, and the input transformation and
        target standardization are learned from its data: pass a representative
        chunk first (with ``input_transform="quantile"``, at least a few
        thousand rows, or use ``input_transform="standard"``).
        Later calls keep the optimizer's state, so successive calls over chunks
        of a large data set train like epochs over it. There is no early stopping
        and the learning rate stays at ``lr``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values, with as many outputs as in earlier calls.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample.

        Returns
        -------
        self : TorchMLPRegressor
            The updated estimator.
        """
        with _unchanged_on_error(self):
            return self._train(X, y, sample_weight, resume=hasattr(self, "net_"), streaming=True)

    def predict(self, X, return_std=False):
        """Predict targets for X, optionally with the spread of the prediction.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples, with the same features as seen in :meth:`fit`.

        return_std : bool, default=False
            Also return, for each sample, the standard deviation of the
            predictions of the individual networks: each ensemble member, and
            with ``dropout > 0`` each of ``mc_dropout_passes`` forward passes
            with dropout kept on (Monte-Carlo dropout). It measures how much the
            answer depends on the network drawn, which grows away from the
            training data; it does not include the noise of the target and is
            not a calibrated interval (see the user guide's uncertainty page,
            and conformal intervals for coverage guarantees).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predicted values, float64; 1-D if the training target was 1-D. The
            same with or without ``return_std``: the deterministic prediction,
            with dropout off and the members averaged.

        y_std : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Standard deviation of the prediction, in the units of the target.
            Only returned when ``return_std`` is True.

        Raises
        ------
        ValueError
            With ``return_std=True`` when the model has neither dropout nor
            several ensemble members, so every network gives the same answer.
        """
        check_is_fitted(self)
        if (
            return_std
            and self._net_config["dropout"] == 0
            and self._net_config["ensemble_size"] == 1
        ):
            raise ValueError(
                "return_std=True measures how the predictions of several networks differ, "
                "but this model has one network (ensemble_size=1) and no dropout "
                "(dropout=0.0). Refit with dropout > 0 (for example 0.1, for Monte-Carlo "
                "dropout) or ensemble_size > 1."
            )
        X, codes = self._validated_inputs(X, reset=False, dtype=np.float64)
        X = _to_dense(X, np.float64)
        if self._missing_values is not None:
            X = self._missing_values.transform(X)
        if self._input_transformer is not None:
            X = self._input_transformer.transform(X, dtype=np.float64)
        if codes is not None:
            X = np.concatenate([X, codes], axis=1)
        try:
            # The float64 forward pass swaps the module's weights for a while: one at a time.
            with self._predict_lock, torch.inference_mode():
                y_pred = self.net_.predict(X)
                if return_std:
                    y_std = self._prediction_spread(X)
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            exc.with_traceback(None)  # its frames hold device tensors; let them go
            raise out_of_memory_error(
                exc,
                self.device_,
                "predicting",
                [
                    "fewer rows per call to predict (for example chunks of 10,000)",
                    "free the memory other models and tensors hold on this device",
                ],
                suggest_cpu=False,  # the fitted weights stay where they are
            ) from exc
        finally:
            release_cached_memory(self.device_)
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, in words
            y_pred = self._target_standardizer.inverse_transform(y_pred)
        if not np.isfinite(y_pred).all():
            n_bad = int(np.sum(~np.isfinite(y_pred).all(axis=1)))
            warnings.warn(
                f"{n_bad} of {len(y_pred)} predictions are NaN or infinite: the network's "
                "output overflowed float64 for inputs far outside the range of the training "
                f"data (input_transform={self.input_transform!r}). Check these rows for "
                "extreme values; input_transform='quantile' bounds the inputs.",
                RuntimeWarning,
                stacklevel=2,
            )
        if self._target_ndim == 1:
            y_pred = y_pred.ravel()
        if not return_std:
            return y_pred
        y_std = y_std * self._target_standardizer.scale_
        return y_pred, (y_std.ravel() if self._target_ndim == 1 else y_std)

    def _prediction_spread(self, X):
        """Spread of the networks' standardized predictions for transformed float64 X."""
        dropout = self._net_config["dropout"]
        n_passes = self.mc_dropout_passes if dropout > 0 else 1
        # Reproducible from random_state, like everything else random in the model.
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        return prediction_spread(self.net_, X, n_passes, seed)

    @property
    def history_(self):
        """skorch ``History`` of the training so far: one row per epoch, with losses and timings."""
        check_is_fitted(self)
        return self.net_.history

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = self.handle_missing == "impute"
        tags.target_tags.multi_output = True
        return tags

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: the default is the live __dict__
        state.pop("_predict_lock", None)  # a lock does not pickle; loading makes a new one
        if "net_" in state:
            # Weights as numpy arrays, not torch objects: see _persistence.py.
            state["net_"] = net_state(state["net_"])
        state["_sktorch_mlp_version"] = _package_version()
        return state

    def __setstate__(self, state):
        state = dict(state)
        pickled_version = state.pop("_sktorch_mlp_version", "unknown")
        if pickled_version != _package_version():
            warnings.warn(
                InconsistentVersionWarning(
                    estimator_name=self.__class__.__name__,
                    current_version=_package_version(),
                    original_version=pickled_version,
                ),
                stacklevel=2,
            )
        # Models pickled before raw tables were taken in: all-numeric, missing values refused.
        state.setdefault("_categorical_columns", None)
        state.setdefault("_missing_values", None)
        state.setdefault("handle_missing", "error")
        state.setdefault("categorical_features", None)
        super().__setstate__(state)
        if "net_" in state:
            # A GPU-trained model comes back on the CPU when this machine has no GPU.
            self.net_ = restore_net(state["net_"], self._net_config, self.device_)
            self.device_ = str(self.net_.device)
            self._predict_lock = threading.Lock()

    def _train(self, X, y, sample_weight, *, resume, streaming):
        """Validate the data, then train a new or resumed net; shared by fit and partial_fit."""
        hidden_layer_sizes = self._checked_hidden_layer_sizes()
        device = resolve_device(self.device)
        _check_numeric_columns(y, "y")
        if resume:
            categorical, missing_values = self._categorical_columns, self._missing_values
        else:
            indices = resolve_categorical(X, self.categorical_features)
            categorical = CategoricalColumns(X, indices) if indices else None
            missing_values = None  # learned below, from the validated numbers
        X, codes, y = self._validated_inputs(
            X, y, reset=not resume, categorical=categorical, dtype=(np.float32, np.float64)
        )
        _check_float32_range(X.data if sp.issparse(X) else X, "X")
        X = _to_dense(X, np.float32)
        y = np.asarray(y, dtype=np.float64)
        _check_float32_range(y, "y")
        target_ndim = y.ndim
        y = y.reshape(len(y), -1)
        if resume and y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y.shape[1]} output(s), but {self.__class__.__name__} was fitted "
                f"with {self.n_outputs_}. Pass targets with {self.n_outputs_} column(s), "
                "or fit a new model (warm_start=False)."
            )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
            # Only relative weights matter; at most 1, their sums cannot overflow.
            sample_weight = sample_weight / sample_weight.max()
        if not resume and self.handle_missing == "impute":
            missing_values = MissingValues(X, sample_weight)
        if missing_values is not None:
            X = missing_values.transform(X)
        n_codes = 0 if codes is None else codes.shape[1]
        n_numbers = X.shape[1]  # the numeric columns and indicators, before the codes
        if n_codes:
            # Codes are small integers, exact in float32: they travel with their rows.
            X = np.concatenate([X, codes.astype(np.float32)], axis=1)

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if self.early_stopping and not streaming:
            # Identical rows become one row weighted by their count, validation rows first:
            # copies cannot straddle the split, and weight k and k copies train alike.
            X, y, sample_weight, n_valid = merge_and_split(
                X, y, sample_weight, self.validation_fraction, rng
            )
        if resume:
            # Continuing a stream: a different shuffle per call, reproducible from random_state.
            seed = (seed + self.n_iter_) % np.iinfo(np.int32).max
            input_transformer = self._input_transformer
            target_standardizer = self._target_standardizer
        else:
            input_transformer = make_input_transformer(
                self.input_transform, X[:, :n_numbers], sample_weight, random_state=seed
            )
            target_standardizer = ColumnStandardizer(y, sample_weight)

        y = target_standardizer.transform(y)
        weights = None
        if sample_weight is not None:
            # Weights travel with their rows as extra target columns; mean 1 keeps the
            # loss on the scale of the unweighted one, whatever the weights' units.
            weights = (sample_weight / sample_weight.mean()).astype(np.float32)

        validation_data = None
        member_validation = self.early_stopping and not streaming and self.ensemble_size > 1
        if member_validation:
            # Every row of X is trained on; the members' weights say which each holds out.
            y, validation_data = _member_validation_split(
                X, y, weights, n_valid, int(self.ensemble_size)
            )
        else:
            if weights is not None:
                y = np.column_stack([y, weights])
            if self.early_stopping and not streaming:
                X, X_valid, y, y_valid = X[n_valid:], X[:n_valid], y[n_valid:], y[:n_valid]
                validation_data = (X_valid, y_valid)
        if input_transformer is not None:
            # In place when the split already copied X, else into one new array.
            owned = validation_data is not None
            X = _transform_numbers(input_transformer, X, n_codes, copy=not owned)
            if validation_data is not None:
                X_valid, y_valid = validation_data
                X_valid = _transform_numbers(input_transformer, X_valid, n_codes, copy=False)
                validation_data = (X_valid, y_valid)

        embedding_weight_decay = self.embedding_weight_decay
        if embedding_weight_decay is not None:
            embedding_weight_decay = float(embedding_weight_decay)
        if resume and streaming:
            # Adam's state continues, in the parameter groups it was saved with.
            embedding_weight_decay = self._net_config.get("embedding_weight_decay")
        if resume:
            passthrough_features = self._net_config.get("passthrough_features", [])
            passthrough_groups = self._net_config.get("passthrough_groups")
            passthrough_levels = self._net_config.get("passthrough_levels")
        else:
            passthrough_features = _two_valued_columns(X[:, :n_numbers])
            passthrough_groups = _one_hot_groups(X, passthrough_features)
            grouped = X[:, [column for group in passthrough_groups for column in group]]
            passthrough_levels = np.stack([grouped.min(axis=0), grouped.max(axis=0)], axis=1)
            passthrough_levels = passthrough_levels.astype(float).tolist()

        # Plain values only: saved with the model, to rebuild the net when it is loaded.
        net_config = dict(
            n_features=X.shape[1],
            n_outputs=target_standardizer.mean_.shape[0],
            hidden_layer_sizes=hidden_layer_sizes,
            dropout=float(self.dropout),
            embedding=self.embedding,
            embedding_dim=EMBEDDING_DIMS.get(self.embedding, 16),
            n_bins=PIECEWISE_BINS,
            ensemble_size=int(self.ensemble_size),
            ensemble_type=self.ensemble_type,
            passthrough_features=passthrough_features,
            passthrough_groups=passthrough_groups,
            passthrough_levels=passthrough_levels,
            category_sizes=[] if categorical is None else categorical.category_sizes,
            lr=float(self.lr),
            lr_schedule="constant" if streaming else self.lr_schedule,
            weight_decay=float(self.weight_decay),
            embedding_weight_decay=embedding_weight_decay,
            ema_decay=0.0 if streaming else float(self.ema_decay),
            batch_size=int(self.batch_size),
            max_epochs=1 if streaming else int(self.max_epochs),
            weighted=sample_weight is not None and not member_validation,
            member_validation=member_validation,
            target_scale=target_standardizer.scale_,
            n_iter_no_change=int(self.n_iter_no_change),
            tol=float(self.tol),
            mixed_precision=self.mixed_precision,
            compile_mode={False: None, True: "default"}.get(self.compile, self.compile),
        )
        net = build_net(
            **net_config, device=device, verbose=self.verbose, validation_data=validation_data
        )
        # A resumed net appends to the previous net's history: cut back what a failed call added.
        previous_epochs = len(self.net_.history) if resume else 0
        trained = False
        try:
            with seeded_torch_rng(seed, device):
                net.initialize()
                if resume:
                    _continue_training_state(net, self.net_, keep_optimizer=streaming)
                # skorch ends training on KeyboardInterrupt; the TrainingGuard callback
                # then keeps the last good weights and warns, or raises it again.
                net.partial_fit(X, y)
                trained = True
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            # Drop the failed net and the frames holding its tensors, so the memory is freed.
            del net
            exc.with_traceback(None)
            raise out_of_memory_error(
                exc,
                device,
                "training",
                [
                    f"a smaller batch_size (now {self.batch_size})",
                    "a smaller network (hidden_layer_sizes, ensemble_size)",
                    "fewer training rows",
                ],
            ) from exc
        finally:
            if resume and not trained:
                del self.net_.history[previous_epochs:]
            release_cached_memory(device)

        self.net_ = net
        self._net_config = net_config
        self._predict_lock = threading.Lock()
        self.device_ = device
        self.n_outputs_ = len(target_standardizer.mean_)
        self._target_ndim = target_ndim
        self._input_transformer = input_transformer
        self._target_standardizer = target_standardizer
        self._categorical_columns = categorical
        self._missing_values = missing_values
        self.is_categorical_ = np.zeros(self.n_features_in_, dtype=bool)
        if categorical is not None:
            self.is_categorical_[categorical.indices] = True
        self.categories_ = [] if categorical is None else list(categorical.categories)
        self._set_training_curves()
        return self

    def _validated_inputs(self, X, y="no_validation", *, reset, dtype, categorical=None):
        """scikit-learn's validation of (X, y), and the codes of the categorical columns.

        Returns
        -------
        X : ndarray or sparse matrix
            The numeric columns, NaN where missing if missing values are handled.
        codes : ndarray of float64 or None
            The categorical columns' codes, None when there are none.
        y : ndarray
            Unless ``y`` is "no_validation" (in predict).
        """
        if not reset:
            categorical = self._categorical_columns
        handles_missing = (
            self.handle_missing == "impute" if reset else self._missing_values is not None
        )
        checks = dict(
            accept_sparse=_SPARSE_FORMATS,
            dtype=dtype,
            ensure_all_finite="allow-nan" if handles_missing else True,
        )
        if categorical is None:
            _check_numeric_columns(X, categorical_features=self.categorical_features)
            if isinstance(y, str) and y == "no_validation":
                return validate_data(self, X, reset=reset, **checks), None
            X, y = validate_data(
                self, X, y, reset=reset, multi_output=True, y_numeric=True, **checks
            )
            return X, None, y
        # The column names and count, and y's presence; the values are checked below.
        validate_data(self, X, y, reset=reset, skip_check_array=True)
        X, codes = categorical.split(X)
        _check_numeric_columns(X, categorical_features=self.categorical_features)
        X = check_array(X, ensure_min_features=0, input_name="X", estimator=self, **checks)
        if isinstance(y, str) and y == "no_validation":
            return X, codes
        y = _check_y(y, multi_output=True, y_numeric=True, estimator=self)
        check_consistent_length(X, y)
        return X, codes, y

    def _checked_hidden_layer_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else tuple(sizes)
        if not all(
            isinstance(size, Integral) and not isinstance(size, bool) and size > 0 for size in sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must be an int or a sequence of ints, each >= 1; "
                f"got {self.hidden_layer_sizes!r}."
            )
        return tuple(int(size) for size in sizes)

    def _set_training_curves(self):
        history = self.net_.history
        self.n_iter_ = len(history)
        self.loss_curve_ = [float(loss) for loss in history[:, "train_loss"]]
        self.train_scores_ = [float(rmse) for rmse in history[:, "train_rmse"]]
        callbacks = dict(self.net_.callbacks_)
        if "early_stopping" in callbacks:
            self.validation_scores_ = [
                float(epoch["valid_rmse"]) if "valid_rmse" in epoch else None for epoch in history
            ]
            self.best_epoch_ = int(callbacks["early_stopping"].best_epoch_)
        else:
            self.validation_scores_ = None
            self.best_epoch_ = self.n_iter_
        # After a divergence or an interrupt the guard chose which weights to keep.
        kept_epoch = callbacks["training_guard"].kept_epoch_
        if kept_epoch is not None:
            self.best_epoch_ = int(kept_epoch)


def _continue_training_state(net, previous, *, keep_optimizer):
    """Start ``net`` from the weights (and optionally Adam's state) and history of ``previous``."""
    try:
        net.module_.load_state_dict(previous.module_.state_dict())
    except RuntimeError as exc:
        raise ValueError(
            "Cannot continue training: the network's shape changed since it was fitted "
            "(hidden_layer_sizes, embedding, ensemble_size or the number of features). "
            "Set warm_start=False to fit a new network."
        ) from exc
    if keep_optimizer:
        net.optimizer_.load_state_dict(previous.optimizer_.state_dict())
        for group in net.optimizer_.param_groups:
            group["lr"] = net.lr
    # The curves continue where they stopped. Shared, not copied: a copy per partial_fit call
    # would make a stream of calls quadratic; _train cuts back what a failed call added.
    net.history = previous.history


@contextmanager
def _unchanged_on_error(estimator):
    """Restore the estimator's attributes if the block raises: a failed fit keeps the old model."""
    saved = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise


def _check_numeric_columns(X, name="X", categorical_features=None):
    """Name the columns holding categories, text, dates or complex numbers, to encode first."""
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        columns = [
            (str(column), dtype, X.iloc[:, position])
            for position, (column, dtype) in enumerate(X.dtypes.items())
        ]
    elif isinstance(getattr(X, "dtype", None), np.dtype | pd.api.extensions.ExtensionDtype):
        columns = [(None, X.dtype, X)]  # an array or a Series: one dtype for all
    else:
        return  # lists and other array-likes: scikit-learn's validation words it
    text, temporal, complex_ = [], [], []
    for column, dtype, values in columns:
        if isinstance(dtype, pd.CategoricalDtype) or (
            isinstance(values, pd.Series) and is_categorical_dtype(values)
        ):
            text.append(column)
        elif dtype.kind in "mM" or isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype):
            temporal.append(column)
        elif dtype.kind == "c":
            complex_.append(column)
    problems, remedies = [], []
    if text:
        problems.append(_holding(name, text, "categories or text"))
        remedies.append(
            "A regressor predicts numbers: convert y to numbers, or use a classifier."
            if name == "y"
            else _encode_remedy(categorical_features)
        )
    if temporal:
        problems.append(_holding(name, temporal, "dates, times or intervals"))
        remedies.append(
            "Turn dates and times into numbers first, for example the year, or days since a date."
        )
    if complex_:
        problems.append(_holding(name, complex_, "complex numbers"))
        remedies.append(
            # scikit-learn's wording, which its estimator checks expect.
            "Complex data not supported; pass the real and imaginary parts as separate "
            f"columns, for example np.column_stack([{name}.real, {name}.imag])."
        )
    if problems:
        raise ValueError(
            f"TorchMLPRegressor needs real numbers, but {' and '.join(problems)}. "
            + " ".join(remedies)
        )


def _encode_remedy(categorical_features):
    if isinstance(categorical_features, str):  # "from_dtype", which found none in this X
        return (
            "Pass X as a DataFrame (categorical_features='from_dtype' finds its category, "
            "object and string columns) or list these columns in categorical_features, or "
            "encode them first, for example with a OneHotEncoder in a ColumnTransformer "
            "placed before the regressor in a Pipeline."
        )
    return (
        "List these columns in categorical_features to embed them, or encode categories and "
        "text first, for example with a OneHotEncoder in a ColumnTransformer placed before "
        "the regressor in a Pipeline."
    )


def _member_validation_split(X, y, weights, n_valid, n_members):
    """Training targets for every row, each member holding out its own validation rows.

    The members' shares come from :func:`member_holdout`: each member leaves out
    ``n_valid`` rows of its own, and every row is trained on by the other members.
    The target gains one weight column per member (a row's sample weight, or 1,
    where the member trains or validates on it, else 0), read by the loss as
    ``MSELoss(n_members=...)`` does.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        In :func:`merge_and_split`'s order.
    y : ndarray of shape (n_rows, n_outputs)
        Standardized targets.
    weights : ndarray of shape (n_rows,) or None
        Sample weights, of mean 1; None for unweighted rows.
    n_valid : int
        Number of rows each member holds out.
    n_members : int

    Returns
    -------
    y : ndarray of shape (n_rows, n_outputs + n_members)
        The targets and each member's training weights.
    validation_data : tuple of (ndarray, ndarray)
        The rows some member holds out (a copy), with the targets and each member's
        validation weights.
    """
    held_out = member_holdout(len(X), n_valid, n_members)
    weights = np.ones((len(y), 1), np.float32) if weights is None else weights[:, None]
    rows = np.flatnonzero(held_out.any(axis=1))
    y_train = np.column_stack([y, weights * ~held_out]).astype(np.float32, copy=False)
    y_valid = np.column_stack([y[rows], weights[rows] * held_out[rows]])
    return y_train, (X[rows], y_valid.astype(np.float32, copy=False))


def _transform_numbers(transformer, X, n_codes, copy):
    """The input transformation of the numeric columns; the codes after them stay as they are."""
    if not n_codes:
        return transformer.transform(X, copy=copy)
    numbers = transformer.transform(X[:, :-n_codes])
    return np.concatenate([numbers, X[:, -n_codes:]], axis=1)


def _holding(name, columns, what):
    """'column(s) [...] hold what', or 'X holds what' for an array or Series."""
    if columns == [None]:
        return f"{name} holds {what}"
    return f"column(s) {columns} hold {what}"


def _check_float32_range(values, name):
    """The network trains in float32: larger values would become inf, much smaller ones 0."""
    if values.dtype == np.float32 or values.size == 0:
        return
    # Largest magnitude per column (overall for 1-D), without a temporary copy of |values|.
    peak = np.maximum(values.max(axis=0), -values.min(axis=0))
    largest = float(np.max(peak))
    if largest > float(np.finfo(np.float32).max):
        remedy = (
            "and multiply the predictions by it"
            if name == "y"
            else "or rescale the columns holding such values"
        )
        raise ValueError(
            f"Input {name} contains a value too large for dtype('float32'), in which the "
            f"network trains: its largest absolute value is {largest:.3g}. Divide {name} by a "
            f"constant (for example {10 ** np.floor(np.log10(largest)):.0e}) {remedy}."
        )
    too_small = (peak > 0) & (peak < np.finfo(np.float32).tiny)
    if np.any(too_small):
        subject = (
            f"column(s) {np.flatnonzero(too_small).tolist()} of {name}"
            if peak.ndim
            else f"the values of {name}"
        )
        smallest = float(np.max(peak[too_small]))
        remedy = " and divide the predictions by it" if name == "y" else ""
        raise ValueError(
            f"Input {name} contains values too small for dtype('float32'), in which the "
            f"network trains: {subject} are nonzero but no larger than {smallest:.3g} in "
            "magnitude, and would become 0. Multiply them by a constant (for example "
            f"{10 ** -np.floor(np.log10(smallest)):.0e}){remedy}."
        )


def _two_valued_columns(X):
    """Indices of the columns of ``X`` with at most two distinct values (one-hot, flags)."""
    if len(X) == 0:
        return []
    low, high = X.min(axis=0), X.max(axis=0)
    # Blocks of rows keep the comparison's temporaries small on a large X.
    two_valued = np.ones(X.shape[1], dtype=bool)
    for rows in range(0, len(X), 65_536):
        block = X[rows : rows + 65_536]
        two_valued &= ((block == low) | (block == high)).all(axis=0)
    return np.flatnonzero(two_valued).tolist()


def _one_hot_groups(X, columns):
    """Divide two-valued columns into the groups of a one-hot encoding.

    A group is a run of adjacent columns of which at most one holds its larger value
    in any training row, as the columns that a ``OneHotEncoder`` makes of one category
    do; a flag is a group of its own.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    columns : list of int
        The two-valued columns, in increasing order.

    Returns
    -------
    list of list of int
    """
    groups, high_rows = [], None
    for column in columns:
        values = X[:, column]
        high = values == values.max() if len(values) else np.zeros(0, dtype=bool)
        adjacent = groups and groups[-1][-1] == column - 1
        if adjacent and not (high_rows & high).any():
            groups[-1].append(column)
            high_rows |= high
        else:
            groups.append([column])
            high_rows = high.copy()
    return groups


def _package_version():
    from . import __version__  # here, as the package imports this module before setting it

    return __version__


def _to_dense(X, dtype):
    """C-ordered ndarray: the layout torch tensors are built from without copying."""
    if sp.issparse(X):
        X = X.toarray()
    return np.ascontiguousarray(X, dtype=dtype)
