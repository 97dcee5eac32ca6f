"""The summarization protocol against hand-worked examples."""

import itertools

import numpy as np
import pytest

from train.metrics import summarization as se


def brute_force_knapsack(values, weights, capacity):
    best, best_set = 0.0, ()
    for size in range(len(values) + 1):
        for subset in itertools.combinations(range(len(values)), size):
            weight = sum(weights[i] for i in subset)
            value = sum(values[i] for i in subset)
            if weight <= capacity and value > best + 1e-12:
                best, best_set = value, subset
    return best, best_set


def brute_force_tau_b(x, y):
    concordant = discordant = tied_x = tied_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            tied_x += sx == 0
            tied_y += sy == 0
            concordant += sx * sy > 0
            discordant += sx * sy < 0
    pairs = n * (n - 1) / 2
    return (concordant - discordant) / np.sqrt((pairs - tied_x) * (pairs - tied_y))


# -- knapsack ---------------------------------------------------------------


def test_knapsack_hand_worked():
    # weights 2+3 fit in 5 with value 7; 5 alone gives 6, 4 alone gives 5.
    assert se.knapsack([3.0, 4.0, 5.0, 6.0], [2, 3, 4, 5], 5) == [0, 1]
    # Capacity 9: weights 2+3+4 give 12, more than 4+5 (11) or 3+5 (10).
    assert se.knapsack([3.0, 4.0, 5.0, 6.0], [2, 3, 4, 5], 9) == [0, 1, 2]
    # Nothing fits.
    assert se.knapsack([1.0, 2.0], [4, 5], 3) == []
    # A heavy valuable item loses to two light ones that fit together.
    assert se.knapsack([0.9, 0.5, 0.5], [10, 5, 5], 10) == [1, 2]


def test_knapsack_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = rng.integers(1, 9)
        values = rng.uniform(0, 1, n)
        weights = rng.integers(1, 12, n)
        capacity = int(rng.integers(0, 30))
        chosen = se.knapsack(values, weights, capacity)
        best, _ = brute_force_knapsack(values, weights, capacity)
        assert sum(weights[i] for i in chosen) <= capacity
        assert sum(values[i] for i in chosen) == pytest.approx(best)


def test_knapsack_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="3 values but 2 weights"):
        se.knapsack([1, 2, 3], [1, 2], 4)


# -- from pick scores to a summary ------------------------------------------


def test_upsample_spreads_each_pick_to_the_next():
    frames = se.upsample_to_frames([0.1, 0.9, 0.2], picks=[0, 3, 5], n_frames=8)
    np.testing.assert_allclose(frames, [0.1, 0.1, 0.1, 0.9, 0.9, 0.2, 0.2, 0.2])


def test_keyshot_summary_hand_worked():
    # Frames 0-4: 0.1, 5-9: 0.9, 10-14: 0.2, 15-19: 0.8.
    picks, scores = [0, 5, 10, 15], [0.1, 0.9, 0.2, 0.8]
    change_points = [[0, 7], [8, 11], [12, 19]]
    lengths = [8, 4, 8]
    frames = se.upsample_to_frames(scores, picks, 20)
    # (5*.1 + 3*.9)/8 = .4, (2*.9 + 2*.2)/4 = .55, (3*.2 + 5*.8)/8 = .575
    np.testing.assert_allclose(se.shot_scores(frames, change_points), [0.4, 0.55, 0.575])
    # Capacity floor(0.5 * 20) = 10: one shot only; the last one is best.
    summary = se.keyshot_summary(scores, picks, 20, change_points, lengths, proportion=0.5)
    np.testing.assert_array_equal(summary, [0] * 12 + [1] * 8)
    # Capacity floor(0.6 * 20) = 12: shots 1 and 2 (0.55 + 0.575) beat 0 and 1.
    summary = se.keyshot_summary(scores, picks, 20, change_points, lengths, proportion=0.6)
    np.testing.assert_array_equal(summary, [0] * 8 + [1] * 12)


def test_default_budget_is_fifteen_percent_rounded_down():
    # 40 frames -> capacity floor(6.0) = 6: the 6-frame shot fits, 7 would not.
    change_points = [[0, 5], [6, 12], [13, 39]]
    lengths = [6, 7, 27]
    frames = np.r_[np.full(6, 0.5), np.full(7, 0.9), np.full(27, 0.1)]
    summary = se.summary_from_frame_scores(frames, 40, change_points, lengths)
    np.testing.assert_array_equal(summary, [1] * 6 + [0] * 34)
    # 39 frames -> capacity floor(5.85) = 5: nothing fits.
    summary = se.summary_from_frame_scores(frames[:39], 39, change_points, [6, 7, 26])
    assert summary.sum() == 0


