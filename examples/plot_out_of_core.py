"""
===================================
Training on data larger than memory
===================================

When a table does not fit in memory, :class:`~sktorch_mlp.TorchMLPRegressor`
can train on it a chunk at a time with
:meth:`~sktorch_mlp.TorchMLPRegressor.partial_fit`. This example writes a
generated table to a CSV file, fits the preprocessing on a random sample of its
rows, then makes several passes over the file in chunks read with pandas
``chunksize``, measuring the test RMSE after each pass. It ends with the same
loop over the blocks of a dask array.

The file here has 100,000 rows so that the example runs in well under a minute,
but no step holds more than one chunk and the sample in memory: the same code
trains on files far larger than the memory of the machine.
``benchmarks/out_of_core.py`` streams 10 million rows this way; the
documentation's benchmark page reports its speed and peak memory.
"""

# %%
# A table on disk
# ---------------
# The generated table has some of the difficulties of real data: a skewed column
# (``distance``), a cyclic one (``hour``) and a categorical one (``region``). The
# target, a trip ``duration``, depends on all of them nonlinearly, plus noise of
# standard deviation 0.3: no model can reach a test RMSE below 0.3. Training
# and test rows go to two CSV files in a temporary directory.
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

NOISE = 0.3


def make_trips(n_rows, rng):
    trips = pd.DataFrame(
        {
            "distance": rng.exponential(10.0, n_rows),
            "load": rng.uniform(0, 100, n_rows),
            "temperature": rng.normal(15, 8, n_rows),
            "hour": rng.integers(0, 24, n_rows),
            "region": rng.choice(["north", "south", "east", "west", "center"], n_rows),
        }
    )
    region_effect = trips["region"].map(
        {"north": 1.0, "south": -1.0, "east": 0.5, "west": 0.0, "center": 2.0}
    )
    trips["duration"] = (
        5
        + 2 * np.sqrt(trips["distance"]) * (1 + trips["load"] / 100)
        + 3 * np.sin(2 * np.pi * trips["hour"] / 24)
        + 0.05 * (trips["temperature"] - 15) ** 2
        + region_effect
        + rng.normal(0, NOISE, n_rows)
    )
    return trips


directory = Path(tempfile.mkdtemp())
train_csv, test_csv = directory / "trips_train.csv", directory / "trips_test.csv"
rng = np.random.default_rng(0)
make_trips(100_000, rng).to_csv(train_csv, index=False)
make_trips(20_000, rng).to_csv(test_csv, index=False)
print(f"{train_csv.name}: {train_csv.stat().st_size / 2**20:.1f} MiB")

# %%
# Preprocessing fitted on a sample
# --------------------------------
# The scaler and the one-hot encoder need statistics of the whole table: a
# random tenth of the rows estimates them well. ``skiprows`` with a function
# keeps a row when the function returns False, so the file is read once and only
# the sample stays in memory (row 0 is the header). The encoder ignores
# categories the sample missed (``handle_unknown="ignore"``): they come out as
# all zeros instead of raising in the middle of a pass. Real files often have
# missing values: a :class:`~sklearn.impute.SimpleImputer` before the scaler
# would learn its medians from the sample too.
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

sample_rng = np.random.default_rng(1)
sample = pd.read_csv(train_csv, skiprows=lambda row: row > 0 and sample_rng.random() > 0.1)
target = "duration"
preprocess = ColumnTransformer(
    [
        ("numeric", StandardScaler(), ["distance", "load", "temperature", "hour"]),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["region"]),
    ]
)
preprocess.fit(sample.drop(columns=target))
print(f"Sample: {len(sample):,} rows")

# %%
# What ``partial_fit`` does
# -------------------------
# Each call trains for one epoch over the rows it is given: it shuffles them,
# then takes one optimizer step per mini-batch of ``batch_size`` rows, starting
# from the current weights. Successive calls over the chunks of a file train
# like epochs over the whole file, with three differences from
# :meth:`~sktorch_mlp.TorchMLPRegressor.fit`:
#
# - Adam's state (its running moments and step count) carries over from call to
#   call, as within one ``fit``;
# - there is no early stopping and no held-out validation set: measure the
#   error on held-out rows yourself, as below, to decide when to stop;
# - the learning rate stays at ``lr`` (``lr_schedule`` is ignored). It can be
#   changed between calls with ``set_params(lr=...)``, which keeps Adam's state.
#
# The first call on a fresh model learns the input transformation (by default a
# quantile transformation of each column) and the target's mean and scale from
# its rows, and they stay fixed afterwards. That chunk must therefore be
# representative: a file sorted by date or by region would give a first chunk
# that is not. Here the first call trains on the random sample, so the model's
# own statistics come from it too. Otherwise, make the first chunk large, or
# use ``input_transform="standard"``: the quantile transformation maps every
# value beyond the range the first chunk saw to that range's ends, while the
# standard scaling is linear and keeps them apart. Rows are shuffled within a
# chunk, not across chunks: shuffle a sorted file once before training, or read
# its chunks in a random order.
#
# Two models are trained side by side on the same chunks: one keeps the
# learning rate of 1e-3; the other divides it by 3 after each pass, a fixed
# stand-in for the schedule of ``fit`` (which divides it by 3.3 when the
# validation loss stalls). Both use one network (``ensemble_size=1``, default 4)
# to keep the example quick on a CPU.
from sktorch_mlp import TorchMLPRegressor

