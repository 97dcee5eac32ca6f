"""The summarization protocol at its edges: the inputs and branches the
hand-worked examples of test_summary_eval leave out (one pick, picks
without a score, empty and one-frame segments, ties, other budgets,
records given as dicts or objects)."""

import types

import numpy as np
import pytest

from train.metrics import ranking
from train.metrics import summarization as se


# -- upsampling and shot scores ------------------------------------------------------------


def test_upsampling_edge_cases():
    # One pick covers the whole video.
    assert se.upsample_to_frames([0.5], picks=[0], n_frames=3).tolist() == [0.5, 0.5, 0.5]
    # Picks without a score give 0; frames before the first pick too.
    frames = se.upsample_to_frames([0.7], picks=[1, 3], n_frames=5)
    assert frames.tolist() == [0.0, 0.7, 0.7, 0.0, 0.0]
    # No pick at all: nothing scored.
    assert se.upsample_to_frames([], picks=[], n_frames=3).tolist() == [0.0, 0.0, 0.0]
    # Picks already ending at n_frames, and column vectors.
    ended = se.upsample_to_frames([[0.1], [0.9]], picks=[[0], [2], [4]], n_frames=4)
    assert ended.tolist() == [0.1, 0.1, 0.9, 0.9]


def test_shot_scores_of_one_frame_and_empty_segments():
    frames = np.array([0.2, 0.4, 0.9, 0.1])
    scores = se.shot_scores(frames, [[2, 2], [0, 1], [3, 2]])
    # A one-frame shot is that frame; a segment that ends before it starts scores 0.
    np.testing.assert_allclose(scores, [0.9, 0.3, 0.0])


def test_keyshot_summaries_are_float32_frames():
    summary = se.summary_from_frame_scores(np.arange(20.0), 20, [[0, 9], [10, 19]], [10, 10],
                                           proportion=0.5)
    assert summary.dtype == np.float32 and summary.tolist() == [0.0] * 10 + [1.0] * 10


# -- the knapsack ---------------------------------------------------------------------------


def test_knapsack_refuses_negative_weights_or_capacity():
    with pytest.raises(ValueError, match="^knapsack: weights and capacity must be >= 0$"):
        se.knapsack([1.0, 2.0], [1, -1], 3)
    with pytest.raises(ValueError, match="^knapsack: weights and capacity must be >= 0$"):
        se.knapsack([1.0], [1], -1)


def test_knapsack_keeps_the_earlier_item_among_equal_values():
    # Equal values: a later item is taken only when it strictly improves.
    assert se.knapsack([1.0, 1.0], [1, 1], 1) == [0]
    assert se.knapsack([[0.5], [2.0], [0.5]], [[1], [2], [1]], 2) == [1]


# -- F-score and correlation -----------------------------------------------------------------


def test_fscore_reduces_by_the_mean_by_default():
    machine = [1, 1, 0, 0]
    users = [[1, 1, 0, 0], [0, 0, 1, 1]]
    assert se.summary_fscore(machine, users) == pytest.approx((0.5, 0.5, 0.5))
    assert se.summary_fscore([[1], [1], [0], [0]], users) == pytest.approx((0.5, 0.5, 0.5))


def test_rank_correlations_take_column_vectors():
    assert se.kendall_tau_b([[1], [2], [3]], [1, 3, 2]) == pytest.approx(1 / 3)
    assert se.kendall_tau_b([1, 2, 3], [[1], [3], [2]]) == pytest.approx(1 / 3)
    assert se.spearman_rho([[1], [2], [3]], [1, 3, 2]) == pytest.approx(0.5)
    assert ranking.average_ranks([[3], [1], [3]]).tolist() == [2.5, 1.0, 2.5]


def test_correlation_uses_the_frames_both_have():
    # The prediction is longer than the annotations: its extra frames are left out.
    tau, rho = se.annotator_correlation([[1], [2], [3], [0]], [[1, 2, 3]])
    assert (tau, rho) == pytest.approx((1.0, 1.0))


# -- precision at 15% --------------------------------------------------------------------------


def test_precision_at_takes_one_item_of_few():
    # 10 items: floor(1.5) = 1 item each; the best-scored ones differ.
    reference = np.arange(10.0)
    scores = reference.copy()
    scores[8] = 20.0
    assert se.precision_at(scores, reference) == 0.0
    # Column vectors: the best of the scores is the worst of the reference,
    # or the best of both.
    assert se.precision_at([[0.0], [1.0], [2.0]], [[2.0], [1.0], [0.0]]) == 0.0
    assert se.precision_at([[0.0], [1.0], [2.0]], [[0.0], [1.0], [2.0]]) == 1.0


def test_precision_at_keeps_the_earlier_of_tied_items():
    # 40 items of three values: the 6 best of each are the first six 2.0s
    # whichever the order of the arrays' ties.
    values = np.random.default_rng(0).integers(0, 3, 40).astype(float)
    assert se.precision_at(values, values) == 1.0


# -- one video and many ----------------------------------------------------------------------


