"""Identical rows merged into one weighted row, and the early-stopping split between whole rows.

A row repeated k times and the same row with weight k become the same training data, and
copies of a row cannot fall on both sides of the validation split.
"""

import numpy as np
from sklearn.utils import check_random_state

# Rows hashed at a time: a chunk's words and hashes stay in the CPU's cache.
_CHUNK_ROWS = 16_384

# Odd 64-bit constants: the golden-ratio multiplier and MurmurHash3's finalizer.
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_FINALIZER = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def merge_and_split(X, y, sample_weight, validation_fraction, random_state):
    """Merge identical rows, weighted by their count, and hold out whole rows for validation.

    Rows with the same features and the same target are identical, whatever their
    weights: they become one row whose weight is the sum of theirs (their count
    when unweighted), and rows of total weight zero are dropped. The merged rows
    are ordered by a hash of their features' bytes seeded from ``random_state``
    (rows with the same features by a hash of the whole row), so the order is
    random yet depends only on the rows, not on where or how often they appear,
    and not on the units of the target.
    The validation rows are then the first rows in that order until their weight
    reaches ``validation_fraction`` of the total; a row heavier than that share is
    kept for training unless no row is lighter. The share held out therefore
    exceeds ``validation_fraction`` by less than one row's weight, and without
    duplicates or weights it is ``ceil(validation_fraction * n_samples)`` rows, as
    with :func:`~sklearn.model_selection.train_test_split`.

    Because the result depends only on the set of distinct rows and their total
    weights, fitting on a row repeated k times and on that row with weight k
    receives identical data, bit for bit, and trains identically.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Dense inputs, C-ordered.
    y : ndarray of shape (n_samples, n_outputs)
        Targets.
    sample_weight : ndarray of shape (n_samples,) or None
        Non-negative weights, not all zero; None weighs every row 1.
    validation_fraction : float in (0, 1)
        Share of the total weight to hold out.
    random_state : int, RandomState instance or None
        Seeds the hash, hence the order of the rows and the split.

    Returns
    -------
    X : ndarray of shape (n_rows, n_features)
        The distinct rows, a new array: the validation rows first, then the
        training rows.
    y : ndarray of shape (n_rows, n_outputs)
        Their targets, in the same order.
    sample_weight : ndarray of shape (n_rows,) or None
        Their total weights divided by the largest; None when unweighted and no
        row repeats.
    n_valid : int
        Number of validation rows, at the start.

    Raises
    ------
    ValueError
        When holding out ``validation_fraction`` would leave no row to train on,
        such as with a single (distinct) row.
    """
    n_samples = len(X)
    rng = check_random_state(random_state)
    seed = rng.randint(0, 2**64, dtype=np.uint64)
    feature_hashes, row_hashes = _row_hashes((X, y), seed)
    order, starts, (X, y) = _group_identical_rows((X, y), feature_hashes, row_hashes)
    repeated = len(starts) < n_samples
    if sample_weight is not None:
        weights = (
            np.add.reduceat(sample_weight[order], starts) if repeated else sample_weight[order]
        )
    else:
        # None: the loss stays unweighted when no row repeats.
        weights = np.diff(starts, append=n_samples).astype(np.float64) if repeated else None
    rows = None  # the merged rows to keep, in their new order; None keeps them all as they are
    if weights is not None and not weights.all():
        rows = np.flatnonzero(weights)
        weights = weights[rows]
    n_rows = len(starts) if rows is None else len(rows)

    held_out = _held_out(np.ones(n_rows) if weights is None else weights, validation_fraction)
    n_valid = int(np.count_nonzero(held_out))
    if n_valid == n_rows:
        distinct = f", of which {n_rows} distinct" if n_rows < n_samples else ""
        raise ValueError(
            f"Too few samples (n_samples={n_samples}{distinct}) to hold out "
            f"validation_fraction={validation_fraction} of them for early "
            "stopping and train on the rest. Pass more samples, change "
            "validation_fraction, or set early_stopping=False."
        )
    if not held_out[:n_valid].all():  # a heavy row was skipped: validation rows first
        first = np.concatenate([np.flatnonzero(held_out), np.flatnonzero(~held_out)])
        rows = first if rows is None else rows[first]
        weights = None if weights is None else weights[first]
    if rows is not None:
        X, y = np.take(X, rows, axis=0), np.take(y, rows, axis=0)
    return X, y, (None if weights is None else weights / weights.max()), n_valid