models = {
    "constant lr": TorchMLPRegressor(ensemble_size=1, random_state=0),
    "lr / 3 per pass": TorchMLPRegressor(ensemble_size=1, random_state=0),
}
X_sample = preprocess.transform(sample.drop(columns=target))
for model in models.values():
    model.partial_fit(X_sample, sample[target])


def test_rmse(model, chunk_rows=10_000):
    """RMSE over the test file, predicted a chunk at a time."""
    squared_error, n_rows = 0.0, 0
    for chunk in pd.read_csv(test_csv, chunksize=chunk_rows):
        y_pred = model.predict(preprocess.transform(chunk.drop(columns=target)))
        squared_error += np.sum((chunk[target] - y_pred) ** 2)
        n_rows += len(chunk)
    return np.sqrt(squared_error / n_rows)


# %%
# Passes over the file
# --------------------
# Each pass reads the file in chunks of 10,000 rows; each chunk is transformed
# once and given to both models. Between passes, the test RMSE is measured.
n_passes = 4
scores = {name: [test_rmse(model)] for name, model in models.items()}
print(f"after the sample: test RMSE {scores['constant lr'][0]:.3f}")
for n_pass in range(1, n_passes + 1):
    models["lr / 3 per pass"].set_params(lr=1e-3 / 3 ** (n_pass - 1))
    for chunk in pd.read_csv(train_csv, chunksize=10_000):
        X_chunk = preprocess.transform(chunk.drop(columns=target))
        for model in models.values():
            model.partial_fit(X_chunk, chunk[target])
    for name, model in models.items():
        scores[name].append(test_rmse(model))
    print(
        f"pass {n_pass}: test RMSE "
        + ", ".join(f"{name} {score[-1]:.3f}" for name, score in scores.items())
    )
model = models["lr / 3 per pass"]
print(f"{model.n_iter_} partial_fit calls: the sample, then {n_passes} passes of 10 chunks")

# %%
# Test RMSE and training loss
# ---------------------------
# On the left, the test RMSE after the call on the sample (pass 0) and after
# each pass; the dotted line is the noise floor. On the right, ``loss_curve_``:
# one entry per ``partial_fit`` call, the mean training loss (MSE of the
# standardized target) over that call's chunk.
import matplotlib.pyplot as plt

fig, (ax_rmse, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
for name, model in models.items():
    ax_rmse.plot(range(n_passes + 1), scores[name], marker="o", label=name)
    ax_loss.plot(range(1, model.n_iter_ + 1), model.loss_curve_, label=name)
ax_rmse.axhline(NOISE, color="gray", linestyle=":", label="noise floor")
ax_rmse.set(
    xlabel="Pass over the file",
    xticks=range(n_passes + 1),
    ylabel="Test RMSE",
    title="Test RMSE after each pass",
)
ax_loss.set(
    xlabel="partial_fit call",
    ylabel="MSE of the standardized target",
    yscale="log",
    title="Training loss (loss_curve_)",
)
ax_rmse.legend()
ax_loss.legend()
fig.tight_layout()
plt.show()

# %%
# The blocks of a dask array
# --------------------------
# A dask array (``pip install "sktorch-mlp[dask]"``) stored in blocks of rows,
# for example read from Zarr or HDF5 files, trains the same way: compute one
# block at a time and pass it to ``partial_fit``. The array must be split along
# rows only (``X.rechunk({1: -1})`` if it is not), and ``y`` must have the same
# row blocks; ``dask.compute`` computes a block of both in one go, so what they
# share is read once.
#
# .. code-block:: python
#
#     import dask
#     import dask.array as da
#
#     X = da.from_zarr("features.zarr")  # shape (n_rows, n_features), blocks of rows
#     y = da.from_zarr("target.zarr")  # shape (n_rows,), the same row blocks
#     model = TorchMLPRegressor(input_transform="standard", random_state=0)
#     for n_pass in range(n_passes):
#         for block in range(X.numblocks[0]):
#             X_block, y_block = dask.compute(X.blocks[block], y.blocks[block])
#             model.partial_fit(X_block, y_block)
#
# Here too the first block fixes the input transformation and the target's
# scale. The first block of an array is a contiguous slice of its rows, not a
# random sample, hence ``input_transform="standard"`` in this sketch.

# %%
# Remove the temporary files.
import shutil

shutil.rmtree(directory)
