"""The action-recognition metrics: top-1, top-5, mean class accuracy, F1, ROC AUC.

Example:

>>> probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
>>> report = classification_report(probabilities, np.array([0, 1, 1]), ["a", "b"])
>>> report["summary"]["accuracy"], report["summary"]["mean_class_accuracy"]
(0.6666666666666666, 0.75)
"""

import numpy as np


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
