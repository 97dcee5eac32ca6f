"""Multi-view testing with several videos per batch, each with several
views: a video's probabilities are the mean over its own views only, and
top-5 is reported from six classes up."""

import numpy as np
import pytest
import tensorflow as tf

from train.metrics.classification import average_views, classification_report
from train.tasks.classification import predict_probabilities
from train.tasks.clips import Views, view_batches

VIDEOS, CLIPS, CROPS = 5, 2, 3
VIEWS = CLIPS * CROPS


class Brightness:
    """A stand-in classifier: P(class 1) is a clip's mean pixel value. With
    `single`, its output is one array named by `output_names`, as a
    one-output Keras model gives."""

    output_names = ["probabilities"]

    def __init__(self, single=False):
        self.calls = []
        self.single = single

    def __call__(self, inputs, training="not given"):
        assert training is False
        frames = np.asarray(inputs["frames"])
        self.calls.append(frames.shape)
        positive = frames.reshape(len(frames), -1).mean(axis=1)
        probabilities = np.stack([1 - positive, positive], axis=1)
        return probabilities if self.single else {"probabilities": probabilities}


def view_values():
    """uint8 value of view v of video n: every video's views differ, and
    the videos' means differ too."""
    return np.array([[10 + 40 * n + 7 * v for v in range(VIEWS)] for n in range(VIDEOS)],
                    np.uint8)


def views_dataset():
    values = view_values()
    clips = np.broadcast_to(values[:, :, None, None, None, None], (VIDEOS, VIEWS, 2, 3, 3, 1))
    labels = np.arange(VIDEOS) % 2
    return tf.data.Dataset.from_tensor_slices((np.ascontiguousarray(clips), labels))


def test_each_video_averages_its_own_views_in_batches_of_several_videos():
    # 12 clips per model call: two videos of six views each per batch.
    batches = view_batches(views_dataset(), Views(CLIPS, CROPS), batch_size=12, binary=False)
    frames = [np.asarray(inputs["frames"]) for inputs, _ in batches]
    assert [f.shape[:2] for f in frames] == [(2, VIEWS), (2, VIEWS), (1, VIEWS)]
    np.testing.assert_allclose(frames[0][1, 2], view_values()[1, 2] / 255.0, rtol=1e-6)

    model = Brightness()
    probabilities, labels = predict_probabilities(model, "r2plus1d", batches, views=VIEWS)
    assert model.calls[0][0] == 2 * VIEWS  # the views of a batch's videos, in one call
    expected = view_values().astype(np.float64).mean(axis=1) / 255.0
    assert probabilities.shape == (VIDEOS, 2)
    np.testing.assert_allclose(probabilities[:, 1], expected, rtol=1e-5)
    np.testing.assert_allclose(probabilities[:, 0], 1 - expected, rtol=1e-5)
    assert labels.tolist() == [0, 1, 0, 1, 0]


def test_binary_views_keep_one_label_per_video():
    batches = view_batches(views_dataset(), Views(CLIPS, CROPS), batch_size=12, binary=True)
    targets = [np.asarray(target) for _, target in batches]
    assert [t.shape for t in targets] == [(2, 1), (2, 1), (1, 1)]
    probabilities, labels = predict_probabilities(Brightness(single=True), "r2plus1d", batches,
                                                  views=VIEWS)
    assert labels.dtype.kind == "i" and labels.tolist() == [0, 1, 0, 1, 0]
    expected = view_values().astype(np.float64).mean(axis=1) / 255.0
    np.testing.assert_allclose(probabilities[:, 1], expected, rtol=1e-5)


def test_a_batch_smaller_than_the_views_holds_one_video():
    batches = view_batches(views_dataset(), Views(CLIPS, CROPS), batch_size=4, binary=False)
    assert [int(inputs["frames"].shape[0]) for inputs, _ in batches] == [1] * VIDEOS


def test_average_views_groups_consecutive_rows_hand_worked():
    # Two videos of three views: rows 0-2 are video 0, rows 3-5 video 1.
    rows = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7],
                     [0.2, 0.8], [0.2, 0.8], [0.5, 0.5]])
    np.testing.assert_allclose(average_views(rows, 3), [[0.6, 0.4], [0.3, 0.7]])
    np.testing.assert_allclose(average_views(rows, 1), rows)


# -- top-5 from six classes up ----------------------------------------------------


def ranked(order_per_example, classes):
    """Probabilities listing the classes of each example from most to least
    probable, as `order_per_example` says."""
    scores = np.linspace(0.5, 0.05, classes)
    scores /= scores.sum()
    probabilities = np.zeros((len(order_per_example), classes))
    for row, order in enumerate(order_per_example):
        probabilities[row, order] = scores
    return probabilities


def test_five_classes_report_no_top5():
    probabilities = ranked([[4, 3, 2, 1, 0], [0, 1, 2, 3, 4]], 5)
    summary = classification_report(probabilities, np.array([0, 0]), list("abcde"))["summary"]
    assert "top5_accuracy" not in summary and summary["accuracy"] == 0.5


def test_six_classes_report_top5_counting_the_fifth_place():
    probabilities = ranked([
        [1, 2, 3, 4, 0, 5],  # label 0 fifth: a top-5 hit
        [1, 2, 3, 4, 5, 0],  # label 0 sixth: a miss
        [0, 1, 2, 3, 4, 5],  # label 0 first
        [5, 4, 3, 2, 1, 0],  # label 1 fifth
    ], 6)
    summary = classification_report(probabilities, np.array([0, 0, 0, 1]), list("abcdef"))["summary"]
    assert summary["top5_accuracy"] == pytest.approx(3 / 4)
    assert summary["accuracy"] == pytest.approx(1 / 4)


def test_report_rows_of_absent_classes_are_zero_and_counts_are_integers():
    probabilities = ranked([[0, 1, 2, 3, 4, 5], [1, 0, 2, 3, 4, 5], [2, 1, 0, 3, 4, 5]], 6)
    report = classification_report(probabilities, np.array([0, 0, 2]), list("abcdef"))
    assert report["class_names"] == list("abcdef")
    assert all(type(count) is int for row in report["confusion_matrix"] for count in row)
    # No example of b, d, e, f: zeros, not NaN (b is predicted once, wrongly).
    for absent in "bdef":
        assert report["per_class"][absent] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                               "support": 0}
    assert report["per_class"]["a"]["recall"] == 0.5 and report["per_class"]["c"]["f1"] == 1.0


def test_roc_auc_with_one_example_of_a_class():
    from train.metrics.classification import roc_auc

    # One positive ranked above two of three negatives; one negative.
    assert roc_auc(np.array([0.6, 0.9, 0.5, 0.1]), np.array([1, 0, 0, 0])) == pytest.approx(2 / 3)
    assert roc_auc(np.array([0.6, 0.9, 0.5, 0.1]), np.array([0, 1, 1, 1])) == pytest.approx(1 / 3)
    assert np.isnan(roc_auc(np.array([0.6, 0.9]), np.array([0, 0])))
