"""The bilstm_attention family: padding, masks, focal loss, config, training."""

import math

import keras
import numpy as np
import pytest

import models
from models.bilstm_attention import (
    AttentionPooling,
    BiLSTMAttentionConfig,
    NonEmptyMask,
    bilstm_attention_training,
)
from models.losses import FocalLoss

SMALL = dict(
    input_shape=(None, 6), num_classes=3, projection_dim=8, lstm_layers=2,
    lstm_units=5, attention_heads=2, attention_key_dim=4, pooling_dim=4,
    classifier_units=(8, 6, 4),
)


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(1)
    return models.build("bilstm_attention", **SMALL)


def with_garbage(features, mask, extra, seed):
    """Appends `extra` padded steps of large random garbage to every row."""
    rng = np.random.default_rng(seed)
    batch, steps, dim = features.shape
    garbage = rng.normal(0, 50, size=(batch, extra, dim)).astype("float32")
    # Garbage also overwrites the padding already inside the batch.
    features = np.where(mask[..., None], features, rng.normal(0, 50, features.shape))
    padded = np.concatenate([features.astype("float32"), garbage], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((batch, extra), bool)], axis=1)
    return padded, padded_mask


@pytest.mark.parametrize("extra", [0, 20])
def test_padding_with_garbage_gives_the_same_logits(small_model, extra):
    rng = np.random.default_rng(0)
    lengths = np.array([7, 3, 1])
    steps = lengths.max()
    mask = np.arange(steps)[None, :] < lengths[:, None]
    features = rng.normal(size=(3, steps, 6)).astype("float32") * mask[..., None]
    expected = np.asarray(small_model({"features": features, "mask": mask}))

    padded, padded_mask = with_garbage(features, mask, extra, seed=extra + 1)
    actual = np.asarray(small_model({"features": padded, "mask": padded_mask}))
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)

    # Each row alone, without any padding, gives the same logits too.
    for row, length in enumerate(lengths):
        alone = small_model({
            "features": features[row:row + 1, :length],
            "mask": np.ones((1, length), bool),
        })
        np.testing.assert_allclose(np.asarray(alone)[0], expected[row], atol=1e-5, rtol=0)


def test_garbage_in_real_frames_does_change_the_logits(small_model):
    # The invariance test above could not fail if the model ignored its input.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1, 5, 6)).astype("float32")
    mask = np.ones((1, 5), bool)
    before = np.asarray(small_model({"features": features, "mask": mask}))
    features[0, -1] = rng.normal(0, 50, size=6)
    after = np.asarray(small_model({"features": features, "mask": mask}))
    assert np.abs(after - before).max() > 1e-3


@pytest.mark.parametrize("extra", [0, 20])
def test_backward_lstm_does_not_read_padding(extra):
    # Keras' Bidirectional runs the backward LSTM with go_backwards over the
    # padded tensor; with right-padding and the mask, its outputs at the real
    # steps must equal a backward pass over the real frames alone.
    keras.utils.set_random_seed(2)
    layer = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))
    rng = np.random.default_rng(3)
    real = rng.normal(size=(1, 5, 3)).astype("float32")
    reference = np.asarray(layer(real))
    garbage = rng.normal(0, 50, size=(1, extra + 2, 3)).astype("float32")
    padded = np.concatenate([real, garbage], axis=1)
    mask = np.arange(padded.shape[1])[None, :] < 5
    output = np.asarray(layer(padded, mask=mask))
    np.testing.assert_allclose(output[:, :5, 4:], reference[:, :, 4:], atol=1e-6, rtol=0)
    np.testing.assert_allclose(output[:, :5, :4], reference[:, :, :4], atol=1e-6, rtol=0)
    assert np.all(output[:, 5:] == 0)


def test_a_row_without_real_frames_gives_finite_logits(small_model):
    rng = np.random.default_rng(4)
    features = rng.normal(size=(2, 4, 6)).astype("float32")
    mask = np.array([[True, True, False, False], [False, False, False, False]])
    logits = np.asarray(small_model({"features": features, "mask": mask}))
    assert np.all(np.isfinite(logits))
    alone = np.asarray(small_model({"features": features[:1, :2], "mask": mask[:1, :2]}))
    np.testing.assert_allclose(logits[:1], alone, atol=1e-5, rtol=0)
    # With no real frame, the frames' content does not matter either.
    features[1] = rng.normal(0, 50, size=(4, 6))
    again = np.asarray(small_model({"features": features, "mask": mask}))
    np.testing.assert_allclose(again[1], logits[1], atol=1e-5, rtol=0)


