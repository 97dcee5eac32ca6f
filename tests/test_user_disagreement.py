"""Users that disagree: the embedded annotators, and the reductions over
users and annotators on inputs where the mean, the median and the maximum
differ (with identical users every reduction gives the same number)."""

import itertools

import numpy as np
import pytest

from data import summarization as sm
from train.metrics import ranking
from train.metrics import summarization as se


@pytest.fixture(scope="module")
def embedded():
    return sm.synthetic_summary_records(10, seed=0, feature_dim=8)


def pairwise_fscore(machine, user):
    """F-score of two binary summaries, from the pair counts."""
    machine, user = np.asarray(machine) > 0, np.asarray(user) > 0
    overlap = (machine & user).sum()
    if overlap == 0:
        return 0.0
    precision, recall = overlap / machine.sum(), overlap / user.sum()
    return 2 * precision * recall / (precision + recall)


def pairwise_tau(x, y):
    """Kendall's tau-b from its definition over all pairs."""
    sx = np.sign(np.subtract.outer(x, x))[np.triu_indices(len(x), 1)]
    sy = np.sign(np.subtract.outer(y, y))[np.triu_indices(len(y), 1)]
    return (sx * sy).sum() / np.sqrt((sx != 0).sum() * (sy != 0).sum())


def user_fscores(video, pick_scores):
    machine = se.keyshot_summary(pick_scores, video.picks, video.n_frames, video.change_points,
                                 video.n_frame_per_seg)
    return np.array([pairwise_fscore(machine, user) for user in video.user_summary])


def greedy(scores, change_points, lengths, budget):
    """Whole shots by decreasing mean score while they fit."""
    means = [scores[a:b + 1].mean() for a, b in change_points]
    chosen, used = np.zeros(int(np.sum(lengths))), 0
    for shot in np.argsort(means)[::-1]:
        if used + lengths[shot] <= budget:
            chosen[change_points[shot][0]:change_points[shot][1] + 1] = 1
            used += lengths[shot]
    return chosen


# -- the embedded annotators -------------------------------------------------


def test_embedded_users_disagree_about_as_much_as_tvsum_annotators(embedded):
    taus = [pairwise_tau(a, b) for video in embedded.values()
            for a, b in itertools.combinations(video.user_scores, 2)]
    # TVSum's annotators: 0.177. Identical users would give 1.
    assert 0.12 < np.mean(taus) < 0.25
    distinct = [len({row.tobytes() for row in video.user_summary}) for video in embedded.values()]
    assert sum(count == 1 for count in distinct) <= 2 and max(distinct) >= 4


def test_each_user_summarises_their_own_scores(embedded):
    for video in embedded.values():
        budget = int(0.15 * video.n_frames)
        assert video.user_scores.shape == video.user_summary.shape == (5, video.n_frames)
        own = [greedy(row, video.change_points, video.n_frame_per_seg, budget)
               for row in video.user_scores]
        np.testing.assert_array_equal(video.user_summary, own)
        # The scores spread around the importance: their mean over many
        # frames and users is close to it, one user's frame is not.
        importance = np.repeat(video.gtscore, 2)[:video.n_frames]
        residual = video.user_scores - importance
        assert abs(residual.mean()) < 0.3 and residual.std() > 0.3


def test_embedded_users_are_the_same_for_a_seed_and_leave_the_videos_alone():
    first = sm.synthetic_summary_records(3, seed=5, feature_dim=8, frames=(30, 40))
    again = sm.synthetic_summary_records(3, seed=5, feature_dim=8, frames=(30, 40))
    fewer = sm.synthetic_summary_records(3, seed=5, feature_dim=8, frames=(30, 40), num_users=2)
    other = sm.synthetic_summary_records(3, seed=6, feature_dim=8, frames=(30, 40))
    for key, video in first.items():
        np.testing.assert_array_equal(video.user_scores, again[key].user_scores)
        np.testing.assert_array_equal(video.user_summary, again[key].user_summary)
        # The users' draws do not move the shots or the features.
        np.testing.assert_array_equal(video.change_points, fewer[key].change_points)
        np.testing.assert_array_equal(video.features, fewer[key].features)
        assert fewer[key].user_scores.shape[0] == 2
    assert not np.array_equal(first["video_1"].user_scores[:, :30],
                              other["video_1"].user_scores[:, :30])


# -- reductions over users that disagree --------------------------------------


