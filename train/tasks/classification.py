"""The action-recognition report, shared by the classifier tasks.

Top-1 accuracy, top-5 accuracy (more than five classes), mean class
accuracy, per-class precision/recall/F1, macro-F1, ROC AUC for binary
models, and the confusion matrix as JSON and PNG. Several models form an
ensemble whose class probabilities are averaged.
"""

import os

import numpy as np

import models
from common.files import pyplot, save_figure, write_json
from data.video import check_decoding, forget_decoding_errors
from train.formats.gates import Top1Agreement
from train.metrics.baselines import classification_baselines
from train.metrics.classification import average_views, classification_report, two_columns
from train.tasks.base import Task
from train.tasks.timeline import ClassifierPredictor

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


def baselines_table(report):
    """Markdown rows: our numbers beside the majority-class and the
    uniform-random baselines of the same data."""
    columns = [("accuracy", "top-1"), ("mean_class_accuracy", "mean class acc"),
               ("top5_accuracy", "top-5"), ("auc", "ROC AUC")]
    summary = report["summary"]
    shown = [(key, label) for key, label in columns if key in summary]
    rows = ["| | " + " | ".join(label for _, label in shown) + " |",
            "|---|" + "---:|" * len(shown),
            "| ours | " + " | ".join(f"{summary[key]:.3f}" for key, _ in shown) + " |"]
    for name, values in (report.get("baselines") or {}).items():
        rows.append(f"| {name} | " + " | ".join(
            f"{values[key]:.3f}" if key in values else "" for key, _ in shown) + " |")
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
        report["baselines"] = classification_baselines(
            labels, len(bundle.class_names), bundle.train_labels)
        if views:
            report["views"] = dict(views)
        report["benchmark"] = bundle.info.get("benchmark")
        return report

    def describe(self, report):
        return "\n\n".join(part for part in (
            baselines_table(report), published_comparison(report["summary"], report.get("benchmark"))
        ) if part)

    def export_gate(self):
        return Top1Agreement()

    def write_report(self, report, out, prefix):
        write_json(os.path.join(out, f"{prefix}_report.json"), report)
        plot_confusion_matrix(report, os.path.join(out, f"{prefix}_confusion_matrix.png"))

    def window_encoder(self, model, record, options):
        """The task's `train.tasks.timeline.WindowEncoder`: how the frames
        of one window become one model input."""
        raise NotImplementedError

    def predictor(self, model, record, options):
        return ClassifierPredictor(model, record, options, self.window_encoder(model, record, options))
