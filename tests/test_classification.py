"""The action-recognition report against numbers worked out by hand."""

import numpy as np
import pytest

from train.metrics.classification import classification_report, roc_auc, two_columns

# Each example lists the six classes from most to least probable.
RANK_SCORES = [0.40, 0.25, 0.15, 0.10, 0.06, 0.04]
ORDERS = [
    [0, 1, 2, 3, 4, 5],  # label 0: top-1
    [1, 0, 2, 3, 4, 5],  # label 0: second
    [1, 0, 2, 3, 4, 5],  # label 1: top-1
    [0, 1, 3, 4, 5, 2],  # label 2: last, outside the top 5
    [2, 0, 1, 3, 4, 5],  # label 2: top-1
    [1, 0, 3, 2, 4, 5],  # label 3: third
]
LABELS = np.array([0, 0, 1, 2, 2, 3])  # classes 4 and 5 have no examples


def ranked_probabilities():
    probabilities = np.zeros((len(ORDERS), 6))
    for row, order in enumerate(ORDERS):
        probabilities[row, order] = RANK_SCORES
    return probabilities


def test_report_of_six_classes_matches_the_hand_count():
    report = classification_report(ranked_probabilities(), LABELS, list("abcdef"))
    # Predicted (argmax) 0, 1, 1, 0, 2, 1: right on examples 0, 2 and 4.
    assert report["confusion_matrix"] == [
        [1, 1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [1, 0, 1, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    per_class = report["per_class"]
    # precision = hits / predicted: 1/2, 1/3, 1/1, 0 (never predicted).
    assert [per_class[c]["precision"] for c in "abcd"] == pytest.approx([1 / 2, 1 / 3, 1.0, 0.0])
    # recall = hits / true: 1/2, 1/1, 1/2, 0/1.
    assert [per_class[c]["recall"] for c in "abcd"] == pytest.approx([1 / 2, 1.0, 1 / 2, 0.0])
    # F1 = 2PR / (P + R): 1/2, (2/3) / (4/3) = 1/2, 1 / 1.5 = 2/3, 0.
    assert [per_class[c]["f1"] for c in "abcd"] == pytest.approx([1 / 2, 1 / 2, 2 / 3, 0.0])
    assert [per_class[c]["support"] for c in "abcdef"] == [2, 1, 2, 1, 0, 0]
    summary = report["summary"]
    assert summary["examples"] == 6
    assert summary["accuracy"] == pytest.approx(3 / 6)
    # Only example 3 has its label outside the five most probable classes.
    assert summary["top5_accuracy"] == pytest.approx(5 / 6)
    # Means over the four classes that have examples.
    assert summary["mean_class_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2 + 0) / 4)
    assert summary["macro_f1"] == pytest.approx((1 / 2 + 1 / 2 + 2 / 3 + 0) / 4)
    assert "auc" not in summary


def test_roc_auc_counts_ties_half():
    scores = np.array([0.8, 0.6, 0.6, 0.3, 0.6, 0.2])
    labels = np.array([1, 1, 0, 1, 0, 0])
    # Positives 0.8, 0.6, 0.3 against negatives 0.6, 0.6, 0.2 (9 pairs):
    # 0.8 beats 3; 0.6 ties 2 and beats 1 (2); 0.3 beats 1 -> 6 / 9.
    assert roc_auc(scores, labels) == pytest.approx(6 / 9)
    assert roc_auc(1 - scores, labels) == pytest.approx(3 / 9)  # reversed ranking, ties stay
    assert np.isnan(roc_auc(scores, np.ones(6, int)))


def test_binary_report_has_auc_and_no_top5():
    sigmoid = np.array([[0.8], [0.6], [0.6], [0.3], [0.6], [0.2]])
    probabilities = two_columns(sigmoid)
    np.testing.assert_allclose(probabilities[:, 0], [0.2, 0.4, 0.4, 0.7, 0.4, 0.8])
    report = classification_report(probabilities, np.array([1, 1, 0, 1, 0, 0]), ["no", "yes"])
    summary = report["summary"]
    assert summary["auc"] == pytest.approx(6 / 9)
    # Predicted 1, 1, 1, 0, 1, 0: right on examples 0, 1, 5.
    assert summary["accuracy"] == pytest.approx(3 / 6)
    assert report["confusion_matrix"] == [[1, 2], [1, 2]]
    assert "top5_accuracy" not in summary