def video_record(users=None, user_scores=None):
    """20 frames, a pick every 2 frames, shots of 4, 6 and 10 frames."""
    user_summary = np.zeros((2, 20))
    user_summary[0, 0:4] = 1
    user_summary[1, 4:10] = 1
    return dict(
        picks=np.arange(0, 20, 2), n_frames=20,
        change_points=np.array([[0, 3], [4, 9], [10, 19]]),
        n_frame_per_seg=np.array([4, 6, 10]),
        gtscore=np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.1, 0.5, 0.4, 0.3, 0.2]),
        user_summary=user_summary if users is None else users,
        **({} if user_scores is None else {"user_scores": user_scores}),
    )


def test_evaluate_video_uses_the_budget_it_is_given():
    video = video_record()
    prediction = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.9, 0.1, 0.1, 0.1, 0.1])
    metrics = se.evaluate_video(prediction, proportion=0.3, **video)
    # Budget floor(0.3 * 20) = 6 frames: the 6-frame shot (mean 0.67)
    # beats the 4-frame one (0.15); gtscore's keyshots are the first shot.
    machine = se.keyshot_summary(prediction, video["picks"], 20, video["change_points"],
                                 video["n_frame_per_seg"], proportion=0.3)
    assert np.flatnonzero(machine).tolist() == list(range(4, 10))
    assert metrics["fscore"] == pytest.approx((0.0 + 1.0) / 2)
    # Disjoint keyshots: F1 0 (precision would be 0 too; recall as well).
    assert metrics["f1"] == 0.0
    # Top 15% of 10 picks is 1: pick 3 (0.9) against pick 0.
    assert metrics["precision_at_15"] == 0.0
    assert metrics["precision_at_15"] != se.evaluate_video(prediction, proportion=0.5,
                                                           **video)["precision_at_15"]


def test_evaluate_video_f1_is_the_fscore_of_the_keyshots_against_gtscores():
    video = video_record()
    # Budget 10 frames. Our keyshots: shot 0 alone (shot 1 scores 0 and
    # adds nothing); gtscore's: shots 0 and 1 (0.85 + 0.2 > 0.3 of shot 2).
    prediction = np.array([0.5, 0.5, 0.0, 0.0, 0.0, 0.04, 0.04, 0.04, 0.04, 0.04])
    metrics = se.evaluate_video(prediction, proportion=0.5, **video)
    # Precision 4/4, recall 4/10: F1 = 8/14, not the precision.
    assert metrics["f1"] == pytest.approx(8 / 14)


def test_evaluate_video_mse_and_correlation_against_the_user_summaries():
    video = video_record()
    prediction = video["gtscore"] + np.array([0.1, -0.2, 0, 0, 0, 0, 0, 0, 0, 0.3])
    metrics = se.evaluate_video(prediction, **video)
    assert metrics["mse"] == pytest.approx((0.01 + 0.04 + 0.09) / 10)
    # No annotator scores: tau/rho against each user's binary summary.
    frames = se.upsample_to_frames(prediction, video["picks"], 20)
    expected = np.mean([se.kendall_tau_b(frames, user) for user in video["user_summary"]])
    assert metrics["kendall_tau"] == pytest.approx(expected) and expected != 0


def test_evaluate_video_takes_column_vectors():
    video = video_record()
    prediction = np.linspace(0.0, 1.0, 10)
    columns = dict(video, gtscore=video["gtscore"][:, None])
    flat = se.evaluate_video(prediction, **video)
    assert se.evaluate_video(prediction[:, None], **columns) == pytest.approx(flat)


def record_as_object(record):
    return types.SimpleNamespace(**record)


@pytest.mark.parametrize("make", [dict, record_as_object], ids=["dict", "object"])
def test_evaluate_videos_is_evaluate_video_of_each_record(make):
    rng = np.random.default_rng(3)
    annotated = video_record(user_scores=rng.uniform(size=(3, 20)))
    plain = video_record()
    videos = {"a": make(annotated), "b": make(plain)}
    predictions = {"a": rng.uniform(size=10), "b": rng.uniform(size=10)}
    for reduction in ("avg", "max"):
        mean, per_video = se.evaluate_videos(predictions, videos, reduction=reduction,
                                             proportion=0.3)
        for key, record in (("a", annotated), ("b", plain)):
            fields = {k: v for k, v in record.items() if k != "user_scores"}
            expected = se.evaluate_video(predictions[key], reduction=reduction, proportion=0.3,
                                         annotator_scores=record.get("user_scores"), **fields)
            assert per_video[key] == pytest.approx(expected)
        for name in se.METRICS:
            assert mean[name] == pytest.approx((per_video["a"][name] + per_video["b"][name]) / 2)
    default, _ = se.evaluate_videos(predictions, videos, proportion=0.3)
    assert default == pytest.approx(se.evaluate_videos(predictions, videos, "avg", 0.3)[0])


def test_evaluate_videos_of_nothing_and_of_a_record_without_a_field():
    mean, per_video = se.evaluate_videos({}, {})
    assert per_video == {} and all(np.isnan(mean[name]) for name in se.METRICS)
    record = video_record()
    del record["picks"]
    with pytest.raises(KeyError, match="picks"):
        se.evaluate_videos({"a": np.zeros(10)}, {"a": record})
