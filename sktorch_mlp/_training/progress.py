"""Training progress for ``verbose``: a progress bar over epochs, or a table with a line per epoch.

Both are skorch callbacks that read the epoch's row of the net's ``History``. skorch's own
``PrintLog`` stays silent (the net is built with ``verbose=0``).
"""

import sys

from skorch.callbacks import Callback
from tqdm.auto import tqdm


def progress_callbacks(verbose):
    """The named skorch callbacks that report training progress at a ``verbose`` level.

    Parameters
    ----------
    verbose : int or bool
        0 (or False): none; 1 (or True): an :class:`EpochProgressBar`; 2 or more:
        an :class:`EpochTable`.

    Returns
    -------
    list of (str, skorch.callbacks.Callback)
        To append to a skorch net's ``callbacks``.
    """
    if verbose >= 2:
        return [("progress", EpochTable())]
    if verbose >= 1:
        return [("progress", EpochProgressBar())]
    return []


class _EpochReporter(Callback):
    """Calls ``report(net, row)`` once for every completed epoch of a training run.

    skorch notifies callbacks in order, and ``EarlyStopping`` ends training by raising
    from its ``on_epoch_end``, so callbacks after it never hear of the last epoch. That
    epoch is reported from ``on_train_end`` instead, wherever this callback is placed.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        # With warm_start the history already holds the epochs of earlier fits.
        self.last_reported_epoch_ = len(net.history)
        self.lr_ = None

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        # The rate the optimizer uses during this epoch; a scheduler changes it at the end.
        self.lr_ = net.optimizer_.param_groups[0]["lr"]

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        self._report_last_epoch(net)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self._report_last_epoch(net)

    def _report_last_epoch(self, net):
        if not len(net.history):
            return
        row = net.history[-1]
        # "dur" is recorded when an epoch completes, so an interrupted epoch is not reported.
        if row["epoch"] > self.last_reported_epoch_ and "dur" in row:
            self.last_reported_epoch_ = row["epoch"]
            self.report(net, row)

    def report(self, net, row):
        """Show one completed epoch.

        Parameters
        ----------
        net : skorch.NeuralNet
            The net being trained.
        row : dict
            The epoch's entry of ``net.history``.
        """
        raise NotImplementedError


class EpochProgressBar(_EpochReporter):
    """A tqdm progress bar over the epochs of ``fit``, written to stderr (``verbose=1``).

    The bar counts epochs up to ``max_epochs`` (early stopping may end it sooner) and
    shows the last epoch's training loss and, with early stopping, validation RMSE.
    In a Jupyter notebook it is a widget when ``ipywidgets`` is installed.

    Parameters
    ----------
    file : file-like or None, default=None
        Where the bar is written; None means ``sys.stderr`` at the start of training.
    """

    def __init__(self, file=None):
        self.file = file

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.bar_ = tqdm(
            total=net.max_epochs,
            desc="Training",
            unit="epoch",
            file=sys.stderr if self.file is None else self.file,
        )

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.bar_.close()
        del self.bar_

    def report(self, net, row):
        """Advance the bar by one epoch and show its losses."""
        postfix = {"train_loss": f"{row['train_loss']:.4f}"}
        if "valid_rmse" in row:
            postfix["valid_rmse"] = f"{row['valid_rmse']:#.4g}"
        self.bar_.set_postfix(postfix, refresh=False)
        self.bar_.update()

    def __getstate__(self):
        # A tqdm bar holds a stream and a lock: neither pickles, and neither is needed after fit.
        state = self.__dict__.copy()
        state.pop("bar_", None)
        return state


class EpochTable(_EpochReporter):
    """A table with one line per epoch, printed to stdout as each epoch ends (``verbose=2``).

    The columns are the epoch, the training loss (MSE of the standardized target),
    the training and validation RMSE in target units (the validation column only
    with early stopping), the learning rate used during the epoch and its duration.

    Parameters
    ----------
    file : file-like or None, default=None
        Where the table is written; None means ``sys.stdout`` at the time of writing.
    """

    _COLUMNS = (
        ("epoch", 5, "{:d}"),
        ("train loss", 10, "{:.4f}"),
        ("train RMSE", 10, "{:#.4g}"),
        ("valid RMSE", 10, "{:#.4g}"),
        ("lr", 9, "{:.2e}"),
        ("time", 7, "{:.2f}s"),
    )

    def __init__(self, file=None):
        self.file = file

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.header_printed_ = False

    def report(self, net, row):
        """Print the epoch's line, after the header on the first one."""
        if not self.header_printed_:
            self._print("  ".join(f"{name:>{width}}" for name, width, _ in self._COLUMNS))
            self.header_printed_ = True
        values = (
            row["epoch"],
            row.get("train_loss"),
            row.get("train_rmse"),
            row.get("valid_rmse"),
            self.lr_,
            row["dur"],
        )
        cells = (
            f"{'-' if value is None else template.format(value):>{width}}"
            for (_, width, template), value in zip(self._COLUMNS, values, strict=True)
        )
        self._print("  ".join(cells))

    def _print(self, line):
        print(line, file=sys.stdout if self.file is None else self.file, flush=True)