def member_holdout(n_rows, n_valid, n_members):
    """Which rows each member of an ensemble holds out for validation.

    Member 0 holds out the first ``n_valid`` rows, the validation rows of
    :func:`merge_and_split`; member ``m`` the ``n_valid`` rows that start at row
    ``round(m * n_rows / n_members)``, wrapping around. The rows are in random
    order, so every member validates on a random share of the size chosen, and
    the shares do not overlap while ``n_members * n_valid <= n_rows``: each row is
    then trained on by all members but at most one, and the ensemble as a whole
    learns from every row.

    Parameters
    ----------
    n_rows : int
        Number of rows, in :func:`merge_and_split`'s order.
    n_valid : int
        Number of rows each member holds out, less than ``n_rows``.
    n_members : int

    Returns
    -------
    ndarray of shape (n_rows, n_members), bool
        True where the member (column) holds the row out.
    """
    starts = np.rint(np.arange(n_members) * n_rows / n_members).astype(np.int64)
    # A row's position after each member's start, wrapped around the end.
    offsets = (np.arange(n_rows)[:, None] - starts) % n_rows
    return offsets < n_valid


def _held_out(weights, validation_fraction):
    """Mask of the rows to validate on, from the first in order until their weight is the share."""
    target = validation_fraction * weights.sum()
    # A row heavier than the whole share would overshoot it by more than the share itself.
    eligible = weights <= max(target, weights.min())
    # Only eligible rows add weight, so the first position reaching the target is one of them.
    reached = np.searchsorted(np.cumsum(np.where(eligible, weights, 0.0)), target)
    return eligible & (np.arange(len(weights)) <= reached)