# -- F-score ------------------------------------------------------------------


MACHINE = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
USERS = [
    [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # overlap 2: P 2/3, R 2/3, F 2/3
    [0, 0, 0, 0, 1, 1, 0, 0, 0, 0],  # overlap 1: P 1/3, R 1/2, F 0.4
]


def test_fscore_average_hand_worked():
    f, p, r = se.summary_fscore(MACHINE, USERS, "avg")
    assert f == pytest.approx((2 / 3 + 0.4) / 2)
    assert p == pytest.approx(0.5)
    assert r == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_fscore_max_takes_the_best_user():
    f, p, r = se.summary_fscore(MACHINE, USERS, "max")
    assert (f, p, r) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_fscore_pads_or_cuts_the_machine_summary_and_handles_empty():
    # A 12-long summary is cut to 10; an empty one scores 0, not NaN.
    f, _, _ = se.summary_fscore(MACHINE + [1, 1], USERS[:1], "avg")
    assert f == pytest.approx(2 / 3)
    f, p, r = se.summary_fscore(np.zeros(10), USERS, "avg")
    assert (f, p, r) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="reduction"):
        se.summary_fscore(MACHINE, USERS, "median")


# -- rank correlation ---------------------------------------------------------


def test_tau_and_rho_hand_worked_without_ties():
    # One swapped pair of 6: C = 5, D = 1 -> tau 4/6; sum d^2 = 2 -> rho 1 - 12/60.
    assert se.kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert se.spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert se.kendall_tau_b([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_tau_of_two_values_is_their_one_pair():
    """Guards the smallest input tau is defined on (n < 2, not n <= 2): two
    values are one pair, concordant or discordant; one value has none."""
    assert se.kendall_tau_b([1, 2], [3, 4]) == 1.0
    assert se.kendall_tau_b([1, 2], [4, 3]) == -1.0
    assert np.isnan(se.kendall_tau_b([1], [1]))


def test_tau_b_and_rho_hand_worked_with_ties():
    x, y = [1, 2, 2, 3], [1, 2, 3, 3]
    # C = 4, D = 0, one tie in x, one in y: 4 / sqrt(5 * 5).
    assert se.kendall_tau_b(x, y) == pytest.approx(0.8)
    # Mid-ranks x: 1, 2.5, 2.5, 4; y: 1, 2, 3.5, 3.5 -> 3.75 / 4.5.
    assert se.spearman_rho(x, y) == pytest.approx(3.75 / 4.5)


def test_tau_b_matches_pairwise_definition_on_tied_data():
    rng = np.random.default_rng(1)
    for n in (2, 3, 17, 64, 101):
        x = rng.integers(0, 5, n).astype(float)
        y = rng.integers(0, 4, n).astype(float) + 0.5 * x
        if len(set(x)) > 1 and len(set(y)) > 1:
            assert se.kendall_tau_b(x, y) == pytest.approx(brute_force_tau_b(x, y))


def test_constant_input_is_undefined_and_counts_zero_per_annotator():
    assert np.isnan(se.kendall_tau_b([1, 1, 1], [1, 2, 3]))
    assert np.isnan(se.spearman_rho([1, 2, 3], [2, 2, 2]))
    tau, rho = se.annotator_correlation([0.5, 0.5, 0.5], [[1, 2, 3], [3, 2, 1]])
    assert (tau, rho) == (0.0, 0.0)


def test_annotator_correlation_averages_over_annotators():
    prediction = [1, 2, 3, 4]
    annotators = [[1, 2, 3, 4], [1, 3, 2, 4]]
    tau, rho = se.annotator_correlation(prediction, annotators)
    assert tau == pytest.approx((1 + 4 / 6) / 2)
    assert rho == pytest.approx((1 + 0.8) / 2)


def test_random_scores_give_tau_near_zero():
    rng = np.random.default_rng(2)
    annotators = rng.integers(1, 6, size=(5, 3000))  # 1..5 like TVSum, many ties
    tau, rho = se.annotator_correlation(rng.uniform(size=3000), annotators)
    assert abs(tau) < 0.03 and abs(rho) < 0.04


def test_precision_at_fifteen_percent():
    reference = np.arange(20, dtype=float)  # top 3 are items 17, 18, 19
    scores = np.zeros(20)
    scores[[19, 18, 0]] = 1.0  # two of the top three
    assert se.precision_at(scores, reference) == pytest.approx(2 / 3)


# -- one video end to end ------------------------------------------------------


def hand_video(users):
    """40 frames, a pick every 4 frames, five shots of 4, 2, 14, 2 and 18
    frames (budget floor(0.15 * 40) = 6 frames), and `users` summaries given
    as lists of frame ranges."""
    user_summary = np.zeros((len(users), 40))
    for row, ranges in enumerate(users):
        for first, last in ranges:
            user_summary[row, first:last + 1] = 1
    return dict(
        picks=np.arange(0, 40, 4), n_frames=40,
        change_points=np.array([[0, 3], [4, 5], [6, 19], [20, 21], [22, 39]]),
        n_frame_per_seg=np.array([4, 2, 14, 2, 18]),
        gtscore=np.array([0.1, 0.9, 0.2, 0.2, 0.2, 0.8, 0.1, 0.1, 0.1, 0.1]),
        user_summary=user_summary,
    )


def test_one_video_end_to_end_hand_worked():
    # Shot scores from the picks spread over 4 frames each: 0.1, 0.9,
    # (2 x 0.9 + 12 x 0.2) / 14 = 0.3, 0.8, (2 x 0.8 + 16 x 0.1) / 18 = 0.178.
    # Within 6 frames the best set is shots 1 and 3 (value 1.7, 4 frames):
    # frames 4-5 and 20-21.
    video = hand_video([[(4, 5), (20, 21)], [(0, 5)]])
    machine = se.keyshot_summary(video["gtscore"], video["picks"], 40, video["change_points"],
                                 video["n_frame_per_seg"])
    assert np.flatnonzero(machine).tolist() == [4, 5, 20, 21]
    # User 1 chose exactly those frames (F 1); user 2 chose frames 0-5:
    # overlap 2, precision 2/4, recall 2/6, F = 2 * (1/2 * 1/3) / (5/6) = 0.4.
    annotators = np.stack([np.repeat(video["gtscore"], 4), np.arange(40.0)])
    metrics = se.evaluate_video(video["gtscore"], annotator_scores=annotators, **video)
    assert metrics["fscore"] == pytest.approx((1.0 + 0.4) / 2)
    assert metrics["precision"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["recall"] == pytest.approx((1.0 + 1 / 3) / 2)
    best = se.evaluate_video(video["gtscore"], reduction="max", **video)
    assert (best["fscore"], best["precision"], best["recall"]) == pytest.approx((1.0, 1.0, 1.0))
    # Against its own spread-out scores the prediction ranks perfectly (1);
    # against frame order, by brute force over the pairs.
    upsampled = np.repeat(video["gtscore"], 4)
    assert metrics["kendall_tau"] == pytest.approx(
        (1.0 + brute_force_tau_b(upsampled, np.arange(40.0))) / 2)
    assert metrics["gt_kendall_tau"] == pytest.approx(1.0) and metrics["mse"] == 0.0
    # Top 15% of 10 picks is 1 pick: pick 1 for both.
    assert metrics["precision_at_15"] == 1.0
    assert metrics["f1"] == pytest.approx(1.0)  # the same keyshots as gtscore's


def test_random_predictions_score_low_on_one_split():
    """Users pick whole shots at random up to 15% of the frames; random
    predictions then agree with them about as often as chance."""
    rng = np.random.default_rng(4)
    videos = {}
    for index in range(4):
        n_frames, step = 600, 3
        bounds = np.r_[0, np.sort(rng.choice(np.arange(5, n_frames - 5), 29, replace=False)), n_frames]
        lengths = np.diff(bounds)
        users = np.zeros((5, n_frames))
        for row in users:
            filled = 0
            for shot in rng.permutation(len(lengths)):
                if filled + lengths[shot] <= 0.15 * n_frames:
                    row[bounds[shot]:bounds[shot + 1]] = 1
                    filled += lengths[shot]
        picks = np.arange(0, n_frames, step)
        videos[f"video_{index}"] = dict(
            picks=picks, n_frames=n_frames,
            change_points=np.stack([bounds[:-1], bounds[1:] - 1], axis=1), n_frame_per_seg=lengths,
            gtscore=rng.uniform(size=picks.size), user_summary=users,
            user_scores=rng.uniform(size=(5, n_frames)),
        )
    predictions = {key: rng.uniform(size=v["gtscore"].size) for key, v in videos.items()}
    mean, per_video = se.evaluate_videos(predictions, videos, reduction="avg")
    assert sorted(per_video) == sorted(videos)
    assert abs(mean["kendall_tau"]) < 0.1 and abs(mean["gt_kendall_tau"]) < 0.1
    # Two random 15% selections share about 15% of their frames.
    assert mean["fscore"] < 0.35 and mean["recall"] < 0.35


def test_prediction_length_must_match_picks():
    video = hand_video([[(4, 5)]])
    with pytest.raises(ValueError, match="3 predicted scores for a video with 10 picks"):
        se.evaluate_video(np.zeros(3), **video)
