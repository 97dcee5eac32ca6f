"""Evaluate trained runs: `python -m train.evaluate --runs DIR [DIR ...]`.

Classifiers get the action-recognition report: top-1, top-5 and mean class
accuracy, per-class precision/recall/F1, macro-F1, ROC AUC for binary
models, and the confusion matrix as JSON and PNG. Several runs form an
ensemble whose class probabilities are averaged.
"""

import argparse
import json
import os
import sys

import numpy as np

from data.cli import ArgumentParser, run_main


def predict_probabilities(model, model_name, dataset):
    """Runs `model` over `dataset`; returns (probabilities [N, K], labels [N])."""
    import models

    family = models.get_family(model_name)
    probabilities, labels = [], []
    for inputs, targets in dataset:
        outputs = family.name_outputs(model, model(inputs, training=False))
        probabilities.append(np.asarray(outputs["probabilities"]))
        labels.append(np.asarray(targets))
    probabilities = np.concatenate(probabilities)
    labels = np.concatenate(labels).reshape(len(probabilities), -1)[:, 0]
    if probabilities.shape[-1] == 1:
        probabilities = np.concatenate([1.0 - probabilities, probabilities], axis=-1)
    return probabilities, labels.astype(int)


def classification_report(probabilities, labels, class_names):
    """The report of one set of predictions, as plain JSON-able data."""
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
    """Area under the ROC curve (Mann-Whitney U), ties counted half."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def plot_confusion_matrix(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from train.callbacks import save_figure

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


def write_report(report, out, prefix="test"):
    if report.get("kind") == "frame_scores":
        from train import frame_scores

        return frame_scores.write_report(report, out, prefix)
    from train.callbacks import write_json

    write_json(os.path.join(out, f"{prefix}_report.json"), report)
    plot_confusion_matrix(report, os.path.join(out, f"{prefix}_confusion_matrix.png"))


def evaluate_model(model, model_name, data, class_names, out):
    """Evaluates a trained model on the bundle's test (else val) split."""
    if _input_kind(model_name) == "frame_scores":
        from train import frame_scores

        return frame_scores.evaluate_model(model, data, out)
    dataset = data.test if data.test is not None else data.val
    if dataset is None:
        return {"summary": {}}
    probabilities, labels = predict_probabilities(model, model_name, dataset)
    report = classification_report(probabilities, labels, class_names)
    write_report(report, out)
    return {"summary": {f"test_{k}": v for k, v in report["summary"].items()}}


def _input_kind(model_name):
    import models

    return type(models.get_family(model_name).config).input_kind


def load_record(run):
    """Reads a run folder's recorded config.json."""
    path = os.path.join(run, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run}: no config.json; is it a run folder?")
    with open(path) as file:
        return json.load(file)


def load_run(run):
    """Reads a run folder; returns (record, best model)."""
    import keras

    record = load_record(run)
    model_path = os.path.join(run, "best.keras")
    if not os.path.exists(model_path):
        raise FileNotFoundError(f"{run}: no best.keras; has the run finished an epoch?")
    return record, keras.saving.load_model(model_path)


def run_data(record, source_overrides=None, seed=None, split=None):
    """Rebuilds a run's data from what the run recorded, with overrides.

    The source finds `args.evaluation` (a `train.sources.Evaluation`): the
    split wanted (None: test if the run has test data, else validation),
    the record, and which flags were overridden.
    """
    import models
    from train import sources

    family = models.get_family(record["model"])
    config = family.config.with_overrides(**record["config"])
    source = sources.get_source(type(config).input_kind)
    args = argparse.Namespace(**record.get("source_args", {}))
    for key, value in (source_overrides or {}).items():
        setattr(args, key, value)
    args.overridden = {"input_shape"}
    args.evaluation = sources.Evaluation(split, record, frozenset(source_overrides or {}))
    return source.load(args, config, record["seed"] if seed is None else seed)


def evaluate_runs(runs, split="test", out=None, source_overrides=None):
    """Evaluates one run, or averages the probabilities of several.

    `split=None` takes the test data when there is any, else validation.
    """
    records_models = [load_run(run) for run in runs]
    names = {record["model"] for record, _ in records_models}
    if len(names) != 1:
        raise ValueError(f"--runs mixes models {sorted(names)}; an ensemble needs one model")
    first = records_models[0][0]
    for run, (record, _) in zip(runs[1:], records_models[1:]):
        shape, first_shape = record["config"].get("input_shape"), first["config"].get("input_shape")
        if shape != first_shape:
            raise ValueError(
                f"--runs: {run} takes input_shape {shape} but {runs[0]} takes {first_shape}; "
                "an ensemble needs one input"
            )
    data = run_data(first, source_overrides, split=split)
    if split is None:
        split = "test" if data.test is not None else "val"
    if _input_kind(first["model"]) == "frame_scores":
        from train import frame_scores

        report = frame_scores.evaluate_runs(records_models, data, split)
    else:
        dataset = getattr(data, split)
        if dataset is None:
            raise ValueError(f"the data has no {split} split")
        all_probabilities, labels = [], None
        for record, model in records_models:
            probabilities, labels = predict_probabilities(model, record["model"], dataset)
            all_probabilities.append(probabilities)
        report = classification_report(np.mean(all_probabilities, axis=0), labels, data.class_names)
    report["runs"] = list(runs)
    report["split"] = split
    if out is not None:
        from train.callbacks import write_json

        os.makedirs(out, exist_ok=True)
        write_report(report, out, prefix=split)
        write_json(os.path.join(out, "metrics.json"), {f"{split}_{k}": v for k, v in report["summary"].items()})
    return report


def build_parser(model_name=None):
    import models
    from train import sources

    parser = ArgumentParser(
        prog="python -m train.evaluate",
        description="Evaluate one run, or an ensemble of runs by averaging their "
        "probabilities. Data flags default to what the first run recorded.",
    )
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (one or more)")
    parser.add_argument(
        "--subset", choices=("test", "val"), default=None,
        help="data to evaluate on; without it, the test data when there is any, else validation",
    )
    parser.add_argument("--out", default=None, help="folder for the report; without it, the first run")
    if model_name is not None:
        family = models.get_family(model_name)
        group = parser.add_argument_group("data (overrides what the run recorded)")
        sources.get_source(type(family.config).input_kind).add_arguments(group)
        for action in group._group_actions:
            action.default = argparse.SUPPRESS
    return parser


def main(argv=None):
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--runs", nargs="+")
    known, _ = peek.parse_known_args(argv)
    model_name = None
    if known.runs:
        model_name = load_record(known.runs[0])["model"]
    args = build_parser(model_name).parse_args(argv)
    fixed = {"runs", "subset", "out"}
    overrides = {k: v for k, v in vars(args).items() if k not in fixed}
    out = args.out or args.runs[0]
    report = evaluate_runs(args.runs, args.subset, out=None, source_overrides=overrides)
    os.makedirs(out, exist_ok=True)
    prefix = f"evaluate_{report['split']}"
    write_report(report, out, prefix=prefix)
    print(json.dumps(report["summary"], indent=2))
    if report.get("kind") == "frame_scores":
        from train import frame_scores

        print(frame_scores.comparison_table(report))
    print(f"report: {os.path.join(out, f'{prefix}_report.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))
