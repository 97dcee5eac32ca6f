"""The streaming ConvLSTM: the frame-by-frame model, its exports and a video
streamed through it, each against the clip model."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from data import video as video_lib
from models import convlstm
from train.formats import streaming
from train.serving.streaming import stream_video

STREAMING = models.get_family("convlstm").streaming


def clip_model(preset, seed=0, **overrides):
    """A tiny clip model with batch-norm statistics away from 0 and 1, so
    the step's inference-mode batch norm is exercised."""
    keras.utils.set_random_seed(seed)
    config = models.get_config("convlstm", preset=preset, **overrides)
    model = models.build_from_config("convlstm", config)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.3, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.2, 2.0, layer.moving_variance.shape))
    return model, config


def clips_of(config, count, seed=1):
    inputs, _ = models.get_family("convlstm").example_batch(config, count, seed)
    return inputs["frames"]


@pytest.mark.parametrize("preset", ["tiny", "tiny_3_layers"])
def test_the_step_model_gives_the_clip_models_output_after_every_frame(preset):
    model, config = clip_model(preset)
    clips = clips_of(config, 3)
    per_frame = streaming.stream_clips(streaming.KerasStepper(model, config, STREAMING), clips)
    steps = config.input_shape[0]
    assert per_frame.shape == (3, steps, max(config.num_classes, 1))
    np.testing.assert_allclose(per_frame[:, -1], model({"frames": clips}), atol=1e-5, rtol=0)
    # After frame t: the clip model (same weights) on the first t frames.
    for t in range(1, steps):
        prefix_config = models.get_config(
            "convlstm", preset=preset, input_shape=(t, *config.input_shape[1:])
        )
        prefix = models.build_from_config("convlstm", prefix_config)
        prefix.set_weights(model.get_weights())
        np.testing.assert_allclose(
            per_frame[:, t - 1], prefix({"frames": clips[:, :t]}), atol=1e-5, rtol=0
        )


def test_the_step_model_refuses_another_models_weights():
    model, _ = clip_model("tiny")
    other = models.get_config("convlstm", preset="tiny", filters=(5, 4))
    with pytest.raises(ValueError, match="conv_lstm_1"):
        convlstm.convlstm_step_from(model, other)


@pytest.mark.slow
@pytest.mark.parametrize("format_name", ["saved_model"])  # litert: tests/test_export_cli.py
def test_streaming_exports_reproduce_the_clip_model(format_name, tmp_path):
    model, config = clip_model("tiny")
    clips = clips_of(config, 2)
    written = streaming.write(format_name, model, config, STREAMING, str(tmp_path))
    stepper = streaming.load_stepper(format_name, str(tmp_path))
    states = stepper.init(2)
    assert {name: value.shape for name, value in states.items()} == {
        name: (2, *shape) for name, shape in convlstm.convlstm_state_shapes(config).items()
    }
    assert all(not value.any() for value in states.values())
    per_frame = streaming.stream_clips(stepper, clips)
    np.testing.assert_allclose(per_frame[:, -1], model({"frames": clips}), atol=1e-5, rtol=0)
    if format_name == "saved_model":
        loaded = tf.saved_model.load(written.path)
        assert set(loaded.signatures) == {"init_state", "step", "serving_default"}
        step_inputs = loaded.signatures["step"].structured_input_signature[1]
        assert sorted(step_inputs) == ["c_1", "c_2", "frame", "h_1", "h_2"]
        assert sorted(loaded.signatures["step"].structured_outputs) == [
            "c_1", "c_2", "h_1", "h_2", "probabilities"]
    else:
        from ai_edge_litert.interpreter import Interpreter

        signatures = Interpreter(model_path=written.path).get_signature_list()
        assert sorted(signatures) == ["init_state", "step"]


def write_moving_video(path, frames=12, size=(30, 40), fps=10.0):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(frames, *size, 3), dtype=np.uint8)
    images[:, :, :8] = (np.arange(frames) * 20).reshape(-1, 1, 1, 1).astype(np.uint8)
    return video_lib.write_video(str(path), images, fps=fps, fourcc="MJPG")