def test_attention_pooling_weights_real_frames_only():
    pool = AttentionPooling(hidden_dim=3)
    x = np.random.default_rng(5).normal(size=(3, 4, 2)).astype("float32")
    mask = np.array([[True, False, False, False], [True, True, False, False], [False] * 4])
    pooled = np.asarray(pool(x, mask=mask))
    np.testing.assert_allclose(pooled[0], x[0, 0], atol=1e-6)
    # The second row is a convex combination of its two real frames.
    hidden = np.tanh(x[1, :2] @ np.asarray(pool.hidden.kernel) + np.asarray(pool.hidden.bias))
    scores = (hidden @ np.asarray(pool.score.kernel))[:, 0]
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    np.testing.assert_allclose(pooled[1], weights @ x[1, :2], atol=1e-6)
    assert np.all(pooled[2] == 0)


def test_attention_pooling_dropout_acts_on_the_scorer_in_training_only():
    keras.utils.set_random_seed(3)
    pool = AttentionPooling(hidden_dim=16, dropout=0.5)
    plain = AttentionPooling(hidden_dim=16)
    x = np.random.default_rng(6).normal(size=(2, 5, 4)).astype("float32")
    mask = np.ones((2, 5), bool)
    pool(x, mask=mask)
    plain(x, mask=mask)
    plain.set_weights(pool.get_weights())
    # Inference: no dropout, the same function as without it.
    np.testing.assert_allclose(
        np.asarray(pool(x, mask=mask)), np.asarray(plain(x, mask=mask)), atol=1e-6
    )
    # Training: the scorer's hidden units drop, so the frame weights and
    # hence the pooled vector change from call to call.
    first = np.asarray(pool(x, mask=mask, training=True))
    second = np.asarray(pool(x, mask=mask, training=True))
    assert not np.allclose(first, second)
    assert not np.allclose(first, np.asarray(plain(x, mask=mask, training=True)))
    # Still a convex combination of the frames: inside their range.
    assert np.all(first <= x.max(axis=1) + 1e-6) and np.all(first >= x.min(axis=1) - 1e-6)
    restored = AttentionPooling.from_config(pool.get_config())
    assert (restored.dropout, restored.hidden_dim) == (0.5, 16)


def test_default_model_has_pooling_dropout_and_pytorch_layer_norm_epsilon():
    config = BiLSTMAttentionConfig()
    assert (config.pooling_dropout, config.layer_norm_epsilon) == (0.2, 1e-5)
    model = models.build("bilstm_attention", **SMALL)
    assert model.get_layer("attention_pooling").dropout == 0.2
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.LayerNormalization)]
    assert len(norms) == 2 + len(SMALL["classifier_units"])
    assert all(layer.epsilon == 1e-5 for layer in norms)
    other = models.build("bilstm_attention", **SMALL, pooling_dropout=0.0, layer_norm_epsilon=1e-3)
    assert other.get_layer("attention_pooling").dropout == 0.0
    assert other.get_layer("projection_norm").epsilon == 1e-3
    with pytest.raises(ValueError, match="pooling_dropout must be in"):
        models.get_config("bilstm_attention", pooling_dropout=1.5)


def test_non_empty_mask_only_touches_empty_rows():
    mask = np.array([[True, True, False], [False, False, False], [True, False, False]])
    out = np.asarray(NonEmptyMask()(mask))
    np.testing.assert_array_equal(out, [[1, 1, 0], [1, 0, 0], [1, 0, 0]])


