"""The video-summarization evaluation protocol, in plain NumPy.

This is the protocol that published TVSum and SumMe numbers use (the
`vsum_tools` of the DSN code base), plus the rank correlations of Otani et
al., "Rethinking the Evaluation of Video Summaries" (CVPR 2019):

1. A model scores the sub-sampled frames listed in `picks`. Each pick's
   score is spread over the frames up to the next pick
   (`upsample_to_frames`).
2. A shot's score is the mean frame score over the frames of its KTS
   segment in `change_points` (`shot_scores`; both ends inclusive).
3. A 0/1 knapsack picks the shots with the largest total score whose total
   length fits in floor(0.15 * n_frames) frames (`knapsack`, an exact
   dynamic programme), giving a binary keyshot summary (`keyshot_summary`).
4. The summary is compared with every user summary by frame-level F-score
   (`summary_fscore`), reduced by the mean over users (TVSum) or the
   maximum (SumMe).
5. Kendall's tau-b and Spearman's rho between the predicted frame scores and
   each annotator's frame scores, averaged over annotators
   (`annotator_correlation`).

Besides the protocol, `evaluate_video` reports the design notes' metrics on
the picks: Spearman and Kendall against `gtscore`, MSE, Precision@15% and
F1 (defined in `evaluate_video`).

Every score here is a fraction in [0, 1] (F-scores too); reports that
compare with papers multiply F-scores by 100.

Example:

>>> import numpy as np
>>> frames = upsample_to_frames([0.1, 0.9], picks=[0, 2], n_frames=4)
>>> frames.tolist()
[0.1, 0.1, 0.9, 0.9]
>>> round(kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]), 4)
0.6667
"""

import math

import numpy as np

from train.metrics.ranking import kendall_tau_b, spearman_rho

PROPORTION = 0.15
REDUCTIONS = ("avg", "max")

# Published anchors to print beside our numbers (F-scores in percent).
HUMAN_AGREEMENT_TVSUM = {"kendall_tau": 0.177, "spearman_rho": 0.204}
PUBLISHED_FSCORES = {
    "DSNet": {"tvsum": 62.05, "summe": 50.19},
    "VASNet": {"tvsum": 61.43, "summe": 49.63},
    "PGL-SUM": {"tvsum": 61.0, "summe": 55.6},
}
PUBLISHED_CORRELATIONS = {"PGL-SUM": {"tvsum": {"kendall_tau": 0.157, "spearman_rho": 0.206}}}


# --------------------------------------------------------------------------
# From pick scores to a keyshot summary.


def upsample_to_frames(pick_scores, picks, n_frames):
    """Spreads one score per pick over the frames up to the next pick.

    Frame `f` with `picks[i] <= f < picks[i + 1]` gets `pick_scores[i]`; the
    last pick covers the frames up to `n_frames`. Frames before the first
    pick score 0, and picks without a score (fewer scores than picks) give
    0, as in `vsum_tools`.

    Args:
        pick_scores: [n_picks] scores of the sub-sampled frames.
        picks: [n_picks] increasing frame indices of the sub-sampled frames.
        n_frames: frame count of the video.

    Returns:
        float64 [n_frames] frame scores.
    """
    scores = np.asarray(pick_scores, dtype=np.float64).reshape(-1)
    picks = np.asarray(picks).astype(np.int64).reshape(-1)
    n_frames = int(n_frames)
    bounds = np.append(picks, n_frames) if picks.size == 0 or picks[-1] != n_frames else picks
    frame_scores = np.zeros(n_frames, dtype=np.float64)
    for index in range(len(bounds) - 1):
        value = scores[index] if index < len(scores) else 0.0
        frame_scores[bounds[index]:bounds[index + 1]] = value
    return frame_scores


def shot_scores(frame_scores, change_points):
    """Mean frame score of every segment `[start, end]` (both inclusive)."""
    frame_scores = np.asarray(frame_scores, dtype=np.float64)
    change_points = np.asarray(change_points).astype(np.int64).reshape(-1, 2)
    return np.array(
        [frame_scores[start:end + 1].mean() if end >= start else 0.0
         for start, end in change_points],
        dtype=np.float64,
    )


