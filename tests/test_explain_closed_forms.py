"""Explanations against their closed forms: values, not only shapes.

- attention pooling: a model whose score is a known function of one input
  channel, so the weights are a softmax that must peak at a chosen frame;
- keyframe_transformer: the attention each frame receives, recomputed from
  the global attention layer's query and key kernels in NumPy;
- r2plus1d_perceiver: the cross-attention map, the mean over heads and
  latents of softmax(Q K^T / sqrt(d)) recomputed in NumPy for every cross
  block (two blocks of two heads here), then over the blocks.
"""

import keras
import numpy as np
import pytest

import models
from models.bilstm_attention import AttentionPooling
from train.serving import explain


def softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def layer_norm(x, layer):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    gamma, beta = (np.asarray(w, np.float64) for w in (layer.gamma, layer.beta))
    return (x - mean) / np.sqrt(variance + layer.epsilon) * gamma + beta


def projected(x, dense):
    """An EinsumDense [D, heads, dim] projection: [B, n, D] -> [B, n, heads, dim]."""
    kernel, bias = (np.asarray(w, np.float64) for w in (dense.kernel, dense.bias))
    return np.einsum("bnd,dhk->bnhk", x, kernel) + bias


def attention_weights(queries, keys, attention, allowed=None):
    """softmax(Q K^T / sqrt(d)) of a MultiHeadAttention: [B, heads, q, k]."""
    q = projected(queries, attention.query_dense)
    k = projected(keys, attention.key_dense)
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
    if allowed is not None:
        logits = np.where(allowed[:, None], logits, -np.inf)
    return softmax(logits)


def first_input(layer):
    value = layer.input
    return value[0] if isinstance(value, (list, tuple)) else value


# -- attention pooling -------------------------------------------------------------


def pooling_model(steps, width, gain):
    """features -> attention pooling whose score is gain * tanh(channel 0)."""
    features = keras.Input((steps, width), name="features")
    mask = keras.Input((steps,), dtype="bool", name="mask")
    pooling = AttentionPooling(hidden_dim=2, name="attention_pooling")
    pooled = pooling(features, mask=mask)
    probabilities = keras.layers.Dense(2, activation="softmax", name="probabilities")(pooled)
    model = keras.Model({"features": features, "mask": mask}, probabilities)
    hidden = np.zeros((width, 2), np.float32)
    hidden[0, 0] = 1.0
    pooling.hidden.set_weights([hidden, np.zeros(2, np.float32)])
    pooling.score.set_weights([np.array([[gain], [0.0]], np.float32), np.zeros(1, np.float32)])
    return model


def test_attention_pooling_weights_peak_where_the_score_does():
    steps, width, gain = 8, 3, 3.0
    model = pooling_model(steps, width, gain)
    features = np.random.default_rng(0).normal(size=(2, steps, width)).astype(np.float32)
    features[..., 0] = 0.0
    features[0, 5, 0] = 2.0       # example 0: frame 5 scores 3 tanh(2)
    features[1, 2, 0] = 1.0       # example 1: frame 2 scores 3 tanh(1)
    features[1, 6, 0] = 4.0       # padding: must not count
    mask = np.ones((2, steps), bool)
    mask[1, 6:] = False
    weights = explain.explainer_for(model, {"model": "bilstm_attention"})(
        {"features": features, "mask": mask})
    scores = gain * np.tanh(features[..., 0].astype(np.float64))
    expected = np.where(mask, softmax(np.where(mask, scores, -np.inf)), 0.0)
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    assert weights[0].argmax() == 5 and weights[1].argmax() == 2
    # Example 0 by hand: e^{3 tanh 2} / (e^{3 tanh 2} + 7).
    peak = np.exp(3 * np.tanh(2.0))
    assert weights[0, 5] == pytest.approx(peak / (peak + 7), abs=1e-6)
    assert weights[1, 6:].tolist() == [0.0, 0.0]


# -- keyframe_transformer: global attention received ------------------------------


def tiny(name, preset="tiny", **overrides):
    keras.utils.set_random_seed(0)
    family = models.get_family(name)
    config = family.get_config(preset, **overrides)
    return family.build(config), family.example_batch(config, 2, 0)[0]


def test_keyframe_attention_received_is_the_hand_computed_mean_over_heads_and_queries():
    model, inputs = tiny("keyframe_transformer")
    mask = np.ones(np.shape(inputs["mask"]), bool)
    mask[1, -3:] = False
    inputs = {"features": np.asarray(inputs["features"]), "mask": mask}
    layer = model.get_layer("global_attention")
    values = np.asarray(keras.Model(model.input, first_input(layer))(inputs), np.float64)
    steps = mask.shape[1]
    # A query attends to the real frames, and to itself when it is padding.
    allowed = mask[:, None, :] | np.eye(steps, dtype=bool)[None]
    weights = attention_weights(values, values, layer.attention, allowed)
    received = (weights * mask[:, None, :, None]).sum(axis=(1, 2)) * mask
    expected = received / received.sum(axis=1, keepdims=True)

    curve = explain.explainer_for(model, {"model": "keyframe_transformer"})(inputs)
    np.testing.assert_allclose(curve, expected, atol=2e-5)
    # The weights are far from uniform: the check tells them apart.
    assert np.ptp(expected[0]) > 0.01


# -- r2plus1d_perceiver: cross-attention -------------------------------------------


def test_perceiver_map_is_the_mean_of_the_softmax_over_heads_latents_and_blocks():
    model, inputs = tiny("r2plus1d_perceiver", cross_heads=2, cross_blocks=2, self_blocks=2)
    perceiver = model.get_layer("perceiver")
    tokens = keras.Model(model.input, first_input(perceiver))(inputs)
    grid = tuple(int(s) for s in model.get_layer("tokens").input.shape[1:4])
    array = np.asarray(tokens, np.float64)
    x = keras.ops.broadcast_to(perceiver.latents[None], (len(array), *perceiver.latents.shape))
    maps = []
    for index, cross in enumerate(perceiver.cross_layers):
        latents = np.asarray(x, np.float64)
        weights = attention_weights(layer_norm(latents, cross.latent_norm),
                                    layer_norm(array, cross.token_norm), cross.attention)
        assert weights.shape[1] == 2  # two heads, averaged below
        maps.append(weights.mean(axis=(1, 2)))
        x = cross(x, tokens)
        x = perceiver.self_layers[index](x)
    mean = np.mean(maps, axis=0).reshape(-1, *grid)
    expected = mean / mean.reshape(len(mean), -1).max(axis=1).reshape(-1, 1, 1, 1)

    heat = explain.explainer_for(model, {"model": "r2plus1d_perceiver"})(inputs)
    assert heat.shape == expected.shape
    np.testing.assert_allclose(heat, expected, atol=1e-4)
    assert not np.allclose(maps[0], maps[1], atol=1e-4)  # the blocks differ