def test_serving_outputs_are_logits_and_probabilities(small_model):
    family = models.get_family("bilstm_attention")
    config = models.get_config("bilstm_attention", **SMALL)
    inputs, _ = family.example_batch(config, 3, seed=0)
    logits = small_model(inputs)
    named = family.name_outputs(small_model, logits)
    assert sorted(named) == ["logits", "probabilities"]
    probs = np.asarray(named["probabilities"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(probs.argmax(1), np.asarray(logits).argmax(1))


def test_default_config_has_the_notes_sizes():
    config = BiLSTMAttentionConfig()
    assert config.input_shape == (None, 1280)
    assert (config.projection_dim, config.lstm_layers, config.lstm_units) == (768, 4, 768)
    assert (config.attention_heads, config.attention_key_dim) == (12, 128)
    assert config.classifier_units == (768, 384, 192) and config.num_classes == 4
    assert (config.projection_dropout, config.lstm_dropout, config.classifier_dropout) == (
        0.2, 0.4, 0.4)
    assert (config.batch_size, config.epochs, config.patience) == (48, 150, 25)


@pytest.mark.slow
def test_default_model_parameter_count():
    model = models.build("bilstm_attention")
    by_name = {layer.name: layer.count_params() for layer in model.layers}
    d, p, u = 1280, 768, 768
    lstm_in = [p] + [2 * u] * 3
    expected = {
        "projection": d * p + p,
        **{f"bilstm_{i + 1}": 2 * 4 * (n * u + u * u + u) for i, n in enumerate(lstm_in)},
        "self_attention": 4 * (2 * u * 1536 + 1536),
        "attention_pooling": 1536 * 768 + 768 + 768 + 1,
        "classifier_dense_1": 1536 * 768 + 768,
        "classifier_dense_2": 768 * 384 + 384,
        "classifier_dense_3": 384 * 192 + 192,
        "logits": 192 * 4 + 4,
    }
    for name, count in expected.items():
        assert by_name[name] == count, name
    assert model.count_params() == 65_095_109
    assert model.get_layer("bilstm_1").output.shape == (None, None, 1536)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(num_classes=1), "num_classes"),
        (dict(input_shape=(8, 16, 3)), "input_shape"),
        (dict(input_shape=(None, None)), "input_shape"),
        (dict(lstm_units=0), "lstm_units"),
        (dict(lstm_layers=-1), "lstm_layers"),
        (dict(classifier_units=(8, 0)), "classifier_units"),
        (dict(lstm_dropout=1.0), "lstm_dropout"),
        (dict(label_smoothing=-0.1), "label_smoothing"),
        (dict(focal_gamma=-1.0), "focal_gamma"),
        (dict(min_learning_rate=1e-2), "min_learning_rate"),
        (dict(classifier_activation="nope"), "classifier_activation"),
        (dict(lstm_unit=8), "lstm_units"),  # unknown key lists the valid ones
    ],
)
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        models.build("bilstm_attention", **overrides)


def test_cli_strings_convert():
    config = models.get_config(
        "bilstm_attention", input_shape="none,512", classifier_units="64,32", lstm_units="16"
    )
    assert config.input_shape == (None, 512)
    assert config.classifier_units == (64, 32) and config.lstm_units == 16


def test_training_defaults():
    config = BiLSTMAttentionConfig()
    spec = bilstm_attention_training(config, steps_per_epoch=10)
    optimizer = spec.optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert math.isclose(optimizer.weight_decay, 5e-4)
    assert (optimizer.beta_1, optimizer.beta_2) == (0.9, 0.999)
    assert optimizer.global_clipnorm == 1.0
    schedule = optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecayRestarts)
    lr = lambda step: float(schedule(step))  # noqa: E731
    assert math.isclose(lr(0), 1e-3, rel_tol=1e-6)
    # First period: 20 epochs of 10 steps, down to the 1e-6 floor.
    assert math.isclose(lr(100), 1e-6 + (1e-3 - 1e-6) / 2, rel_tol=1e-4)
    assert math.isclose(lr(199.999), 1e-6, rel_tol=1e-2)
    # Restart, then a period twice as long.
    assert math.isclose(lr(200), 1e-3, rel_tol=1e-6)
    assert math.isclose(lr(200 + 200), 1e-6 + (1e-3 - 1e-6) / 2, rel_tol=1e-4)
    assert math.isclose(lr(599.999), 1e-6, rel_tol=1e-2)
    assert (spec.monitor, spec.monitor_mode) == ("val_loss", "min")
    assert isinstance(spec.loss, FocalLoss)
    assert (spec.loss.gamma, spec.loss.label_smoothing) == (2.0, 0.1)
    assert [m.name for m in spec.metrics] == ["accuracy"]