def knapsack(values, weights, capacity):
    """Exact 0/1 knapsack by dynamic programming over integer capacities.

    Maximises the total value of the chosen items under a total weight of at
    most `capacity`. An item is taken only when it strictly improves the
    best value, so among equal-value solutions the one with fewer later
    items wins.

    Args:
        values: [n] item values (floats).
        weights: [n] non-negative integer weights.
        capacity: non-negative integer capacity.

    Returns:
        The sorted list of chosen item indices.

    Example:

    >>> knapsack([3.0, 4.0, 5.0, 6.0], [2, 3, 4, 5], 5)
    [0, 1]
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    weights = np.asarray(weights).astype(np.int64).reshape(-1)
    capacity = int(capacity)
    if values.shape != weights.shape:
        raise ValueError(
            f"knapsack: {values.size} values but {weights.size} weights"
        )
    if capacity < 0 or np.any(weights < 0):
        raise ValueError("knapsack: weights and capacity must be >= 0")
    best = np.zeros(capacity + 1, dtype=np.float64)
    taken = np.zeros((values.size, capacity + 1), dtype=bool)
    for item, (value, weight) in enumerate(zip(values, weights)):
        if weight > capacity:
            continue
        candidate = np.full(capacity + 1, -np.inf)
        candidate[weight:] = best[:capacity + 1 - weight] + value
        taken[item] = candidate > best
        best = np.where(taken[item], candidate, best)
    chosen, room = [], capacity
    for item in range(values.size - 1, -1, -1):
        if taken[item, room]:
            chosen.append(item)
            room -= weights[item]
    return sorted(chosen)


def keyshot_summary(pick_scores, picks, n_frames, change_points, n_frame_per_seg,
                    proportion=PROPORTION):
    """The binary keyshot summary of one video, as in `vsum_tools`.

    Args:
        pick_scores: [n_picks] predicted importance of the sub-sampled frames.
        picks, n_frames, change_points, n_frame_per_seg: the video's fields
            from the summarization HDF5 file.
        proportion: summary budget as a fraction of the video's frames; the
            capacity is floor(proportion * n_frames).

    Returns:
        float32 [sum(n_frame_per_seg)] with 1 on the frames of the chosen
        shots (normally `n_frames` long).
    """
    frame_scores = upsample_to_frames(pick_scores, picks, n_frames)
    return summary_from_frame_scores(
        frame_scores, n_frames, change_points, n_frame_per_seg, proportion
    )


def summary_from_frame_scores(frame_scores, n_frames, change_points, n_frame_per_seg,
                              proportion=PROPORTION):
    """Keyshot summary from frame-level scores (steps 2 and 3 of the protocol)."""
    lengths = np.asarray(n_frame_per_seg).astype(np.int64).reshape(-1)
    capacity = int(math.floor(int(n_frames) * proportion))
    chosen = set(knapsack(shot_scores(frame_scores, change_points), lengths, capacity))
    return np.concatenate(
        [np.full(length, 1.0 if index in chosen else 0.0, dtype=np.float32)
         for index, length in enumerate(lengths)]
        or [np.zeros(0, dtype=np.float32)]
    )


# --------------------------------------------------------------------------
# Summary against user summaries.


def summary_fscore(machine_summary, user_summary, reduction="avg"):
    """Frame-level F-score of a binary summary against every user summary.

    The machine summary is cut or zero-padded to the user summaries' length;
    every value > 0 counts as selected. For each user, precision = overlap /
    |machine|, recall = overlap / |user|, F = 2PR / (P + R) (0 when both
    are 0).

    Args:
        machine_summary: [n] binary summary.
        user_summary: [n_users, n_frames] binary summaries (or [n_frames]).
        reduction: `"avg"` (TVSum: mean over users) or `"max"` (SumMe: the
            best-matching user).

    Returns:
        `(f_score, precision, recall)`: for `"avg"` each is the mean over
        users; for `"max"` precision and recall are those of the user with
        the best F-score.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    machine = np.asarray(machine_summary, dtype=np.float64).reshape(-1) > 0
    users = np.atleast_2d(np.asarray(user_summary, dtype=np.float64)) > 0
    n_frames = users.shape[1]
    fitted = np.zeros(n_frames, dtype=bool)
    fitted[:min(n_frames, machine.size)] = machine[:n_frames]
    overlap = (users & fitted).sum(axis=1).astype(np.float64)
    precision = overlap / max(fitted.sum(), 1)
    recall = overlap / np.maximum(users.sum(axis=1), 1)
    total = precision + recall
    fscore = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    if reduction == "avg":
        return float(fscore.mean()), float(precision.mean()), float(recall.mean())
    best = int(np.argmax(fscore))
    return float(fscore[best]), float(precision[best]), float(recall[best])


def annotator_correlation(frame_scores, annotator_scores):
    """Kendall's tau-b and Spearman's rho against each annotator, averaged.

    Otani et al. (CVPR 2019): the predicted frame scores are correlated with
    every annotator's frame scores and the coefficients are averaged over
    annotators. A coefficient that is undefined (a constant prediction or a
    constant annotator row) counts as 0: a constant ranks nothing.

    Args:
        frame_scores: [n_frames] predicted frame scores.
        annotator_scores: [n_annotators, n_frames] (or [n_frames]).

    Returns:
        `(kendall_tau, spearman_rho)`.
    """
    frame_scores = np.asarray(frame_scores, dtype=np.float64).reshape(-1)
    annotators = np.atleast_2d(np.asarray(annotator_scores, dtype=np.float64))
    length = min(frame_scores.size, annotators.shape[1])
    taus, rhos = [], []
    for row in annotators:
        taus.append(_or_zero(kendall_tau_b(frame_scores[:length], row[:length])))
        rhos.append(_or_zero(spearman_rho(frame_scores[:length], row[:length])))
    return float(np.mean(taus)), float(np.mean(rhos))