def test_stream_video_gives_the_clip_models_probability_after_every_frame(tmp_path):
    model, config = clip_model("tiny", input_shape=(12, 16, 16, 3), num_classes=3)
    record = {"model": "convlstm", "config": config.to_dict(), "class_names": ["a", "b", "c"]}
    path = write_moving_video(tmp_path / "clip.avi")
    result = stream_video(model, record, path)
    assert result.frames.tolist() == list(range(12))
    assert result.probabilities.shape == (12, 3)
    np.testing.assert_allclose(result.probabilities.sum(-1), 1.0, atol=1e-5)
    assert result.times[:3] == [0.0, 0.1, 0.2]
    # The frames the stream decoded are the reader's, so the last
    # probability is the clip model's on the whole video.
    frames, _, _ = video_lib.read_frames(path, list(range(12)), (16, 16))
    clip = model({"frames": frames[None].astype("float32") / 255.0})
    np.testing.assert_allclose(result.probabilities[-1], np.asarray(clip)[0], atol=1e-5, rtol=0)
    body = result.to_json()
    assert body["class_names"] == ["a", "b", "c"] and len(body["frames"]) == 12

    # Five frames a second of a 10 fps video: every other frame.
    half = stream_video(model, record, path, fps=5)
    assert half.frames.tolist() == [0, 2, 4, 6, 8, 10]


def test_stream_video_refuses_what_it_cannot_stream(tmp_path):
    model, config = clip_model("tiny")  # 2-channel frames
    record = {"model": "convlstm", "config": config.to_dict()}
    path = write_moving_video(tmp_path / "clip.avi")
    with pytest.raises(ValueError, match="2-channel frames; video frames are RGB"):
        stream_video(model, record, path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        stream_video(model, record, os.path.join(tmp_path, "missing.mp4"))
    with pytest.raises(ValueError, match="a r2plus1d run has no frame-by-frame form"):
        stream_video(model, {"model": "r2plus1d", "config": {}}, path)


@pytest.mark.slow
def test_predict_stream_writes_the_probability_after_every_frame(tmp_path, capsys):
    import json

    from common.cli import run_main
    from tests.prediction_fixtures import make_run
    from train import predict, run_folder

    run = make_run(tmp_path / "run", "convlstm", {"data": "synthetic"}, ["a", "b", "c"],
                   input_shape=(12, 16, 16, 3), num_classes=3)
    path = write_moving_video(tmp_path / "clip.avi")
    out = tmp_path / "out"
    assert predict.main(["--run", run, "--video", path, "--stream", "--stream-fps", "5",
                         "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    with open(out / "clip" / "stream.json") as file:
        written = json.load(file)
    assert printed["folder"] == str(out / "clip")
    assert [row["frame"] for row in written["frames"]] == [0, 2, 4, 6, 8, 10]
    assert [row["time"] for row in written["frames"]][:2] == [0.0, 0.2]
    record, model = run_folder.load_run(run)
    direct = stream_video(model, record, path, fps=5)
    np.testing.assert_allclose([row["probabilities"] for row in written["frames"]],
                               direct.probabilities, atol=1e-6)

    other = make_run(tmp_path / "other", "r2plus1d", {"data": "synthetic"})
    for argv, message in [
        (["--run", other, "--video", path, "--stream"], "a r2plus1d run has no frame-by-frame"),
        (["--run", run, "--video", str(tmp_path), "--stream"], "is a folder; stream one video"),
        (["--run", run, "--video", path, "--stream-fps", "5"], "--stream-fps is used only with"),
        (["--run", run, "--video", path, "--stream", "--explain"], "does not go with --stream"),
    ]:
        with pytest.raises(SystemExit) as stop:
            run_main(predict.main, argv + ["--out", str(tmp_path / "refused")])
        assert stop.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
    assert not os.path.exists(tmp_path / "refused" / "clip")
