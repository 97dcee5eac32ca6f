"""Bad input named in one line: the flag or file, and what was expected."""

import json
import os
import shutil

import numpy as np
import pytest

from tests import video_files
from tests.cli_calls import call
from tests.prediction_fixtures import make_run
from train import predict
from train import run as run_cli
from train.serving.streaming import StreamResult
from train.tasks import keyframes

SYNTHETIC_FEATURES = {
    "data": "synthetic features", "backbone": "block_mean_6x8", "max_frames": 18,
    "synthetic": {"frames": 16, "size": [48, 64], "grid": [6, 8], "multi_scale": True,
                  "scale_source": "sampled"},
}


def one_line(main, argv, capsys):
    code, _, err = call(main, argv, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()[len("error: "):]


def test_stream_fps_names_itself(tmp_path, capsys):
    video = video_files.write_video(str(tmp_path / "v.mp4"), num_frames=4)
    for value in ("0", "-1", "nan"):
        message = one_line(predict.main, ["--run", str(tmp_path), "--video", video, "--stream",
                                          "--stream-fps", value], capsys)
        assert message == ("--stream-fps must be a number of frames per second > 0, got "
                           f"{float(value)}")


def test_the_ratio_advice_names_a_ratio_that_works():
    scores, picks = [0.5, 0.4], [0, 2]
    shots = np.array([[0, 4]])
    with pytest.raises(ValueError) as error:
        keyframes.select_keyshots(scores, picks, 5, shots, 0.15)
    assert str(error.value) == ("--ratio 0.15 of a 5-frame video is less than one frame; use a "
                                "--ratio of at least 0.2 (and below 1); the video needs at "
                                "least 7 frames at this ratio")
    keyframes.select_keyshots(scores, picks, 5, shots, 0.2)  # the advice works
    with pytest.raises(ValueError, match="a 1-frame video is too short to summarize"):
        keyframes.select_keyshots([0.5], [0], 1, np.array([[0, 0]]), 0.15)


def test_backbone_weights_are_never_ignored(tmp_path, capsys):
    video = video_files.write_video(str(tmp_path / "v.mp4"), num_frames=6)
    features_run = make_run(str(tmp_path / "bilstm"), "bilstm_attention", SYNTHETIC_FEATURES,
                            input_shape=(None, 144), num_classes=3)
    message = one_line(predict.main, ["--run", features_run, "--video", video,
                                      "--backbone-weights", "/etc/passwd"], capsys)
    assert message.startswith("--backbone-weights /etc/passwd: the run's features come from the "
                              "block-mean encoder")
    keyframe_run = make_run(
        str(tmp_path / "keyframe"), "keyframe_transformer",
        {"data": "synthetic", "features": "synthetic_projection", "frame_size": [32, 32],
         "feature_dim": 12})
    message = one_line(predict.main, ["--run", keyframe_run, "--video", video,
                                      "--backbone-weights", "/etc/passwd"], capsys)
    assert message == ("--backbone-weights /etc/passwd: this run was trained on the embedded "
                       "data's own frame features; leave --backbone and --backbone-weights out")


def test_a_validation_share_that_leaves_no_training_video_is_named(tmp_path, capsys):
    root = tmp_path / "videos"
    video_files.write_class_tree(str(root), {"a": ["1.mp4", "2.mp4"], "b": ["3.mp4", "4.mp4"]})
    message = one_line(run_cli.main, ["--model", "convlstm", "--data", str(root),
                                       "--val-fraction", "0.99", "--out", str(tmp_path / "run")],
                       capsys)
    assert message == (f"--val-fraction 0.99 holds out every training video of --data {root} "
                       "for validation (4 videos); use a smaller --val-fraction")
    assert not (tmp_path / "run").exists()


def test_a_one_sigmoid_stream_says_which_class_its_probability_is_of():
    result = StreamResult("v.mp4", 10.0, np.arange(2), np.array([[0.2], [0.7]]), ["cat", "dog"])
    data = result.to_json()
    assert data["columns"] == ["dog"]
    assert data["note"] == ("one sigmoid output: each probability is of class 'dog'; 'cat' has "
                            "one minus it")
    several = StreamResult("v.mp4", 10.0, np.arange(1), np.array([[0.2, 0.3, 0.5]]),
                           ["a", "b", "c"]).to_json()
    assert several["columns"] == ["a", "b", "c"] and "note" not in several


def test_an_ensemble_folder_given_as_a_run_points_to_its_members(tmp_path, capsys):
    video = video_files.write_video(str(tmp_path / "v.mp4"), num_frames=6)
    ensemble = tmp_path / "ensemble"
    for index in range(2):
        os.makedirs(ensemble / f"member_{index}")
        (ensemble / f"member_{index}" / "config.json").write_text(
            json.dumps({"model": "convlstm", "config": {}}))
    message = one_line(predict.main, ["--run", str(ensemble), "--video", video], capsys)
    assert message == (
        f"{ensemble}: an ensemble folder (members member_0, member_1), not one run; pass one "
        f"member, e.g. {ensemble / 'member_0'} (train.evaluate --runs {ensemble / 'member_*'} "
        "evaluates them together)")