def _or_zero(value):
    return 0.0 if not np.isfinite(value) else float(value)


# --------------------------------------------------------------------------
# One video, one split.


def precision_at(scores, reference, proportion=PROPORTION):
    """Share of the top-k predicted items that are among the top-k reference
    items, k = max(1, floor(proportion * n)); ties keep the earlier item."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    k = max(1, int(math.floor(proportion * scores.size)))
    top_predicted = np.argsort(-scores, kind="stable")[:k]
    top_reference = np.argsort(-reference, kind="stable")[:k]
    return float(np.intersect1d(top_predicted, top_reference).size / k)


def evaluate_video(pick_scores, *, picks, n_frames, change_points, n_frame_per_seg,
                   user_summary, gtscore, annotator_scores=None, reduction="avg",
                   proportion=PROPORTION):
    """Every metric for one video.

    Args:
        pick_scores: [n_picks] predicted scores of the sub-sampled frames.
        picks, n_frames, change_points, n_frame_per_seg, user_summary,
            gtscore: the video's fields from the summarization file.
        annotator_scores: [n_annotators, n_frames] per-annotator frame
            scores for the rank correlations (TVSum's raw annotations when
            they are at hand); `None` uses the rows of `user_summary`.
        reduction: `"avg"` (TVSum) or `"max"` (SumMe) over user summaries.
        proportion: the summary budget, 0.15 by convention.

    Returns:
        A dict: `fscore`, `precision`, `recall` (the keyshot protocol);
        `kendall_tau`, `spearman_rho` (against annotators, averaged);
        `gt_kendall_tau`, `gt_spearman_rho` and `mse` (picks against
        `gtscore`); `precision_at_15` (top 15% picks by prediction that are
        in the top 15% by `gtscore`); `f1` (frame-level F-score of our
        keyshot summary against the keyshot summary that `gtscore` itself
        produces through the same protocol).
    """
    pick_scores = np.asarray(pick_scores, dtype=np.float64).reshape(-1)
    gtscore = np.asarray(gtscore, dtype=np.float64).reshape(-1)
    if pick_scores.size != gtscore.size:
        raise ValueError(
            f"{pick_scores.size} predicted scores for a video with {gtscore.size} picks"
        )
    frame_scores = upsample_to_frames(pick_scores, picks, n_frames)
    machine = summary_from_frame_scores(
        frame_scores, n_frames, change_points, n_frame_per_seg, proportion
    )
    fscore, precision, recall = summary_fscore(machine, user_summary, reduction)
    annotators = user_summary if annotator_scores is None else annotator_scores
    tau, rho = annotator_correlation(frame_scores, annotators)
    reference = keyshot_summary(gtscore, picks, n_frames, change_points, n_frame_per_seg,
                                proportion)
    return {
        "fscore": fscore,
        "precision": precision,
        "recall": recall,
        "kendall_tau": tau,
        "spearman_rho": rho,
        "gt_kendall_tau": _or_zero(kendall_tau_b(pick_scores, gtscore)),
        "gt_spearman_rho": _or_zero(spearman_rho(pick_scores, gtscore)),
        "mse": float(np.mean((pick_scores - gtscore) ** 2)),
        "precision_at_15": precision_at(pick_scores, gtscore, proportion),
        "f1": summary_fscore(machine, reference[None, :], "avg")[0],
    }


METRICS = (
    "fscore", "precision", "recall", "kendall_tau", "spearman_rho",
    "gt_kendall_tau", "gt_spearman_rho", "mse", "precision_at_15", "f1",
)


def evaluate_videos(predictions, videos, reduction="avg", proportion=PROPORTION):
    """Evaluates many videos and averages every metric over them.

    Args:
        predictions: mapping video key -> [n_picks] predicted pick scores.
        videos: mapping video key -> a record with the fields `picks`,
            `n_frames`, `change_points`, `n_frame_per_seg`, `user_summary`,
            `gtscore` and optionally `user_scores` (attributes or keys).
        reduction: `"avg"` (TVSum) or `"max"` (SumMe).

    Returns:
        `(mean_metrics, per_video)`: the mean of every metric over the
        videos, and a dict key -> that video's metrics.
    """
    per_video = {}
    for key, scores in predictions.items():
        video = videos[key]
        per_video[key] = evaluate_video(
            scores,
            picks=_field(video, "picks"),
            n_frames=_field(video, "n_frames"),
            change_points=_field(video, "change_points"),
            n_frame_per_seg=_field(video, "n_frame_per_seg"),
            user_summary=_field(video, "user_summary"),
            gtscore=_field(video, "gtscore"),
            annotator_scores=_field(video, "user_scores", None),
            reduction=reduction,
            proportion=proportion,
        )
    mean = {
        name: float(np.mean([metrics[name] for metrics in per_video.values()]))
        if per_video else float("nan")
        for name in METRICS
    }
    return mean, per_video


def _field(video, name, *default):
    if isinstance(video, dict):
        return video.get(name, *default) if default else video[name]
    return getattr(video, name, *default)
