"""Rank correlation with ties: Spearman's rho and Kendall's tau-b.

Both return NaN when either input is constant (there is no ranking to
compare); callers decide what an undefined coefficient means (the
summarization protocol counts it as 0, the int8 export gate skips the
video).

Example:

>>> round(spearman_rho([0.1, 0.4, 0.3, 0.9], [0.2, 0.5, 0.5, 0.7]), 4)
0.9487
>>> average_ranks([0.5, 0.1, 0.5, 0.9]).tolist()
[2.5, 1.0, 2.5, 4.0]
>>> round(kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]), 4)
0.6667
"""

import math

import numpy as np


def average_ranks(values):
    """1-based ranks where tied values share the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    return (last - (counts - 1) / 2.0)[inverse]


def spearman_rho(x, y):
    """Spearman's rho: Pearson correlation of the average ranks.

    Ties get the mean rank of their group, which is the tie-corrected rho.
    Returns NaN when either input is constant (no ranking to compare).
    """
    x, y = _paired(x, y)
    return _pearson(average_ranks(x), average_ranks(y))


def kendall_tau_b(x, y):
    """Kendall's tau-b, with ties, in O(n log^2 n).

    tau_b = (C - D) / sqrt((n0 - n1) (n0 - n2)), where C and D count the
    concordant and discordant pairs, n0 = n (n - 1) / 2, and n1, n2 the
    pairs tied in x and in y. Returns NaN when either input is constant.
    """
    x, y = _paired(x, y)
    n = x.size
    if n < 2:
        return float("nan")
    rank_x = np.unique(x, return_inverse=True)[1].astype(np.int64)
    rank_y = np.unique(y, return_inverse=True)[1].astype(np.int64)
    pairs = n * (n - 1) / 2.0
    tied_x = _tied_pairs(rank_x)
    tied_y = _tied_pairs(rank_y)
    tied_both = _tied_pairs(rank_x * (rank_y.max() + 1) + rank_y)
    if tied_x == pairs or tied_y == pairs:
        return float("nan")
    # Ordered by x (and by y within ties of x), a discordant pair is exactly
    # an inversion of y: an earlier y strictly larger than a later one.
    order = np.lexsort((rank_y, rank_x))
    discordant = float(_count_inversions(rank_y[order]))
    concordant = pairs - tied_x - tied_y + tied_both - discordant
    return float((concordant - discordant) / math.sqrt((pairs - tied_x) * (pairs - tied_y)))


def _paired(x, y):
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"rank correlation needs equal lengths, got {x.size} and {y.size}")
    return x, y


def _pearson(x, y):
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    if denominator == 0.0:
        return float("nan")
    return float((dx * dy).sum() / denominator)


def _tied_pairs(ranks):
    counts = np.unique(ranks, return_counts=True)[1].astype(np.float64)
    return float((counts * (counts - 1) / 2.0).sum())


def _count_inversions(values):
    """Pairs i < j with values[i] > values[j], by a bottom-up merge sort.

    Every level merges all pairs of sorted blocks at once: the number of
    left-block elements greater than each right-block element comes from
    one `searchsorted` over the left blocks laid end to end (each shifted
    by its block number so the concatenation stays sorted).
    """
    values = np.asarray(values, dtype=np.int64)
    n = values.size
    if n < 2:
        return 0
    size = 1 << (n - 1).bit_length()
    top = int(values.max()) + 1
    # Padding goes last and is larger than every value: it adds no inversion.
    merged = np.concatenate([values, np.full(size - n, top, dtype=np.int64)])
    stride = top + 2
    inversions = 0
    width = 1
    while width < size:
        blocks = merged.reshape(-1, 2, width)
        shift = (np.arange(blocks.shape[0], dtype=np.int64) * stride)[:, None]
        left = (blocks[:, 0, :] + shift).reshape(-1)
        right = (blocks[:, 1, :] + shift).reshape(-1)
        start = np.repeat(np.arange(blocks.shape[0], dtype=np.int64) * width, width)
        not_greater = np.searchsorted(left, right, side="right") - start
        inversions += int((width - not_greater).sum())
        merged = np.sort(blocks.reshape(-1, 2 * width), axis=1).reshape(-1)
        width *= 2
    return inversions