def test_tvsum_fscore_is_the_mean_over_users_that_disagree(embedded):
    not_median = not_max = 0
    for video in embedded.values():
        per_user = user_fscores(video, video.gtscore)
        metrics = se.evaluate_video(video.gtscore, picks=video.picks, n_frames=video.n_frames,
                                    change_points=video.change_points,
                                    n_frame_per_seg=video.n_frame_per_seg,
                                    user_summary=video.user_summary, gtscore=video.gtscore,
                                    reduction="avg")
        assert metrics["fscore"] == pytest.approx(per_user.mean(), abs=1e-12)
        not_median += not np.isclose(per_user.mean(), np.median(per_user))
        not_max += not np.isclose(per_user.mean(), per_user.max())
    # The check above tells the mean from the median and from the maximum
    # (each differs from it on 8 of the 10 videos).
    assert not_median >= 5 and not_max >= 5


def test_summe_fscore_is_the_best_matching_user(embedded):
    for video in embedded.values():
        per_user = user_fscores(video, video.gtscore)
        metrics = se.evaluate_video(
            video.gtscore, picks=video.picks, n_frames=video.n_frames,
            change_points=video.change_points, n_frame_per_seg=video.n_frame_per_seg,
            user_summary=video.user_summary, gtscore=video.gtscore, reduction="max",
        )
        assert metrics["fscore"] == pytest.approx(per_user.max(), abs=1e-12)


def test_embedded_correlation_is_the_mean_over_annotators(embedded):
    differ = 0
    for video in embedded.values():
        frame_scores = se.upsample_to_frames(video.gtscore, video.picks, video.n_frames)
        taus = np.array([pairwise_tau(frame_scores, row) for row in video.user_scores])
        tau, _ = se.annotator_correlation(frame_scores, video.user_scores)
        assert tau == pytest.approx(taus.mean(), abs=1e-9)
        differ += not np.isclose(taus.mean(), np.median(taus))
    assert differ >= 8


# Five users of a 10-frame video, chosen so that the per-user F-scores of
# MACHINE are 1, 2/3, 0.4, 0 and 0: mean 0.4133, median 0.4, maximum 1.
MACHINE = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
USERS = [
    [1, 1, 0, 0, 1, 0, 0, 0, 0, 0],  # the same frames: P 1, R 1, F 1
    [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # overlap 2: P 2/3, R 2/3, F 2/3
    [0, 0, 0, 0, 1, 1, 0, 0, 0, 0],  # overlap 1: P 1/3, R 1/2, F 0.4
    [0, 0, 0, 0, 0, 0, 1, 1, 0, 0],  # no overlap: F 0
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1],  # no overlap: F 0
]


def test_average_over_five_users_hand_worked():
    f, p, r = se.summary_fscore(MACHINE, USERS, "avg")
    assert f == pytest.approx((1 + 2 / 3 + 0.4) / 5)
    assert p == pytest.approx((1 + 2 / 3 + 1 / 3) / 5)
    assert r == pytest.approx((1 + 2 / 3 + 1 / 2) / 5)


def test_maximum_over_five_users_takes_one_users_precision_and_recall():
    # The best user is listed second: the maximum is found, not the first.
    order = [1, 0, 2, 3, 4]
    f, p, r = se.summary_fscore(MACHINE, [USERS[i] for i in order], "max")
    assert (f, p, r) == pytest.approx((1.0, 1.0, 1.0))
    # Without the perfect user, the best is user 1 (F 2/3), whose precision
    # and recall are both 2/3, not those of user 2 (1/3, 1/2).
    f, p, r = se.summary_fscore(MACHINE, USERS[1:], "max")
    assert (f, p, r) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_correlation_average_over_annotators_hand_worked():
    prediction = [1, 2, 3, 4]
    annotators = [
        [1, 2, 3, 4],  # tau 1, rho 1
        [1, 3, 2, 4],  # one swap: tau 4/6, rho 0.8
        [4, 3, 2, 1],  # reversed: tau -1, rho -1
        [2, 1, 4, 3],  # two swaps: tau 2/6, rho 0.6
        [1, 1, 1, 1],  # constant: undefined, counts 0
    ]
    tau, rho = se.annotator_correlation(prediction, annotators)
    # Mean 0.2 (median 1/3, maximum 1); rho mean 0.28 (median 0.6).
    assert tau == pytest.approx((1 + 4 / 6 - 1 + 2 / 6 + 0) / 5)
    assert rho == pytest.approx((1 + 0.8 - 1 + 0.6 + 0) / 5)
