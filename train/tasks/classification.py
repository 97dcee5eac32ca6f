"""The action-recognition report, shared by the classifier tasks.

Top-1 accuracy, top-5 accuracy (more than five classes), mean class
accuracy, per-class precision/recall/F1, macro-F1, ROC AUC for binary
models, and the confusion matrix as JSON and PNG. Several models form an
ensemble whose class probabilities are averaged.

Example:

>>> probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
>>> report = classification_report(probabilities, np.array([0, 1, 1]), ["a", "b"])
>>> report["summary"]["accuracy"], report["summary"]["mean_class_accuracy"]
(0.6666666666666666, 0.75)
"""

import os

import numpy as np

from common.files import pyplot, save_figure, write_json
from data.video import check_decoding, forget_decoding_errors
from train.tasks.base import Task

# The 51 classes of HMDB51 (Kuehne et al., ICCV 2011), as its folders and
# split lists name them.
HMDB51_CLASSES = (
    "brush_hair", "cartwheel", "catch", "chew", "clap", "climb", "climb_stairs", "dive",
    "draw_sword", "dribble", "drink", "eat", "fall_floor", "fencing", "flic_flac", "golf",
    "handstand", "hit", "hug", "jump", "kick", "kick_ball", "kiss", "laugh", "pick", "pour",
    "pullup", "punch", "push", "pushup", "ride_bike", "ride_horse", "run", "shake_hands",
    "shoot_ball", "shoot_bow", "shoot_gun", "sit", "situp", "smile", "smoke", "somersault",
    "stand", "swing_baseball", "sword", "sword_exercise", "talk", "throw", "turn", "walk",
    "wave",
)

# Top-1 accuracies on HMDB51 in the design notes' ablation table.
PUBLISHED_TOP1 = {
    "hmdb51": {
        "R(2+1)D-18 baseline": 0.727,
        "R(2+1)D + Perceiver 8+1+1": 0.703,
    },
}


def predict_probabilities(model, model_name, dataset, views=None):
    """Runs `model` over `dataset`; returns (probabilities [N, K], labels [N]).

    A single sigmoid output becomes two columns, P(0) and P(1). With
    `views`, each example of `dataset` holds that many views of one video
    (frames [B, V, T, H, W, C]); the model sees every view and a video's
    probabilities are the mean over its views (`average_views`).
    """
    import models

    family = models.get_family(model_name)
    probabilities, labels = [], []
    forget_decoding_errors()
    for inputs, targets in dataset:
        if views is not None:
            frames = np.asarray(inputs["frames"])
            inputs = {"frames": frames.reshape(-1, *frames.shape[2:])}
        outputs = family.name_outputs(model, model(inputs, training=False))
        batch = np.asarray(outputs["probabilities"])
        if views is not None:
            batch = average_views(two_columns(batch), views)
        probabilities.append(batch)
        labels.append(np.asarray(targets))
    check_decoding()  # a video the stream could not decode ends it early
    if not probabilities:
        raise ValueError("the evaluated data has no examples")
    probabilities = np.concatenate(probabilities)
    labels = np.concatenate(labels).reshape(len(probabilities), -1)[:, 0]
    return two_columns(probabilities), labels.astype(int)


def average_views(probabilities, views):
    """[N * V, K] probabilities of V consecutive views per video -> [N, K]
    means, as MMAction2's `average_clips="prob"` (scores are averaged after
    the softmax, not before).

    Example:

    >>> average_views(np.array([[0.8, 0.2], [0.4, 0.6]]), 2).tolist()
    [[0.6000000000000001, 0.4]]
    """
    probabilities = np.asarray(probabilities)
    return probabilities.reshape(-1, int(views), probabilities.shape[-1]).mean(axis=1)


def two_columns(probabilities):
    """[N, 1] sigmoid outputs as [N, 2] class probabilities; others unchanged."""
    probabilities = np.asarray(probabilities)
    if probabilities.shape[-1] == 1:
        return np.concatenate([1.0 - probabilities, probabilities], axis=-1)
    return probabilities


