"""Every custom layer of the suite passes `run_layer_test`, every custom loss
and metric a config and `.keras` round trip; a registered object without a
case here fails `test_every_registered_object_has_a_case`."""

import keras
import numpy as np
import pytest

import models  # noqa: F401  (registers every custom object)
from models import (
    backbones, bilstm_attention, convlstm, keyframe_transformer, losses, perceiver, recurrent,
)
from tests.layer_test import run_layer_test

RNG = np.random.default_rng(0)


def floats(*shape):
    return RNG.normal(size=shape).astype("float32")


MASK = np.array([[True, True, True, False], [True, True, False, False]])

# (layer class, init kwargs, inputs, expected output shape, call kwargs, float32 output)
CASES = [
    (keyframe_transformer.ZeroPaddedSteps, {}, [floats(2, 4, 3), MASK], (2, 4, 3), {}, False),
    (keyframe_transformer.FramesToImages, {}, floats(2, 3, 8, 8, 3), (6, 8, 8, 3), {}, False),
    (keyframe_transformer.ImagesToFrames, {}, [floats(6, 5), floats(2, 3, 8, 8, 3)],
     (2, 3, 5), {}, False),
    (keyframe_transformer.SinusoidalPositionEncoding, {}, floats(2, 4, 6), (2, 4, 6), {}, False),
    (keyframe_transformer.TemporalSelfAttention, dict(num_heads=2, key_dim=4, window=1),
     floats(2, 4, 8), (2, 4, 8), {"padding_mask": MASK}, False),
    (keyframe_transformer.TemporalAttentionMask, dict(window=1), MASK, (2, 1, 4, 4), {}, False),
    (keyframe_transformer.MaskedFrameScores, {}, [floats(2, 4, 1), MASK], (2, 4), {}, False),
    (bilstm_attention.NonEmptyMask, {}, MASK, (2, 4), {}, False),
    (bilstm_attention.KeyPaddingMask, {}, MASK, (2, 1, 4), {}, False),
    (bilstm_attention.AttentionPooling, dict(hidden_dim=4, dropout=0.2), floats(2, 4, 6), (2, 6),
     {"mask": MASK}, False),
    (recurrent.FusedLSTM, dict(units=3, return_sequences=True, fused=True), floats(2, 4, 5),
     (2, 4, 3), {"mask": MASK}, False),
    (backbones.ResNetPreprocessing, {}, floats(2, 8, 8, 3), (2, 8, 8, 3), {}, False),
    (perceiver.GEGLUFeedForward, dict(multiplier=2), floats(2, 5, 8), (2, 5, 8), {}, False),
    (perceiver.CrossAttentionBlock, dict(num_heads=1, head_dim=8),
     (floats(2, 4, 8), floats(2, 6, 8)), (2, 4, 8), {}, False),
    (perceiver.SelfAttentionBlock, dict(num_heads=2, head_dim=4), floats(2, 4, 8), (2, 4, 8),
     {}, False),
    (perceiver.Perceiver, dict(num_latents=4, latent_dim=8, cross_blocks=1, self_blocks=1,
                               cross_head_dim=8, self_heads=2, self_head_dim=4),
     floats(2, 6, 8), (2, 8), {}, False),
    (perceiver.VideoPositionEncoding, {}, floats(2, 2, 3, 3, 12), (2, 2, 3, 3, 12), {}, False),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0].__name__ for case in CASES])
def test_layer(case, tmp_path):
    layer_cls, init_kwargs, inputs, shape, call_kwargs, float32_output = case
    run_layer_test(layer_cls, init_kwargs, inputs, shape, tmp_path, call_kwargs, float32_output)


LABELS = np.array([0, 2, 1, 2])
LOGITS = floats(4, 3)
SCORES = np.array([[0.1, 0.9, 0.4, -1.0], [0.8, 0.2, 0.5, 0.3]], "float32")  # -1: padded
PREDICTED = RNG.uniform(size=(2, 4)).astype("float32")

# (loss, y_true, y_pred, output width of the model it trains, metric functions)
LOSS_CASES = [
    (losses.FocalLoss(gamma=1.5, label_smoothing=0.2), LABELS, LOGITS, 3, []),
    (losses.SpearmanRankingLoss(temperature=0.3, mse_weight=0.25), SCORES, PREDICTED, 4,
     [losses.masked_mean_squared_error]),
    (convlstm.SparseOrSoftCategoricalCrossentropy(from_logits=True), LABELS, LOGITS, 3, []),
]


