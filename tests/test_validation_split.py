"""The early-stopping split: identical rows merged and kept on one side, weight k as k copies."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.model_selection import train_test_split

import sktorch_mlp._regressor as regressor_module
import sktorch_mlp._validation_split as split_module
from sktorch_mlp import TorchMLPRegressor
from sktorch_mlp._validation_split import member_holdout, merge_and_split


def data_with_copies(n_distinct=30, n_features=3, seed=0):
    """Distinct rows, each repeated 1 to 4 times, in shuffled order; and their counts."""
    rng = np.random.default_rng(seed)
    X = rng.random((n_distinct, n_features)).astype(np.float32)
    y = rng.random((n_distinct, 1))
    counts = rng.integers(1, 5, size=n_distinct)
    rows = rng.permutation(np.repeat(np.arange(n_distinct), counts))
    return X[rows], y[rows], X, y, counts


def row_set(X, y):
    return {tuple(row) for row in np.column_stack([X, y]).tolist()}


def small_model(**params):
    defaults = dict(
        hidden_layer_sizes=(8,), ensemble_size=1, embedding="none", max_epochs=3, random_state=0
    )
    return TorchMLPRegressor(**{**defaults, **params})


@pytest.mark.parametrize("weighted", [False, True])
def test_identical_rows_become_one_row_on_one_side(weighted):
    X, y, X_distinct, y_distinct, counts = data_with_copies()
    weights = np.random.default_rng(1).random(len(X)) if weighted else None
    X_out, y_out, w_out, n_valid = merge_and_split(X, y, weights, 0.2, 0)
    assert len(X_out) == len(X_distinct)
    assert row_set(X_out, y_out) == row_set(X_distinct, y_distinct)
    assert not row_set(X_out[:n_valid], y_out[:n_valid]) & row_set(X_out[n_valid:], y_out[n_valid:])
    # Each merged row weighs the sum of its copies' weights, relative to the heaviest.
    copies = (X[:, None, :] == X_out[None, :, :]).all(axis=2)
    total = copies.T @ (np.ones(len(X)) if weights is None else weights)
    np.testing.assert_allclose(w_out, total / total.max())


def test_zero_weight_rows_are_dropped_and_zero_and_negative_zero_are_identical():
    X = np.array([[0.0, 1.0], [-0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]], np.float32)
    y = np.array([[1.0], [1.0], [2.0], [3.0], [4.0]])
    X_out, _, w_out, n_valid = merge_and_split(X, y, np.array([1.0, 1.0, 0.0, 2.0, 2.0]), 0.2, 0)
    assert len(X_out) == 3 and [2.0, 3.0] not in X_out.tolist()
    np.testing.assert_array_equal(np.sort(w_out), [1.0, 1.0, 1.0])  # 0.0 and -0.0: one row
    assert n_valid == 1


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("validation_fraction", [0.1, 0.25])
def test_held_out_share_is_within_one_row_of_the_fraction(seed, weighted, validation_fraction):
    X, y, *_ = data_with_copies(n_distinct=60, seed=seed)
    weights = np.random.default_rng(seed).random(len(X)) if weighted else None
    _, _, w_out, n_valid = merge_and_split(X, y, weights, validation_fraction, seed)
    target = validation_fraction * w_out.sum()
    share = w_out[:n_valid].sum()
    assert target <= share * (1 + 1e-12)
    assert share - target < w_out[:n_valid].max()


def test_a_row_heavier_than_the_share_stays_in_training():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.zeros((10, 1))
    weights = np.array([50.0] + [1.0] * 9)  # the share is 5.9: row 0 alone would be 50
    for seed in range(10):
        X_out, _, _, n_valid = merge_and_split(X, y, weights, 0.1, seed)
        assert [0.0, 1.0] in X_out[n_valid:].tolist()
        assert n_valid == 6


def test_too_few_distinct_rows_raise_the_early_stopping_error():
    X, y = np.ones((5, 2), np.float32), np.ones((5, 1))
    with pytest.raises(ValueError, match=r"n_samples=5, of which 1 distinct.*early_stopping=False"):
        merge_and_split(X, y, None, 0.1, 0)
    with pytest.raises(ValueError, match=r"Too few samples \(n_samples=1\) to hold out"):
        merge_and_split(X[:1], y[:1], None, 0.1, 0)


@pytest.mark.parametrize("n_samples", [2, 9, 10, 11, 57, 1000])
def test_without_copies_or_weights_the_split_holds_out_what_train_test_split_does(n_samples):
    rng = np.random.default_rng(n_samples)
    X, y = rng.random((n_samples, 4)).astype(np.float32), rng.random((n_samples, 2))
    for fraction in (0.1, 0.3):
        X_out, y_out, w_out, n_valid = merge_and_split(X, y, None, fraction, 0)
        expected = len(train_test_split(X, test_size=fraction, random_state=0)[1])
        assert n_valid == expected == math.ceil(fraction * n_samples)
        assert w_out is None  # the unweighted loss, as before
        order = np.argsort(X_out[:, 0])
        np.testing.assert_array_equal(X_out[order], X[np.argsort(X[:, 0])])
        np.testing.assert_array_equal(y_out[order], y[np.argsort(X[:, 0])])


def test_the_split_does_not_depend_on_the_units_of_the_target():
    # Rows are ordered by their features: only rows that share them can change places.
    X, y, *_ = data_with_copies(n_distinct=100)
    X[:40:2], y[:40:2] = X[1:40:2], y[1:40:2] + 1
    X_units, _, _, n_units = merge_and_split(X, y / 100, None, 0.1, 0)
    X_dollars, _, _, n_dollars = merge_and_split(X, y * 1e3 + 5e5, None, 0.1, 0)
    assert n_units == n_dollars
    moved = ~(X_units == X_dollars).all(axis=1)
    shared = (X_units[:, None, :] == X_units[None, :, :]).all(axis=2).sum(axis=1) > 1
    assert shared.any() and not (moved & ~shared).any()


def test_same_random_state_same_split_and_another_one_differs():
    X, y, *_ = data_with_copies(n_distinct=200)
    first = merge_and_split(X, y, None, 0.1, 0)
    for again, expected in zip(merge_and_split(X, y, None, 0.1, 0), first, strict=True):
        np.testing.assert_array_equal(again, expected)
    other = merge_and_split(X, y, None, 0.1, 1)
    assert row_set(other[0][: other[3]], other[1][: other[3]]) != row_set(
        first[0][: first[3]], first[1][: first[3]]
    )
    rng = np.random.RandomState(0)
    assert merge_and_split(X, y, None, 0.1, rng)[3] == first[3]


def test_result_depends_on_the_distinct_rows_and_their_weights_only():
    X, y, X_distinct, y_distinct, counts = data_with_copies()
    from_copies = merge_and_split(X, y, None, 0.1, 3)
    rows = np.random.default_rng(0).permutation(len(X_distinct))
    zeros = np.zeros(len(rows))
    from_weights = merge_and_split(
        np.vstack([X_distinct[rows], X_distinct[:4]]),  # rows of weight zero change nothing
        np.vstack([y_distinct[rows], y_distinct[:4] + 1]),
        np.concatenate([counts[rows], zeros[:4]]).astype(float),
        0.1,
        3,
    )
    for a, b in zip(from_copies, from_weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "shift",
    [
        64 - 14,  # hashes below 2**14: the high bits above the row index tie, few hashes do
        63,  # two hash values: distinct rows collide, and exact comparison tells them apart
    ],
)
def test_hash_ties_and_collisions_keep_the_guarantees(monkeypatch, shift):
    X, y, X_distinct, y_distinct, counts = data_with_copies()
    expected = merge_and_split(X, y, None, 0.1, 0)
    row_hashes = split_module._row_hashes
    monkeypatch.setattr(
        split_module,
        "_row_hashes",
        lambda arrays, seed: [hashes >> np.uint64(shift) for hashes in row_hashes(arrays, seed)],
    )
    X_out, y_out, w_out, n_valid = merge_and_split(X, y, None, 0.1, 0)
    assert row_set(X_out, y_out) == row_set(X_distinct, y_distinct)
    assert not row_set(X_out[:n_valid], y_out[:n_valid]) & row_set(X_out[n_valid:], y_out[n_valid:])
    np.testing.assert_array_equal(np.sort(w_out), np.sort(expected[2]))
    # Still a function of the rows' contents: shuffled copies give the same result.
    rows = np.random.default_rng(1).permutation(len(X))
    for a, b in zip(
        merge_and_split(X[rows], y[rows], None, 0.1, 0), (X_out, y_out, w_out, n_valid), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("container", ["dense", "sparse", "dataframe"])
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_never_validates_on_a_copy_of_a_training_row(monkeypatch, container, weighted):
    X, y, _, _, _ = data_with_copies(n_distinct=40)
    X = X.astype(np.float64)
    X[:, 0] = np.where(X[:, 0] < 0.5, 0.0, X[:, 0])  # zeros for the sparse matrix
    splits = []

    def recording_merge_and_split(*args):
        result = merge_and_split(*args)
        splits.append(result)
        return result

    monkeypatch.setattr(regressor_module, "merge_and_split", recording_merge_and_split)
    X_in = {"dense": X, "sparse": sp.csr_matrix(X), "dataframe": pd.DataFrame(X)}[container]
    weights = np.random.default_rng(0).random(len(X)) if weighted else None
    model = small_model(max_epochs=2).fit(X_in, y.ravel(), sample_weight=weights)
    ((X_out, y_out, _, n_valid),) = splits
    assert not row_set(X_out[:n_valid], y_out[:n_valid]) & row_set(X_out[n_valid:], y_out[n_valid:])
    batches = model.history_[-1]["batches"]
    assert batches[1]["valid_batch_size"] == n_valid
    assert batches[0]["train_batch_size"] + n_valid == 40


@pytest.mark.parametrize("sparse", [False, True])
def test_weight_k_trains_exactly_like_k_copies(sparse):
    X, y, X_distinct, y_distinct, counts = data_with_copies(n_distinct=20)
    weights = np.concatenate([counts, [0, 0]]).astype(float)
    X_weighted = np.vstack([X_distinct, X_distinct[:2] + 1])
    y_weighted = np.concatenate([y_distinct.ravel(), [5.0, 6.0]])
    if sparse:
        X, X_weighted = sp.csr_matrix(X), sp.csr_matrix(X_weighted)
    params = dict(batch_size=16, ensemble_size=2, dropout=0.1)
    copies = small_model(**params).fit(X, y.ravel())
    weighted = small_model(**params).fit(X_weighted, y_weighted, sample_weight=weights)
    np.testing.assert_array_equal(copies.predict(X_distinct), weighted.predict(X_distinct))
    assert copies.loss_curve_ == weighted.loss_curve_


def test_without_copies_fit_trains_on_the_same_rows_and_is_reproducible():
    rng = np.random.default_rng(0)
    X, y = rng.random((50, 3)), rng.random(50)
    model = small_model().fit(X, y)
    batches = model.history_[-1]["batches"]
    assert batches[1]["valid_batch_size"] == 5 and batches[0]["train_batch_size"] == 45
    assert not model.net_.criterion_.weighted
    np.testing.assert_array_equal(small_model().fit(X, y).predict(X), model.predict(X))


def test_without_early_stopping_copies_are_not_merged():
    X, y, *_ = data_with_copies()
    model = small_model(early_stopping=False).fit(X, y.ravel())
    assert model.history_[-1]["batches"][0]["train_batch_size"] == len(X)
    assert not model.net_.criterion_.weighted


@pytest.mark.parametrize(("n_rows", "n_valid", "n_members"), [(50, 5, 4), (7, 1, 7), (10, 4, 3)])
def test_each_member_holds_out_its_own_rows(n_rows, n_valid, n_members):
    held_out = member_holdout(n_rows, n_valid, n_members)
    assert held_out.shape == (n_rows, n_members)
    assert (held_out.sum(axis=0) == n_valid).all()  # every member, the same share
    np.testing.assert_array_equal(np.flatnonzero(held_out[:, 0]), np.arange(n_valid))
    if n_members * n_valid <= n_rows:  # shares apart: each row is left out by one member at most
        assert held_out.sum(axis=1).max() == 1
    else:  # overlapping, as evenly as they fit
        assert held_out.sum(axis=1).max() - held_out.sum(axis=1).min() <= 1


def test_ensemble_members_train_on_every_row_and_validate_on_their_own(monkeypatch):
    # Each member holds out its own rows: the ensemble trains on all of them, and the validation
    # loss is the members' squared error on the rows each held out, from their own predictions.
    splits = []

    def recording_merge_and_split(*args):
        result = merge_and_split(*args)
        splits.append([np.copy(part) if isinstance(part, np.ndarray) else part for part in result])
        return result  # transformed in place by fit: the copies keep the rows as they were

    monkeypatch.setattr(regressor_module, "merge_and_split", recording_merge_and_split)
    rng = np.random.default_rng(0)
    X, y = rng.random((50, 3)), rng.random(50)
    model = small_model(ensemble_size=3, max_epochs=4).fit(X, y)
    ((X_out, y_out, _, n_valid),) = splits
    batches = model.history_[-1]["batches"]
    assert batches[0]["train_batch_size"] == 50 and batches[1]["valid_batch_size"] == 3 * n_valid

    held_out = member_holdout(len(X_out), n_valid, 3)
    module = model.net_.module_.eval()
    with torch.no_grad():
        X_in = torch.as_tensor(model._input_transformer.transform(X_out))
        members = module.member_predictions(X_in).numpy()[..., 0]  # (n_members, n_rows)
    errors = members - model._target_standardizer.transform(y_out).ravel()
    expected = (errors.T**2)[held_out].mean()
    best = model.history_[:, "valid_loss"][model.best_epoch_ - 1]
    np.testing.assert_allclose(best, expected, rtol=1e-4)