def classification_report(probabilities, labels, class_names):
    """The report of one set of predictions, as plain JSON-able data.

    Mean class accuracy and macro-F1 average over the classes that have
    examples in `labels` (as MMAction2's `mean_class_accuracy` does): a
    class absent from a test split would otherwise count as 0 and lower
    both for something the model never saw. Per-class rows list every
    class, absent ones with zeros.
    """
    num_classes = probabilities.shape[-1]
    predicted = probabilities.argmax(-1)
    confusion = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    true_counts, predicted_counts = confusion.sum(1), confusion.sum(0)
    hits = np.diag(confusion)
    precision = np.divide(hits, predicted_counts, out=np.zeros(num_classes), where=predicted_counts > 0)
    recall = np.divide(hits, true_counts, out=np.zeros(num_classes), where=true_counts > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall,
        out=np.zeros(num_classes), where=(precision + recall) > 0,
    )
    present = true_counts > 0
    summary = {
        "examples": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "mean_class_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
    }
    if num_classes > 5:
        top5 = np.argsort(-probabilities, axis=-1)[:, :5]
        summary["top5_accuracy"] = float((top5 == labels[:, None]).any(-1).mean())
    if num_classes == 2:
        summary["auc"] = roc_auc(probabilities[:, 1], labels)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(true_counts[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "summary": summary,
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "class_names": list(class_names),
    }


def roc_auc(scores, labels):
    """Area under the ROC curve (Mann-Whitney U), ties counted half.

    Example:

    >>> roc_auc(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0]))
    0.875
    """
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def published_comparison(summary, benchmark, ours=None):
    """Markdown rows: our top-1 accuracy beside the published numbers of
    `benchmark`; "" when there are none for it (other data). `ours` names
    our row (default: "ours (<examples> videos)").

    Example:

    >>> print(published_comparison({"accuracy": 0.5, "examples": 10}, "hmdb51"))
    | model | top-1 |
    |---|---:|
    | ours (10 videos) | 0.500 |
    | R(2+1)D-18 baseline (design notes, hmdb51) | 0.727 |
    | R(2+1)D + Perceiver 8+1+1 (design notes, hmdb51) | 0.703 |
    >>> published_comparison({"accuracy": 0.5, "examples": 10}, None)
    ''
    """
    published = PUBLISHED_TOP1.get(benchmark)
    if not published:
        return ""
    ours = ours or f"ours ({summary['examples']} videos)"
    rows = [
        "| model | top-1 |",
        "|---|---:|",
        f"| {ours} | {summary['accuracy']:.3f} |",
    ]
    rows += [f"| {name} (design notes, {benchmark}) | {value:.3f} |" for name, value in published.items()]
    return "\n".join(rows)


def plot_confusion_matrix(report, path):
    plt = pyplot()
    matrix = np.asarray(report["confusion_matrix"])
    names = report["class_names"]
    size = max(4.0, 0.5 * len(names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = report["summary"]["accuracy"]
    axes.set_title(f"confusion matrix (accuracy {accuracy:.3f})")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, str(count), ha="center", va="center",
                  color="white" if count > threshold else "black")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    save_figure(figure, path)


class ClassifierTask(Task):
    """Evaluation and reports of the tasks whose models output class
    probabilities (`clips`, `features`)."""

    def evaluate(self, models, bundle, split):
        dataset = bundle.split(split)
        if dataset is None:
            raise ValueError(f"the data has no {split} split")
        views = bundle.info.get("views")
        all_probabilities, labels = [], None
        for name, model in models:
            probabilities, labels = predict_probabilities(
                model, name, dataset, views=views["views"] if views else None
            )
            all_probabilities.append(probabilities)
        report = classification_report(
            np.mean(all_probabilities, axis=0), labels, bundle.class_names
        )
        report["kind"] = self.kind
        report["split"] = split
        if views:
            report["views"] = dict(views)
        report["benchmark"] = bundle.info.get("benchmark")
        return report

    def describe(self, report):
        return published_comparison(report["summary"], report.get("benchmark"))

    def write_report(self, report, out, prefix):
        write_json(os.path.join(out, f"{prefix}_report.json"), report)
        plot_confusion_matrix(report, os.path.join(out, f"{prefix}_confusion_matrix.png"))

    def window_encoder(self, model, record, options):
        """The task's `train.tasks.timeline.WindowEncoder`: how the frames
        of one window become one model input."""
        raise NotImplementedError

    def predictor(self, model, record, options):
        from train.tasks.timeline import ClassifierPredictor

        return ClassifierPredictor(model, record, options, self.window_encoder(model, record, options))
