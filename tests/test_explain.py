"""Explanations: what each model looked at, and `train.predict --explain`."""

import json
import os

import cv2
import keras
import numpy as np
import pytest

import models
from common.cli import run_main
from tests.prediction_fixtures import keyframe_run, make_run, write_scene_video
from tests.test_predict_cli import CLASSIFIERS, MOTION_CLASSES
from train import engine, predict
from train.serving import explain

# One worker runs the module: its module-scoped runs are built once.
pytestmark = pytest.mark.xdist_group("test_explain")

# (family, preset) -> the explanation's shape per example, by hand:
HEATMAP_SHAPES = {
    # (4, 12, 12) frames, 3x3 valid ConvLSTM -> 10x10, max-pool -> 5x5: the
    # input of conv_lstm_2.
    ("convlstm", "tiny"): (4, 5, 5),
    # (3, 18, 18): 16x16 -> 8x8, then 6x6 -> 3x3: the input of conv_lstm_3.
    ("convlstm", "tiny_3_layers"): (3, 3, 3),
    # (4, 16, 16), 3 blocks: the stem halves space, the third block (stage
    # 2) halves time and space: (2, 4, 4).
    ("r2plus1d", "tiny"): (2, 4, 4),
    # One block: the stem's (4, 8, 8) token grid.
    ("r2plus1d_perceiver", "tiny"): (4, 8, 8),
}


def tiny_model(name, preset="tiny"):
    family = models.get_family(name)
    config = family.get_config(preset)
    return family.build(config), family.example_batch(config, 2, 0)[0]


@pytest.mark.parametrize("name, preset", list(HEATMAP_SHAPES))
def test_heat_maps_have_the_feature_maps_shape_and_peak_at_one(name, preset):
    model, inputs = tiny_model(name, preset)
    explainer = explain.explainer_for(model, {"model": name})
    maps = explainer(inputs)
    assert explainer.kind == "heatmap"
    assert maps.shape == (2, *HEATMAP_SHAPES[name, preset])
    assert maps.min() >= 0
    for example in maps:  # scaled to 1 at the clip's maximum, or all 0
        assert example.max() == pytest.approx(1.0) or example.max() == 0


def test_grad_cam_of_an_average_pooled_map_is_the_class_weighted_map():
    # Through a global average pool, d logit_c / d A[t, h, w, k] = W[k, c] / N
    # everywhere, so Grad-CAM is relu(A . W[:, c]) up to scale.
    model, inputs = tiny_model("r2plus1d")
    explainer = explain.explainer_for(model, {"model": "r2plus1d"})
    features = keras.Model(model.input, model.get_layer("average_pool").input)(inputs)
    features = np.asarray(features, np.float64)
    kernel = np.asarray(model.get_layer("probabilities").kernel, np.float64)
    chosen = np.argmax(np.asarray(model(inputs)), axis=-1)
    for index, example in enumerate(explainer(inputs)):
        expected = np.maximum(features[index] @ kernel[:, chosen[index]], 0)
        expected /= expected.max()
        np.testing.assert_allclose(example, expected, atol=1e-4)


def test_attention_pooling_weights_are_the_ones_the_model_pools_with():
    model, inputs = tiny_model("bilstm_attention")
    inputs["mask"] = np.asarray(inputs["mask"]).copy()
    inputs["mask"][1, -2:] = False
    weights = explain.explainer_for(model, {"model": "bilstm_attention"})(inputs)
    pooling = model.get_layer("attention_pooling")
    values, pooled = keras.Model(model.input, [pooling.input[0], pooling.output])(inputs)
    assert weights.shape == inputs["mask"].shape
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert (weights[1, -2:] == 0).all()
    np.testing.assert_allclose(
        np.einsum("bt,btd->bd", weights, np.asarray(values)), np.asarray(pooled), atol=1e-5
    )


def test_keyframe_attention_is_a_curve_over_the_real_frames():
    model, inputs = tiny_model("keyframe_transformer")
    explainer = explain.explainer_for(model, {"model": "keyframe_transformer"})
    steps = inputs["mask"].shape[1]
    padded = {"features": np.asarray(inputs["features"]).copy(), "mask": np.ones((2, steps), bool)}
    padded["mask"][1, -3:] = False
    padded["features"][1, -3:] = 7.0  # whatever padding holds does not matter
    curve = explainer(padded)
    assert explainer.kind == "curve" and curve.shape == (2, steps)
    np.testing.assert_allclose(curve.sum(axis=1), 1.0, atol=1e-5)
    assert (curve[1, -3:] == 0).all()
    alone = explainer({"features": padded["features"][1:, :-3], "mask": np.ones((1, steps - 3), bool)})
    np.testing.assert_allclose(curve[1, :-3], alone[0], atol=1e-5)


