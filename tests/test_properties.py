"""Properties checked against a brute force or an independent oracle, on
inputs drawn by hypothesis (few examples each: the suite stays fast).

- the knapsack against exhaustive search over every subset;
- F-scores: bounds, symmetry, the mean and the maximum over users;
- Kendall's tau-b and Spearman's rho against scipy, and their symmetry;
- KTS on piecewise-constant sequences finds exactly their change points;
- the temporal scales' lengths against their rule.
"""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from data import features, shots
from train.metrics import ranking
from train.metrics import summarization as se

# Derandomized: every run checks the same examples.
FEW = settings(max_examples=40, deadline=None, derandomize=True, database=None)


# -- the knapsack ---------------------------------------------------------------------


@FEW
@given(items=st.lists(st.tuples(st.integers(0, 100), st.integers(0, 12)), max_size=8),
       capacity=st.integers(0, 30))
def test_knapsack_is_as_good_as_every_subset(items, capacity):
    values = [value / 100 for value, _ in items]
    weights = [weight for _, weight in items]
    chosen = se.knapsack(values, weights, capacity)
    assert chosen == sorted(set(chosen)) and all(0 <= i < len(items) for i in chosen)
    assert sum(weights[i] for i in chosen) <= capacity
    best = max(
        sum(values[i] for i in subset)
        for size in range(len(items) + 1)
        for subset in itertools.combinations(range(len(items)), size)
        if sum(weights[i] for i in subset) <= capacity
    )
    assert abs(sum(values[i] for i in chosen) - best) < 1e-9


# -- F-scores ---------------------------------------------------------------------------


summaries = st.integers(4, 30).flatmap(
    lambda n: st.tuples(st.lists(st.booleans(), min_size=n, max_size=n),
                        st.lists(st.lists(st.booleans(), min_size=n, max_size=n),
                                 min_size=1, max_size=6)))


@FEW
@given(summaries)
def test_fscore_bounds_symmetry_and_reductions(drawn):
    machine, users = np.array(drawn[0]), np.array(drawn[1])
    per_user = [se.summary_fscore(machine, user, "avg") for user in users]
    for (f, p, r), user in zip(per_user, users):
        assert 0.0 <= f <= 1.0 and 0.0 <= p <= 1.0 and 0.0 <= r <= 1.0
        # Swapping the two summaries swaps precision and recall.
        assert se.summary_fscore(user, machine, "avg") == (f, r, p)
        assert (f == 1.0) == (machine.any() and np.array_equal(machine, user))
        assert min(p, r) - 1e-12 <= f <= max(p, r) + 1e-12
    f_avg, p_avg, r_avg = se.summary_fscore(machine, users, "avg")
    assert np.isclose(f_avg, np.mean([f for f, _, _ in per_user]))
    assert np.isclose(p_avg, np.mean([p for _, p, _ in per_user]))
    assert np.isclose(r_avg, np.mean([r for _, _, r in per_user]))
    best = max(per_user, key=lambda fpr: fpr[0])
    assert se.summary_fscore(machine, users, "max")[0] == best[0]
    assert f_avg <= best[0] + 1e-12


# -- rank correlation ---------------------------------------------------------------------


paired = st.integers(2, 25).flatmap(
    lambda n: st.tuples(st.lists(st.integers(0, 4), min_size=n, max_size=n),
                        st.lists(st.integers(0, 6), min_size=n, max_size=n)))


@FEW
@given(paired)
def test_tau_b_and_rho_agree_with_scipy(pair):
    x, y = (np.array(values, float) for values in pair)
    tau, rho = se.kendall_tau_b(x, y), se.spearman_rho(x, y)
    if len(set(x)) < 2 or len(set(y)) < 2:
        assert np.isnan(tau) and np.isnan(rho)
        return
    assert np.isclose(tau, stats.kendalltau(x, y, variant="b").statistic, atol=1e-12)
    assert np.isclose(rho, stats.spearmanr(x, y).statistic, atol=1e-12)
    assert np.isclose(tau, se.kendall_tau_b(y, x), atol=1e-12)
    assert np.isclose(se.kendall_tau_b(x, -y), -tau, atol=1e-12)
    np.testing.assert_allclose(ranking.average_ranks(x), stats.rankdata(x, method="average"))


# -- KTS on piecewise-constant sequences ------------------------------------------------------


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(segments=st.lists(st.tuples(st.integers(5, 10), st.integers(0, 5)), min_size=1,
                         max_size=5))
def test_kts_finds_the_change_points_of_a_piecewise_constant_sequence(segments):
    # Each segment repeats one of six orthonormal rows; neighbours differ.
    rows, previous = [], None
    for length, direction in segments:
        if direction == previous:
            direction = (direction + 1) % 6
        rows.append(np.repeat(np.eye(6)[direction][None], length, axis=0))
        previous = direction
    sequence = np.concatenate(rows)
    starts = np.cumsum([len(block) for block in rows])[:-1].tolist()
    assert shots.kts_change_points(sequence) == starts


@FEW
@given(starts=st.lists(st.integers(1, 29), max_size=6, unique=True).map(sorted),
       step=st.integers(1, 5), tail=st.integers(0, 4))
def test_shots_cover_every_frame_once(starts, step, tail):
    picks = np.arange(30) * step
    n_frames = int(picks[-1]) + 1 + tail
    change_points, lengths = shots.shots_from_change_points(starts, picks, n_frames)
    assert change_points[0, 0] == 0 and change_points[-1, 1] == n_frames - 1
    assert (change_points[1:, 0] == change_points[:-1, 1] + 1).all()
    assert change_points[1:, 0].tolist() == [int(picks[s]) for s in starts]
    assert (lengths == change_points[:, 1] - change_points[:, 0] + 1).all()
    assert lengths.sum() == n_frames


# -- temporal scales --------------------------------------------------------------------------


@FEW
@given(num_frames=st.integers(1, 2000))
def test_scale_lengths_follow_their_rule(num_frames):
    lengths = features.scale_lengths(num_frames)
    assert len(lengths) == len(features.SCALES) and lengths[0] == num_frames
    for length, scale in zip(lengths[1:], features.SCALES[1:]):
        exact = num_frames * scale
        # Truncated (never rounded up), and never under five frames.
        assert length >= 5 and length <= max(5, exact)
        assert length == 5 or exact - length < 1
    assert features.scale_lengths(num_frames, multi_scale=False) == [num_frames]
    assert lengths[1] <= lengths[0] <= lengths[2] or num_frames < 6
    bigger = features.scale_lengths(num_frames + 1)
    assert all(b >= a for a, b in zip(lengths, bigger))