def test_compiles_and_trains_with_its_training_spec():
    keras.utils.set_random_seed(6)
    config = models.get_config("bilstm_attention", **SMALL)
    model = models.build_from_config("bilstm_attention", config)
    spec = bilstm_attention_training(config, steps_per_epoch=1)
    # Eagerly: one step needs no traced graph (test_model_contract traces one).
    model.compile(optimizer=spec.optimizer, loss=spec.loss, metrics=spec.metrics, run_eagerly=True)
    inputs, labels = models.get_family("bilstm_attention").example_batch(config, 4, seed=1)
    weights = [np.array(w) for w in model.trainable_weights]
    logs = model.train_on_batch(inputs, labels, return_dict=True)
    assert np.isfinite(logs["loss"]) and 0.0 <= logs["accuracy"] <= 1.0
    assert int(spec.optimizer.iterations) == 1
    # The pooling's score bias shifts every frame's score alike, and the
    # softmax over frames ignores such a shift: its gradient is 0 but for
    # rounding, so it may or may not move. Every other weight takes a step.
    shift_invariant = "attention_pooling/score/bias"
    for before, after in zip(weights, model.trainable_weights):
        moved = np.abs(before - np.array(after)).max()
        if after.path == shift_invariant:
            assert moved < 1e-6
        else:
            assert moved > 0, after.path


# Focal loss -----------------------------------------------------------------


def test_focal_loss_hand_computed_uniform():
    # p = (1/2, 1/2), q = (0.95, 0.05): loss = (0.95 + 0.05) * (1/2)^2 * ln 2.
    loss = FocalLoss(gamma=2.0, label_smoothing=0.1)
    value = float(loss(np.array([0]), np.array([[0.0, 0.0]], "float32")))
    assert math.isclose(value, 0.25 * math.log(2.0), rel_tol=1e-6)


def test_focal_loss_hand_computed_two_examples():
    # Row 1: p = (3/4, 1/4), label 0, q = (0.95, 0.05):
    #   0.95 * (1/4)^2 * ln(4/3) + 0.05 * (3/4)^2 * ln 4
    # Row 2: p = (1/4, 3/4), label 0:
    #   0.95 * (3/4)^2 * ln 4 + 0.05 * (1/4)^2 * ln(4/3)
    row1 = 0.95 * 0.0625 * math.log(4 / 3) + 0.05 * 0.5625 * math.log(4)
    row2 = 0.95 * 0.5625 * math.log(4) + 0.05 * 0.0625 * math.log(4 / 3)
    logits = np.array([[math.log(3.0), 0.0], [0.0, math.log(3.0)]], "float32")
    loss = FocalLoss(gamma=2.0, label_smoothing=0.1)
    assert math.isclose(float(loss(np.array([0, 0]), logits)), (row1 + row2) / 2, rel_tol=1e-5)
    # Labels given as [B, 1] and probabilities instead of logits agree.
    probs = np.array([[0.75, 0.25], [0.25, 0.75]], "float32")
    as_probs = FocalLoss(from_logits=False)(np.array([[0], [0]]), probs)
    assert math.isclose(float(as_probs), (row1 + row2) / 2, rel_tol=1e-5)


def test_focal_loss_without_focus_or_smoothing_is_cross_entropy():
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 3, size=(16, 5)).astype("float32")
    labels = rng.integers(0, 5, size=16)
    focal = FocalLoss(gamma=0.0, label_smoothing=0.0)(labels, logits)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(float(focal), float(plain), rtol=1e-6)


def test_focal_loss_focuses_on_hard_examples():
    logits = np.array([[4.0, 0.0], [0.0, 4.0]], "float32")
    per_example = FocalLoss(gamma=2.0, label_smoothing=0.0, reduction=None)([0, 0], logits)
    plain = FocalLoss(gamma=0.0, label_smoothing=0.0, reduction=None)([0, 0], logits)
    per_example, plain = np.asarray(per_example), np.asarray(plain)
    # The easy example loses far more of its weight than the hard one.
    assert per_example[0] / plain[0] < 1e-3 < 0.9 < per_example[1] / plain[1]


def test_focal_loss_serializes():
    loss = FocalLoss(gamma=1.5, label_smoothing=0.05, from_logits=False, name="focal")
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, FocalLoss)
    assert restored.get_config() == loss.get_config()
    assert (restored.gamma, restored.label_smoothing, restored.from_logits) == (1.5, 0.05, False)


def test_model_compiled_with_focal_loss_reloads(small_model, tmp_path):
    model = keras.models.clone_model(small_model)
    model.compile(optimizer="adam", loss=FocalLoss(gamma=1.0, label_smoothing=0.2))
    model.optimizer.build(model.trainable_variables)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded.loss, FocalLoss)
    assert (reloaded.loss.gamma, reloaded.loss.label_smoothing) == (1.0, 0.2)


@pytest.mark.parametrize("kwargs", [dict(gamma=-1.0), dict(label_smoothing=1.0)])
def test_focal_loss_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        FocalLoss(**kwargs)
