"""The baselines beside our numbers, against brute force and by hand."""

import numpy as np
import pytest

from tests.test_summary_eval import brute_force_knapsack
from train.metrics import baselines
from train.metrics.summarization import summary_fscore


def small_video():
    # 30 frames, picks every 3, four shots, three users who disagree.
    change_points = np.array([[0, 5], [6, 13], [14, 20], [21, 29]])
    users = np.zeros((3, 30))
    users[0, 0:4] = 1
    users[1, 6:10] = 1
    users[2, 21:25] = 1
    return {"picks": np.arange(0, 30, 3), "n_frames": 30, "change_points": change_points,
            "n_frame_per_seg": change_points[:, 1] - change_points[:, 0] + 1,
            "user_summary": users}


def brute_force_summary(frame_scores, change_points, capacity):
    """The best-valued set of whole shots within `capacity`, by trying them all."""
    lengths = change_points[:, 1] - change_points[:, 0] + 1
    values = [frame_scores[a:b + 1].mean() for a, b in change_points]
    _, best = brute_force_knapsack(values, lengths, capacity)
    summary = np.zeros(int(change_points[-1, 1]) + 1)
    for i in best:
        summary[change_points[i, 0]:change_points[i, 1] + 1] = 1
    return summary


@pytest.mark.parametrize("reduction", ["avg", "max"])
def test_the_random_baseline_is_the_mean_f_of_random_summaries(reduction):
    video = small_video()
    expected = []
    rng = np.random.default_rng(7)
    for _ in range(baselines.RANDOM_DRAWS):
        scores = rng.uniform(size=10)
        frame_scores = np.repeat(scores, 3)  # one pick every 3 frames
        machine = brute_force_summary(frame_scores, video["change_points"], 4)
        expected.append(summary_fscore(machine, video["user_summary"], reduction)[0])
    assert baselines.random_scores_fscore(video, reduction, seed=7) == pytest.approx(
        np.mean(expected))


def test_humans_are_scored_against_each_other():
    video = small_video()
    # Disjoint user summaries: every user scores 0 against the others.
    assert baselines.human_agreement(video, "avg") == {"fscore": 0.0}
    video["user_summary"][1] = video["user_summary"][0]
    # Users 0 and 1 agree: against the others, each gets F 1 from the twin
    # and 0 from user 2; user 2 gets 0. Mean (0.5 + 0.5 + 0) / 3 with avg;
    # max: (1 + 1 + 0) / 3.
    assert baselines.human_agreement(video, "avg")["fscore"] == pytest.approx(1 / 3)
    assert baselines.human_agreement(video, "max")["fscore"] == pytest.approx(2 / 3)
    video["user_scores"] = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1]], float)
    found = baselines.human_agreement(video, "avg")
    # Pairs (0, 1) agree (+1), (0, 2) and (1, 2) are reversed (-1).
    assert found["kendall_tau"] == pytest.approx(-1 / 3)
    assert found["spearman_rho"] == pytest.approx(-1 / 3)


def test_classification_baselines():
    labels = np.array([0, 1, 1, 2, 2, 2, 3, 4, 5, 5])
    rows = baselines.classification_baselines(labels, 6, train_labels=np.array([5, 5, 1]))
    # The training majority (5) for every example: 2 of 10 right.
    assert rows["majority class"]["accuracy"] == pytest.approx(0.2)
    assert rows["majority class"]["mean_class_accuracy"] == pytest.approx(1 / 6)
    assert rows["uniform random"] == {"accuracy": 1 / 6, "mean_class_accuracy": 1 / 6,
                                      "top5_accuracy": 5 / 6}
    # Without training labels: the evaluated data's majority (2), 3 of 10.
    rows = baselines.classification_baselines(labels, 6)
    assert rows["majority class"]["accuracy"] == pytest.approx(0.3)
    assert baselines.classification_baselines(np.array([0, 1]), 2)["uniform random"]["auc"] == 0.5
