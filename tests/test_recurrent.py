"""FusedLSTM computes what keras.layers.LSTM computes, with its weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from models.recurrent import FusedLSTM

LENGTHS = np.array([7, 4, 1, 6])
STEPS, FEATURES, UNITS = 7, 5, 3


def inputs_and_mask(seed=0, garbage=0.0):
    rng = np.random.default_rng(seed)
    mask = np.arange(STEPS)[None, :] < LENGTHS[:, None]
    x = rng.normal(size=(len(LENGTHS), STEPS, FEATURES)).astype("float32")
    # Padded steps hold garbage: a masked LSTM must not read them.
    x = np.where(mask[..., None], x, garbage).astype("float32")
    return x, mask


def pair(wrapper, seed=1, **kwargs):
    """A Keras LSTM and a FusedLSTM with the same weights, optionally both
    inside `Bidirectional`."""
    keras.utils.set_random_seed(seed)
    reference = keras.layers.LSTM(UNITS, **kwargs)
    fused = FusedLSTM(UNITS, fused=True, **kwargs)
    if wrapper:
        reference, fused = keras.layers.Bidirectional(reference), keras.layers.Bidirectional(fused)
    shape = (len(LENGTHS), STEPS, FEATURES)
    reference.build(shape)
    fused.build(shape)
    fused.set_weights(reference.get_weights())
    return reference, fused


@pytest.mark.parametrize("wrapper", [False, True], ids=["lstm", "bidirectional"])
@pytest.mark.parametrize(
    "kwargs",
    [dict(return_sequences=True), dict(), dict(go_backwards=True, return_sequences=True),
     dict(return_sequences=True, return_state=True)],
    ids=["sequences", "last", "backwards", "states"],
)
def test_outputs_and_gradients_equal_keras_lstm_with_masks(wrapper, kwargs):
    if wrapper and kwargs.get("go_backwards"):
        pytest.skip("Bidirectional sets go_backwards itself")
    reference, fused = pair(wrapper, **kwargs)
    x, mask = inputs_and_mask(garbage=50.0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x := tf.constant(x))
        expected = tf.nest.flatten(reference(x, mask=mask))
        actual = tf.nest.flatten(fused(x, mask=mask))
        # Weigh the outputs so every element's gradient differs.
        weights = [np.random.default_rng(2).normal(size=e.shape).astype("float32")
                   for e in expected]
        loss_expected = sum(tf.reduce_sum(e * w) for e, w in zip(expected, weights))
        loss_actual = sum(tf.reduce_sum(a * w) for a, w in zip(actual, weights))
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=1e-5)
    # The row of length 1 and the full row differ, so masking is exercised.
    assert not np.allclose(expected[0][0], expected[0][2])
    for a, e in zip(
        tape.gradient(loss_actual, [x, *fused.trainable_weights]),
        tape.gradient(loss_expected, [x, *reference.trainable_weights]),
    ):
        np.testing.assert_allclose(a, e, atol=1e-5)


def test_masked_steps_keep_the_state_and_backward_starts_at_the_last_real_frame():
    reference, fused = pair(True, return_sequences=True)
    x, mask = inputs_and_mask()
    full = np.asarray(fused(x, mask=mask))
    # Row 1 (4 real frames) alone, cut to its length: the same outputs.
    alone = np.asarray(fused(x[1:2, :4], mask=mask[1:2, :4]))
    np.testing.assert_allclose(full[1, :4], alone[0], atol=1e-5)
    # Bidirectional with return_sequences zeroes the padded outputs.
    np.testing.assert_array_equal(full[1, 4:], 0.0)


def test_dropout_in_training_matches_keras_with_the_same_seed():
    x, mask = inputs_and_mask()
    outputs = []
    for layer_class in (keras.layers.LSTM, FusedLSTM):
        keras.utils.set_random_seed(3)
        layer = layer_class(UNITS, dropout=0.5, return_sequences=True, seed=7)
        outputs.append(np.asarray(layer(x, mask=mask, training=True)))
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)


def test_choice_of_loop():
    assert FusedLSTM(2).uses_fused_loop  # CPU: no cuDNN to keep
    assert not FusedLSTM(2, fused=False).uses_fused_loop
    assert not FusedLSTM(2, recurrent_dropout=0.1).uses_fused_loop
    with pytest.raises(ValueError, match="fused=True cannot run recurrent_dropout"):
        FusedLSTM(2, fused=True, recurrent_dropout=0.1)
    with pytest.raises(ValueError, match="fused must be one of"):
        FusedLSTM(2, fused="yes")


def test_bilstm_attention_weights_load_across_implementations(tmp_path):
    small = dict(
        input_shape=(None, 6), num_classes=3, projection_dim=8, lstm_layers=2, lstm_units=5,
        attention_heads=2, attention_key_dim=4, pooling_dim=4, classifier_units=(8, 6, 4),
    )
    keras.utils.set_random_seed(0)
    keras_model = models.build("bilstm_attention", lstm_implementation="keras", **small)
    path = str(tmp_path / "keras_lstm.weights.h5")
    keras_model.save_weights(path)
    fused_model = models.build("bilstm_attention", lstm_implementation="fused", **small)
    fused_model.load_weights(path)
    assert [w.shape for w in fused_model.weights] == [w.shape for w in keras_model.weights]
    x, mask = inputs_and_mask()
    features = np.random.default_rng(4).normal(size=(4, STEPS, 6)).astype("float32")
    feed = {"features": features * mask[..., None], "mask": mask}
    np.testing.assert_allclose(fused_model(feed), keras_model(feed), atol=1e-5)
    with pytest.raises(ValueError, match="lstm_implementation must be one of"):
        models.get_config("bilstm_attention", lstm_implementation="cudnn")