@pytest.mark.parametrize("case", LOSS_CASES, ids=[type(c[0]).__name__ for c in LOSS_CASES])
def test_loss_round_trips(case, tmp_path):
    loss, y_true, y_pred, width, metrics = case
    value = float(loss(y_true, y_pred))
    assert np.isfinite(value)
    rebuilt = type(loss).from_config(loss.get_config())
    assert rebuilt.get_config() == loss.get_config()
    assert float(rebuilt(y_true, y_pred)) == pytest.approx(value, abs=1e-6)

    # Compiled into a model, saved and reloaded without custom_objects.
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(width)(inputs))
    model.compile(optimizer="sgd", loss=loss, metrics=[
        keras.metrics.MeanMetricWrapper(metric, name=metric.__name__) for metric in metrics])
    x = floats(len(y_true), 5)
    before = model.evaluate(x, y_true, verbose=0, return_dict=True)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(reloaded.loss) is type(loss) and reloaded.loss.get_config() == loss.get_config()
    after = reloaded.evaluate(x, y_true, verbose=0, return_dict=True)
    assert after == pytest.approx(before, abs=1e-6)


# (metric, mixed targets, predictions, the value by hand): mixed targets
# count for their dominant class (ties to the lower class / negative).
METRIC_CASES = [
    # Dominant classes 1, 0; predicted 1, 1.
    (convlstm.DominantClassAccuracy(), [[0.3, 0.7], [0.9, 0.1]], [[0.1, 0.9], [0.2, 0.8]], 0.5),
    # Dominant classes 2, 0; top 2 predicted {0, 1} (miss) and {2, 0} (hit).
    (convlstm.DominantClassTopKAccuracy(k=2), [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]],
     [[0.5, 0.3, 0.2], [0.3, 0.1, 0.6]], 0.5),
    # Dominant 1, 0, 0 (a 0.5 tie is negative); predicted 1, 1, 0.
    (convlstm.DominantClassBinaryAccuracy(), [[0.7], [0.2], [0.5]], [[0.9], [0.8], [0.3]], 2 / 3),
    # Dominant 1, 0, 1, 0: positives 0.9, 0.2 above negatives 0.4, 0.1 in 3 of 4 pairs.
    (convlstm.DominantClassAUC(num_thresholds=1001), [[0.8], [0.3], [0.6], [0.1]],
     [[0.9], [0.4], [0.2], [0.1]], 0.75),
]


@pytest.mark.parametrize("case", METRIC_CASES, ids=[type(c[0]).__name__ for c in METRIC_CASES])
def test_metric_values_and_round_trips(case, tmp_path):
    metric, y_true, y_pred, expected = case
    y_true, y_pred = np.array(y_true, "float32"), np.array(y_pred, "float32")
    metric.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-3)
    rebuilt = type(metric).from_config(metric.get_config())
    assert rebuilt.get_config() == metric.get_config()
    rebuilt.update_state(y_true, y_pred)
    assert float(rebuilt.result()) == pytest.approx(expected, abs=1e-3)

    # Compiled into a model, saved and reloaded without custom_objects.
    inputs = keras.Input((y_pred.shape[1],))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(optimizer="sgd", loss="mse", metrics=[type(metric).from_config(metric.get_config())])
    before = model.evaluate(y_pred, y_true, verbose=0, return_dict=True)
    model.save(tmp_path / "model.keras")
    after = keras.saving.load_model(tmp_path / "model.keras").evaluate(
        y_pred, y_true, verbose=0, return_dict=True)
    assert after == pytest.approx(before, abs=1e-6)
    assert before[metric.name] == pytest.approx(expected, abs=1e-3)


def test_masked_mean_squared_error_ignores_padded_steps():
    # Real steps only: ((0.1-0.5)^2 + (0.9-0.5)^2 + (0.4-0.5)^2) / 3 for row 0.
    value = np.asarray(losses.masked_mean_squared_error(SCORES[:1], np.full((1, 4), 0.5)))
    assert value == pytest.approx([(0.16 + 0.16 + 0.01) / 3], abs=1e-6)


def test_every_registered_object_has_a_case():
    registered = {
        name.split(">", 1)[1] for name in keras.saving.get_custom_objects()
        if name.startswith("video_suite>")
    }
    tested = (
        {case[0].__name__ for case in CASES}
        | {type(case[0]).__name__ for case in LOSS_CASES}
        | {type(case[0]).__name__ for case in METRIC_CASES}
        | {"masked_mean_squared_error"}
        | {"tf2_hard_sigmoid"}  # values and .keras round trip in tests/test_convlstm.py
    )
    assert registered - tested == set(), f"custom objects without a test: {registered - tested}"
