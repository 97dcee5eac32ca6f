"""The task abstraction: each kind's data loads from Python, no argparse."""

import numpy as np
import pytest

import models
from data.features import FeatureWriter
from train import tasks
from train.tasks.base import add_option_arguments, options_from_args
from train.tasks.clips import ClipOptions
from train.tasks.features import FeatureOptions
from train.tasks.frame_scores import FrameScoreOptions


def test_every_model_has_a_task_and_every_task_options():
    for name in models.NAMES:
        task = tasks.task_for(name)
        assert task.kind == type(models.get_family(name).config).input_kind
        assert task.Options is not None and task.Options()  # every option has a default
    assert set(tasks.kinds()) == {"clips", "features", "frame_scores"}
    with pytest.raises(ValueError, match="no task for input kind 'audio'"):
        tasks.get_task("audio")


def test_clips_load_from_python():
    config = models.get_config("convlstm", preset="tiny", batch_size=2)
    bundle = tasks.get_task("clips").load(ClipOptions(synthetic_clips=4), config, seed=0)
    inputs, labels = next(iter(bundle.train))
    assert inputs["frames"].shape == (2, 4, 12, 12, 2)
    assert bundle.class_names == ["horizontal", "vertical"]
    assert bundle.train_labels.tolist().count(0) == 2
    assert bundle.first_split() == "test"


def test_features_load_from_python(tmp_path):
    path = str(tmp_path / "f.h5")
    settings = {"backbone": "b", "weights": "none", "frames": 4, "size": [8, 8],
                "multi_scale": False, "steps": 4}
    writer = FeatureWriter(path, settings, ("a", "b"), 3, log=lambda line: None)
    writer.open()
    for i in range(8):
        writer.append(np.full((2 + i % 3, 3), i, np.float32), i % 2, f"/v/{i}.mp4",
                      "test" if i >= 6 else "train")
    writer.finish()
    config = models.get_config("bilstm_attention", preset="tiny", batch_size=4)
    bundle = tasks.get_task("features").load(FeatureOptions(features=path), config, seed=0)
    assert bundle.config_updates == {"input_shape": (None, 3), "num_classes": 2}
    assert bundle.info["rows"] == {"train": 4, "val": 2, "test": 2}
    inputs, labels = next(iter(bundle.test))
    np.testing.assert_array_equal(inputs["mask"].numpy().sum(1), [2, 3])
    np.testing.assert_array_equal(inputs["features"].numpy()[:, 0, 0], [6, 7])


def test_frame_scores_load_from_python():
    config = models.get_config("keyframe_transformer", preset="tiny")
    options = FrameScoreOptions(synthetic_videos=6)
    bundle = tasks.get_task("frame_scores").load(options, config, seed=0)
    assert sum(len(keys) for keys in bundle.keys.values()) == 6
    inputs, targets = next(iter(bundle.train))
    assert inputs["features"].shape[-1] == 12
    padded = ~inputs["mask"].numpy()
    assert (targets.numpy()[padded] == -1.0).all()


def test_options_round_trip_through_the_command_line():
    import argparse

    parser = argparse.ArgumentParser()
    add_option_arguments(parser, ClipOptions)
    args = parser.parse_args(["--data", "videos/", "--split", "2", "--on-error", "fail"])
    assert options_from_args(ClipOptions, args) == ClipOptions(
        data="videos/", split=2, on_error="fail")
    with pytest.raises(SystemExit):
        parser.parse_args(["--split", "4"])


class ScoreStub:
    """A frame scorer whose score is one feature column."""

    def __init__(self, column):
        self.column = column

    def predict_on_batch(self, inputs):
        return np.where(inputs["mask"], inputs["features"][..., self.column], 0.0)


def test_a_frame_score_ensemble_averages_its_members_scores():
    from train.metrics import summarization as summary_eval

    config = models.get_config("keyframe_transformer", preset="tiny")
    task = tasks.get_task("frame_scores")
    bundle = task.load(FrameScoreOptions(synthetic_videos=6), config, seed=0)
    report = task.evaluate([("a", ScoreStub(0)), ("b", ScoreStub(1))], bundle, "test")
    keys = bundle.keys["test"]
    assert sorted(report["per_video"]) == sorted(keys)
    for key in keys:
        features = np.asarray(bundle.inputs[key], dtype=np.float64)
        mean = (features[:, 0] + features[:, 1]) / 2
        gtscore = np.asarray(bundle.videos[key].gtscore, dtype=np.float64)
        assert report["per_video"][key]["mse"] == pytest.approx(np.mean((mean - gtscore) ** 2))
        alone = np.mean((features[:, 0] - gtscore) ** 2)
        assert report["per_video"][key]["mse"] != pytest.approx(alone)
        expected = summary_eval.evaluate_video(
            mean, picks=bundle.videos[key].picks, n_frames=bundle.videos[key].n_frames,
            change_points=bundle.videos[key].change_points,
            n_frame_per_seg=bundle.videos[key].n_frame_per_seg,
            user_summary=bundle.videos[key].user_summary, gtscore=gtscore,
            annotator_scores=bundle.videos[key].user_scores,
        )
        assert report["per_video"][key] == pytest.approx(expected)
