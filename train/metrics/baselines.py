"""Baselines printed beside every number we report.

Summarization (Otani et al., CVPR 2019: random scores come close to
published F-scores on TVSum; the numbers beside ours say how close):

- `random_scores`: the mean F-score of summaries made from uniformly
  random pick scores through the same protocol, the same shots and the
  same users (`RANDOM_DRAWS` draws per video, seeded);
- `uniform_intervals`: a summary of evenly spaced pieces, ours to define:
  the budget split into as many pieces as the video's median shot fits
  into it (at least one), centred in equal parts of the video;
- `human`: each user summary scored against the other users (F, with the
  report's reduction), and, when the file holds per-annotator scores
  (TVSum's `user_scores`), Kendall's tau and Spearman's rho of each pair
  of annotators, averaged over pairs and videos: the file's own human
  agreement (TVSum's published 0.177 / 0.204 were measured this way).

Classification: the majority class of the training labels (else of the
evaluated ones) predicted for every example, and the expected numbers of
uniformly random guesses (accuracy and mean class accuracy 1/K, top-5
min(5, K)/K, ROC AUC 0.5).

Example:

>>> rows = classification_baselines(np.array([0, 0, 1]), 2, train_labels=np.array([1, 1, 0]))
>>> rows["majority class"]["accuracy"], rows["uniform random"]["accuracy"]
(0.3333333333333333, 0.5)
"""

import itertools

import numpy as np

from train.metrics.classification import classification_report
from train.metrics.ranking import kendall_tau_b, spearman_rho
from train.metrics.summarization import (
    PROPORTION, summary_fscore, summary_from_frame_scores, upsample_to_frames,
)

RANDOM_DRAWS = 20


def _field(video, name, default=None):
    value = video.get(name, default) if isinstance(video, dict) else getattr(video, name, default)
    return value


def random_scores_fscore(video, reduction, draws=RANDOM_DRAWS, seed=0,
                         proportion=PROPORTION):
    """The mean F-score of `draws` random-score summaries of one video."""
    rng = np.random.default_rng(seed)
    picks = np.asarray(_field(video, "picks"))
    n_frames = int(_field(video, "n_frames"))
    scores = []
    for _ in range(draws):
        frame_scores = upsample_to_frames(rng.uniform(size=len(picks)), picks, n_frames)
        machine = summary_from_frame_scores(
            frame_scores, n_frames, _field(video, "change_points"),
            _field(video, "n_frame_per_seg"), proportion)
        scores.append(summary_fscore(machine, _field(video, "user_summary"), reduction)[0])
    return float(np.mean(scores))


def uniform_interval_summary(n_frames, change_points, proportion=PROPORTION):
    """A 0/1 summary of evenly spaced pieces (see the module doc).

    Example:

    >>> shots = np.array([[0, 4], [5, 9], [10, 14], [15, 19]])
    >>> uniform_interval_summary(20, shots, 0.5).astype(int).tolist()
    [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    """
    n_frames = int(n_frames)
    budget = int(np.floor(proportion * n_frames))
    summary = np.zeros(n_frames, bool)
    if budget < 1:
        return summary
    lengths = np.asarray(change_points)[:, 1] - np.asarray(change_points)[:, 0] + 1
    pieces = max(1, min(budget, int(budget // max(1, np.median(lengths)))))
    size = budget // pieces
    for k in range(pieces):
        centre = int((k + 0.5) * n_frames / pieces)
        start = min(max(0, centre - size // 2), n_frames - size)
        summary[start:start + size] = True
    return summary


def human_agreement(video, reduction):
    """`{"fscore", "kendall_tau", "spearman_rho"}` of one video's humans
    against each other (the correlations only with per-annotator scores)."""
    users = np.asarray(_field(video, "user_summary"), dtype=np.float64)
    found = {}
    if len(users) > 1:
        found["fscore"] = float(np.mean([
            summary_fscore(users[u], np.delete(users, u, axis=0), reduction)[0]
            for u in range(len(users))
        ]))
    annotators = _field(video, "user_scores")
    if annotators is not None and len(annotators) > 1:
        pairs = list(itertools.combinations(range(len(annotators)), 2))
        taus = [kendall_tau_b(annotators[a], annotators[b]) for a, b in pairs]
        rhos = [spearman_rho(annotators[a], annotators[b]) for a, b in pairs]
        found["kendall_tau"] = float(np.nanmean(taus))
        found["spearman_rho"] = float(np.nanmean(rhos))
    return found


def summarization_baselines(videos, reduction, draws=RANDOM_DRAWS, seed=0,
                            proportion=PROPORTION):
    """The baselines of one split, averaged over its videos.

    Args:
        videos: mapping key -> a video record (fields as in the file).
        reduction: `"avg"` or `"max"` over user summaries, as the report's.

    Returns:
        `{"random scores": {"fscore", "draws"}, "uniform intervals":
        {"fscore"}, "human": {...}}`.
    """
    keys = sorted(videos)
    random_f, uniform_f, humans = [], [], []
    for index, key in enumerate(keys):
        video = videos[key]
        random_f.append(random_scores_fscore(video, reduction, draws, seed + index, proportion))
        uniform = uniform_interval_summary(_field(video, "n_frames"),
                                           _field(video, "change_points"), proportion)
        uniform_f.append(summary_fscore(uniform, _field(video, "user_summary"), reduction)[0])
        humans.append(human_agreement(video, reduction))
    human = {
        name: float(np.mean([h[name] for h in humans if name in h]))
        for name in ("fscore", "kendall_tau", "spearman_rho") if any(name in h for h in humans)
    }
    return {
        "random scores": {"fscore": float(np.mean(random_f)), "draws": draws},
        "uniform intervals": {"fscore": float(np.mean(uniform_f))},
        "human": human,
    }


def classification_baselines(labels, num_classes, train_labels=None):
    """`{"majority class": report summary, "uniform random": expected
    numbers}` for the evaluated `labels` of `num_classes` classes."""
    labels = np.asarray(labels, np.int64)
    source = labels if train_labels is None or not len(train_labels) else \
        np.asarray(train_labels, np.int64).reshape(-1)
    majority = int(np.bincount(source, minlength=num_classes).argmax())
    constant = np.full((len(labels), num_classes), 0.0)
    constant[:, majority] = 1.0
    majority_summary = classification_report(constant, labels, [str(c) for c in range(num_classes)])
    uniform = {"accuracy": 1.0 / num_classes, "mean_class_accuracy": 1.0 / num_classes}
    if num_classes > 5:
        uniform["top5_accuracy"] = 5.0 / num_classes
    if num_classes == 2:
        uniform["auc"] = 0.5
    return {"majority class": {key: value for key, value in majority_summary["summary"].items()
                               if key in ("accuracy", "mean_class_accuracy", "macro_f1",
                                          "top5_accuracy")},
            "uniform random": uniform}