def test_a_model_without_an_explanation_is_refused(tmp_path, capsys):
    model, _ = tiny_model("r2plus1d_perceiver", "tiny_tokens")
    with pytest.raises(ValueError, match="has no cross-attention"):
        explain.explainer_for(model, {"model": "r2plus1d_perceiver"})
    one_layer = models.get_family("convlstm").build(
        models.get_config("convlstm", "tiny", filters=(3,)))
    with pytest.raises(ValueError, match="one-layer convlstm has no feature map over time"):
        explain.explainer_for(one_layer, {"model": "convlstm"})
    run = make_run(str(tmp_path / "run"), "r2plus1d_perceiver", {"data": "synthetic"},
                   ["a", "b", "c"], preset="tiny_tokens")
    video = str(tmp_path / "clip.mp4")
    write_scene_video(video, seconds=1.0, scenes=1, size=(32, 48))
    with pytest.raises(SystemExit) as stop:
        run_main(predict.main, ["--run", run, "--video", video, "--explain"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --explain:"), lines
    assert not os.path.exists(os.path.join(run, "predictions"))


def test_resample_takes_each_frames_time_step():
    maps = np.stack([np.full((2, 3), value, np.float32) for value in (0.0, 1.0, 2.0)])
    out = explain.resample(maps, 6, 4, 6)
    assert out.shape == (6, 4, 6)
    assert out[:, 0, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain")
    video = str(folder / "scenes.mp4")
    write_scene_video(video, seconds=3.0, fps=25.0, scenes=3)
    found = {
        name: make_run(str(folder / f"run_{name}"), name, data, MOTION_CLASSES, **overrides)
        for name, (data, overrides) in CLASSIFIERS.items()
    }
    found["keyframe_transformer"] = keyframe_run(str(folder / "run_keyframe"))
    return video, found


@pytest.mark.parametrize("name", [
    *CLASSIFIERS,
    # Scoring also renders the VP9 summary.
    pytest.param("keyframe_transformer", marks=pytest.mark.slow),
])
def test_predict_explain_writes_an_overlay_video_a_strip_and_the_values(name, runs, tmp_path, capsys):
    video, found = runs
    code = predict.main(["--run", found[name], "--video", video, "--out", str(tmp_path),
                         "--window", "1", "--stride", "1", "--explain"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    files = result["files"]
    with open(files["explanation"]) as file:
        record = json.load(file)
    with open(files["result"]) as file:
        assert json.load(file)["explanation"] == result["explanation"]
    kind = "curve" if name in ("bilstm_attention", "keyframe_transformer") else "heatmap"
    assert result["explanation"]["kind"] == record["kind"] == kind
    if name == "keyframe_transformer":  # every sampled frame: 2 per second of 3 s
        assert record["frames"] == [0, 12, 25, 38, 50, 62]
        frames = 6
    else:  # three 1-second windows, each the model's steps
        config = models.get_config(name, "tiny", **CLASSIFIERS[name][1])
        # bilstm_attention: 16 sampled frames at the scales 1, 0.85 and 1.15
        # give 16, 13 and 18 steps; every step of the longest is drawn.
        steps = 18 if name == "bilstm_attention" else config.input_shape[0]
        frames = 3 * steps
        assert record["windows"] == [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    assert len(record["times"]) == frames
    if kind == "curve":
        assert len(record["weights"]) == frames and min(record["weights"]) >= 0
    else:
        assert len(record["frame_heat"]) == frames
    capture = cv2.VideoCapture(files["explanation_video"])
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    ok, first = capture.read()
    capture.release()
    assert ok and min(first.shape[:2]) == 144  # the display size: the video's own 144x256
    assert cv2.imread(files["explanation_strip"]) is not None


def shape_weight_ratio(clips, maps):
    """Per clip: the mean heat on the moving shape's pixels over the mean on
    the background's. The synthetic shapes are drawn at 170-250 over a
    background of 40-90 (noise sd 12), so a pixel brighter than 130 on
    average over the channels is the shape's."""
    ratios = []
    for clip, heat in zip(clips, maps):
        heat = explain.resample(heat, *clip.shape[:3])
        shape = clip.astype(np.float32).mean(axis=-1) > 130
        ratios.append(heat[shape].mean() / max(heat[~shape].mean(), 1e-6))
    return np.asarray(ratios)


@pytest.mark.slow
def test_grad_cam_puts_more_weight_on_the_moving_shape_than_on_the_background():
    # convlstm, the cheapest to train; r2plus1d's Grad-CAM is the same code,
    # checked against its closed form above.
    name, overrides = "convlstm", dict(filters=(4, 8))
    from data import synthetic

    keras.utils.set_random_seed(0)
    shape = (8, 24, 24, 3)
    clips, labels, _ = synthetic.synthetic_clips(32, *shape, num_classes=2, task="motion", seed=1)
    held_out, _, _ = synthetic.synthetic_clips(8, *shape, num_classes=2, task="motion", seed=2)
    family = models.get_family(name)
    model = family.build(family.get_config("tiny", input_shape=shape, num_classes=2, **overrides))
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    engine.build_optimizer(model)
    model.fit({"frames": clips / np.float32(255)}, labels, epochs=3, batch_size=8, verbose=0)
    maps = explain.explainer_for(model, {"model": name})({"frames": held_out / np.float32(255)})
    ratios = shape_weight_ratio(held_out, maps)
    assert np.median(ratios) > 1.5 and (ratios > 1).mean() >= 0.75, ratios
