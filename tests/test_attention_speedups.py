"""The faster attention paths compute what the earlier ones computed."""

import keras
import numpy as np
import pytest

import models
from models.keyframe_transformer import TemporalAttentionMask, TemporalSelfAttention

MASK = np.arange(9)[None, :] < np.array([9, 6, 2])[:, None]


def inputs(seed=0):
    return np.random.default_rng(seed).normal(size=(3, 9, 8)).astype("float32")


@pytest.mark.parametrize("window", [None, 2])
@pytest.mark.parametrize("training, dropout", [(False, 0.3), (True, 0.0), (True, 0.3)])
def test_direct_attention_equals_multi_head_attention(window, training, dropout):
    layers = {}
    for implementation in ("keras", "direct"):
        keras.utils.set_random_seed(0)
        layers[implementation] = TemporalSelfAttention(
            num_heads=2, key_dim=4, window=window, dropout=dropout,
            implementation=implementation,
        )
    x = inputs()
    outputs = {}
    for implementation, layer in layers.items():
        keras.utils.set_random_seed(1)
        layer.build(x.shape)
        if implementation == "direct":
            layer.set_weights(layers["keras"].get_weights())
        keras.utils.set_random_seed(2)
        outputs[implementation] = np.asarray(layer(x, padding_mask=MASK, training=training))
    # The same dropout draws too: both use the attention layer's dropout.
    np.testing.assert_allclose(outputs["direct"], outputs["keras"], atol=1e-5)
    if training and dropout:
        # Dropout did act, and identically in both.
        assert not np.allclose(outputs["direct"], layers["direct"](x, padding_mask=MASK))
    shared = TemporalAttentionMask(window)(MASK)
    with_shared = layers["direct"](x, attention_mask=shared, training=False)
    np.testing.assert_allclose(with_shared, layers["keras"](x, padding_mask=MASK), atol=1e-5)


def test_shared_mask_is_padding_or_itself_within_the_window():
    mask = np.asarray(TemporalAttentionMask(window=2)(MASK))
    assert mask.shape == (3, 1, 9, 9)
    queries, keys = np.meshgrid(np.arange(9), np.arange(9), indexing="ij")
    for row in range(3):
        expected = (MASK[row][None, :] | (queries == keys)) & (abs(queries - keys) <= 2)
        np.testing.assert_array_equal(mask[row, 0], expected)


def test_keyframe_transformer_outputs_match_the_earlier_attention():
    config = dict(input_shape=(None, 12), model_dim=16, num_layers=2, num_heads=2, ff_dim=32,
                  local_window=2, scorer_units=16, dropout=0.0)
    keras.utils.set_random_seed(0)
    before = models.build("keyframe_transformer", attention_implementation="keras", **config)
    after = models.build("keyframe_transformer", **config)
    after.set_weights(before.get_weights())
    feed = {"features": np.random.default_rng(1).normal(size=(3, 9, 12)).astype("float32"),
            "mask": MASK}
    np.testing.assert_allclose(after(feed), before(feed), atol=1e-5)
    np.testing.assert_allclose(after(feed, training=True), before(feed, training=True), atol=1e-5)
