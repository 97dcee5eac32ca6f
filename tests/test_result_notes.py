"""Results say what they are: the run's data, adapted inputs, low confidence."""

import numpy as np

from train.serving.prediction import (
    LOW_MARGIN, describe_result, flat_scores_note, margin_note, trained_on,
)
from train.tasks.clips import clip_window_encoder


def test_a_run_on_the_embedded_data_says_so_and_a_folder_run_does_not():
    described, note = trained_on({"data": {"data": "synthetic", "synthetic_task": "shape"},
                                  "class_names": ["disk", "square"], "preset": "demo"})
    assert described == {"data": "the embedded synthetic set (shape)",
                         "classes": ["disk", "square"], "preset": "demo"}
    assert "means nothing" in note
    described, note = trained_on({"data": {"data": "/videos/hmdb51"}, "class_names": ["run"]})
    assert described["data"] == "/videos/hmdb51" and note is None


def test_low_confidence_starts_below_the_margin():
    labels = ["a", "b", "c"]
    assert margin_note([0.55, 0.45, 0.0], labels) is None  # the margin apart
    assert margin_note([0.2, 0.549, 0.251], labels) is None
    assert margin_note([0.451, 0.549, 0.0], labels) == (
        "low confidence: b 0.549 and a 0.451 are within 0.1 of each other")
    assert margin_note([0.9], ["only"]) is None
    assert LOW_MARGIN == 0.1


def test_a_flat_score_curve_is_flagged():
    assert flat_scores_note(np.full(10, 0.02) + np.linspace(0, 0.049, 10)) is not None
    assert flat_scores_note(np.linspace(0.02, 0.08, 10)) is None


def test_a_four_channel_run_says_how_rgb_frames_are_adapted():
    record = {"model": "convlstm", "config": {"input_shape": [4, 8, 8, 4], "filters": [2, 2]}}
    assert "4-channel frames" in clip_window_encoder(record).adaptation
    record["config"]["input_shape"] = [4, 8, 8, 3]
    assert clip_window_encoder(record).adaptation is None


def test_the_command_line_describes_each_declared_section():
    result = {"sections": ["labels", "timeline"], "top": [{"label": "a", "probability": 0.7}],
              "timeline": [{}, {}], "window": 5.0, "files": {"timeline_plot": "t.png"},
              "notes": ["low confidence: x"]}
    assert describe_result(result) == [
        "labels: a 0.700", "timeline: 2 windows of 5 s -> t.png", "note: low confidence: x"]