def _row_hashes(arrays, seed):
    """64-bit hashes of each row of the arrays side by side, seeded by ``seed``.

    Each row is read as 64-bit words (its bytes, -0.0 written as 0.0 so that rows
    comparing equal hash equally; each array's words padded to a multiple of 8
    bytes), and every word enters with a xor, a multiply by an odd constant and a
    xor-shift: each step is invertible, so rows differing in one word never
    collide. MurmurHash3's finalizer then spreads every bit over the whole hash,
    which makes the order of sorted hashes a random permutation.

    Returns
    -------
    list of ndarray of shape (n_samples,), uint64
        One per array: the hash of the row's part in that array and the arrays
        before it.
    """
    n_samples = len(arrays[0])
    widths = [array.shape[1] * array.dtype.itemsize // 4 for array in arrays]
    offsets = np.cumsum([0] + [width + width % 2 for width in widths])
    chunk_rows = min(_CHUNK_ROWS, n_samples)
    words = np.zeros((chunk_rows, offsets[-1]), dtype=np.uint32)  # padding words stay 0
    scratch = np.empty((2, chunk_rows), dtype=np.uint64)
    hashes = [np.empty(n_samples, dtype=np.uint64) for _ in arrays]
    for start in range(0, n_samples, chunk_rows):
        rows = slice(start, start + chunk_rows)
        chunk = words[: len(hashes[0][rows])]
        state, shifted = scratch[0, : len(chunk)], scratch[1, : len(chunk)]
        state[:] = seed
        for array, width, offset, prefix_hashes in zip(
            arrays, widths, offsets, hashes, strict=False
        ):
            np.add(array[rows], 0, out=chunk[:, offset : offset + width].view(array.dtype))
            for column in chunk[:, offset : offset + width + width % 2].view(np.uint64).T:
                state ^= column
                state *= _MULTIPLIER
                np.right_shift(state, np.uint64(31), out=shifted)
                state ^= shifted
            finished = prefix_hashes[rows]
            finished[:] = state
            for multiplier in _FINALIZER:
                np.right_shift(finished, np.uint64(33), out=shifted)
                finished ^= shifted
                finished *= multiplier
            np.right_shift(finished, np.uint64(33), out=shifted)
            finished ^= shifted
    return hashes


def _group_identical_rows(arrays, feature_hashes, row_hashes):
    """Put identical rows together, in a random order fixed by the rows, and gather one of each.

    Rows are ordered by ``feature_hashes``, and rows whose features hash alike by
    ``row_hashes``: which rows are held out then depends on the target only among
    rows with the same features.

    Returns
    -------
    order : ndarray of shape (n_samples,)
        Row indices, identical rows next to each other.
    starts : ndarray of shape (n_groups,)
        Position in ``order`` of each group's first row.
    distinct : list of ndarray
        The first row of each group of each array, a new array: ``array[order[starts]]``.
    """
    n_samples = len(row_hashes)
    # Sorting the hashes with the row index in their low bits, then reading the index back,
    # is several times faster than np.argsort (with the rows' order among equal high bits
    # left to be fixed below).
    index_bits = np.uint64(max(1, (n_samples - 1).bit_length()))
    index_mask = (np.uint64(1) << index_bits) - np.uint64(1)
    keys = np.sort((feature_hashes & ~index_mask) | np.arange(n_samples, dtype=np.uint64))
    order = (keys & index_mask).astype(np.intp)
    high_bits = keys >> index_bits
    same_features = high_bits[1:] == high_bits[:-1]  # at least the hash's high bits
    same_row = same_features
    if same_features.any():
        sorted_row_hashes = row_hashes[order]
        same_row = same_features & (sorted_row_hashes[1:] == sorted_row_hashes[:-1])
        if (same_features & ~same_row).any():
            if not _order_runs_by_row_hash(order, sorted_row_hashes, same_features, index_bits):
                return _group_rows_exactly(arrays, feature_hashes)
            same_row = same_features & (sorted_row_hashes[1:] == sorted_row_hashes[:-1])
    grouped = _identical_neighbours(arrays, order, same_row)
    if grouped is None:
        return _group_rows_exactly(arrays, feature_hashes)
    return (order, *grouped)


def _order_runs_by_row_hash(order, sorted_row_hashes, same_features, index_bits):
    """Sort (in place) each run of equal feature hashes that holds different rows by row hash.

    The sort key is the run's number in the high bits and the row hash's high bits
    below it. Returns False if two different row hashes share a key, whose order
    would then depend on the rows' positions.
    """
    run = np.concatenate([[0], np.cumsum(~same_features)])
    mixed = np.zeros(run[-1] + 1, dtype=bool)
    mixed[run[1:][same_features & (sorted_row_hashes[1:] != sorted_row_hashes[:-1])]] = True
    positions = np.flatnonzero(mixed[run])
    key = (run[positions].astype(np.uint64) << (np.uint64(64) - index_bits)) | (
        sorted_row_hashes[positions] >> index_bits
    )
    resorted = np.argsort(key)
    key, positions_resorted = key[resorted], positions[resorted]
    hashes = sorted_row_hashes[positions_resorted]
    if ((key[1:] == key[:-1]) & (hashes[1:] != hashes[:-1])).any():
        return False
    order[positions] = order[positions_resorted]
    sorted_row_hashes[positions] = hashes
    return True


def _group_rows_exactly(arrays, feature_hashes):
    """The grouping of :func:`_group_identical_rows` from the rows' bytes, for hash collisions.

    Two different rows with the same 64-bit hash have about one chance in 10^7 with
    10^6 rows: number the distinct rows exactly, and sort by feature hash, then by
    that number.
    """
    identity = np.unique(_row_bytes(arrays), return_inverse=True)[1].ravel()
    order = np.lexsort((identity, feature_hashes))
    sorted_identity = identity[order]
    return (
        order,
        *_identical_neighbours(arrays, order, sorted_identity[1:] == sorted_identity[:-1]),
    )


def _identical_neighbours(arrays, order, same_key):
    """Group starts and first rows if every row with its predecessor's key equals it, else None.

    ``same_key[i]`` tells whether the row at position ``i + 1`` of ``order`` has the
    same key as the row before it.
    """
    # np.take gathers rows several times faster than fancy indexing.
    repeats = np.flatnonzero(same_key) + 1
    if not len(repeats):
        return np.arange(len(order)), [np.take(array, order, axis=0) for array in arrays]
    is_start = np.ones(len(order), dtype=bool)
    is_start[repeats] = False
    starts = np.flatnonzero(is_start)
    # The groups' first rows are gathered once, and each later row is compared with its
    # group's, read in order.
    distinct = [np.take(array, order[starts], axis=0) for array in arrays]
    group = np.cumsum(is_start)[repeats] - 1
    for array, first_rows in zip(arrays, distinct, strict=True):
        later = np.take(array, order[repeats], axis=0)
        if not np.array_equal(later, np.take(first_rows, group, axis=0)):
            return None
    return starts, distinct


def _row_bytes(arrays):
    """Each row of the arrays side by side as one opaque value, with -0.0 written as 0.0."""
    row = np.concatenate(
        [np.ascontiguousarray(array + 0).view(np.uint8) for array in arrays], axis=1
    )
    return np.ascontiguousarray(row).view(np.dtype((np.void, row.shape[1]))).ravel()
