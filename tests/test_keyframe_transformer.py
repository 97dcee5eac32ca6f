"""keyframe_transformer: ranking loss, local attention band, config, stages."""

import keras
import numpy as np
import pytest

import models
from models.keyframe_transformer import (
    KeyframeTransformerConfig,
    TemporalSelfAttention,
    keyframe_example_batch,
)
from models.losses import SpearmanRankingLoss, masked_mean_squared_error

TINY = dict(input_shape=(None, 12), model_dim=16, num_layers=1, num_heads=2, ff_dim=32,
            scorer_units=8)

TARGETS = [0.1, 0.4, 0.3, 0.9]  # ranks 1, 3, 2, 4
PREDICTIONS = [0.2, 0.3, 0.5, 0.8]  # ranks 1, 2, 3, 4


# -- ranking loss ---------------------------------------------------------------


def test_ranking_loss_with_hard_ranks_is_one_minus_spearman():
    # sum d^2 = 2 over n = 4: rho = 1 - 6 * 2 / 60 = 0.8.
    loss = SpearmanRankingLoss(temperature=1e-3)
    assert float(loss([TARGETS], [PREDICTIONS])) == pytest.approx(0.2, abs=1e-5)
    # MSE = (0.01 + 0.01 + 0.04 + 0.01) / 4 = 0.0175, weighted by 0.5.
    loss = SpearmanRankingLoss(temperature=1e-3, mse_weight=0.5)
    assert float(loss([TARGETS], [PREDICTIONS])) == pytest.approx(0.2 + 0.00875, abs=1e-5)


def test_ranking_loss_with_soft_ranks_tends_to_pearson_of_scores_and_ranks():
    # A large temperature makes the soft rank linear in the score, so the
    # loss is 1 - pearson(p, rank(t)): covariance 0.8 over sqrt(0.21 * 5).
    loss = SpearmanRankingLoss(temperature=100.0)
    expected = 1.0 - 0.8 / np.sqrt(0.21 * 5.0)
    assert float(loss([TARGETS], [PREDICTIONS])) == pytest.approx(expected, abs=1e-4)


def test_ranking_loss_ignores_padded_steps_and_averages_sequences():
    loss = SpearmanRankingLoss(temperature=1e-3, mse_weight=0.5)
    padded_targets = [TARGETS + [-1.0, -1.0], [0.9, 0.4, 0.3, 0.1, -1.0, -1.0]]
    padded_scores = [PREDICTIONS + [7.0, -3.0], PREDICTIONS + [0.99, 0.0]]
    # The second sequence is ranked exactly backwards: rho -1, loss 2 + MSE.
    reversed_mse = np.mean((np.array(PREDICTIONS) - [0.9, 0.4, 0.3, 0.1]) ** 2)
    expected = ((0.2 + 0.00875) + (2.0 + 0.5 * reversed_mse)) / 2
    assert float(loss(padded_targets, padded_scores)) == pytest.approx(expected, abs=1e-5)
    assert float(masked_mean_squared_error([[0.5, -1.0]], [[0.25, 9.0]])[0]) == 0.0625


def test_ranking_loss_is_finite_for_constant_targets_and_has_gradients():
    import tensorflow as tf

    loss = SpearmanRankingLoss()
    scores = tf.Variable([[0.2, 0.6, 0.4, 0.0]])
    with tf.GradientTape() as tape:
        constant = loss([[0.5, 0.5, 0.5, -1.0]], scores)
    assert float(constant) == pytest.approx(1.0)
    assert np.all(np.isfinite(tape.gradient(constant, scores).numpy()))
    with tf.GradientTape() as tape:
        value = loss([TARGETS], scores)
    gradient = tape.gradient(value, scores).numpy()
    # Raising the frame whose target is highest lowers the loss.
    assert gradient[0, 3] < 0 and np.all(np.isfinite(gradient))


def test_ranking_loss_serializes_and_refuses_bad_values():
    loss = SpearmanRankingLoss(temperature=0.2, mse_weight=0.3)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, SpearmanRankingLoss)
    assert (restored.temperature, restored.mse_weight) == (0.2, 0.3)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SpearmanRankingLoss(temperature=0.0)
    with pytest.raises(ValueError, match="mse_weight must be >= 0"):
        SpearmanRankingLoss(mse_weight=-1.0)


# -- local attention ----------------------------------------------------------------


def test_local_attention_ignores_frames_more_than_five_steps_away():
    keras.utils.set_random_seed(0)
    model = models.build("keyframe_transformer", **TINY)  # default local_window = 5
    local = model.get_layer("local_attention")
    assert local.window == 5 and local.attention._sliding_window == 6
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 24, 16)).astype("float32")
    mask = np.ones((1, 24), bool)
    changed = x.copy()
    changed[0, 15] += 5.0
    before = np.asarray(local(x, padding_mask=mask))
    after = np.asarray(local(changed, padding_mask=mask))
    # Outputs 0..9 are more than 5 steps from frame 15 and 21..23 too.
    np.testing.assert_array_equal(before[0, :10], after[0, :10])
    np.testing.assert_array_equal(before[0, 21:], after[0, 21:])
    assert not np.allclose(before[0, 10], after[0, 10])
    assert not np.allclose(before[0, 20], after[0, 20])
    # The global branch, by contrast, sees the change everywhere.
    glob = model.get_layer("global_attention")
    assert not np.allclose(
        np.asarray(glob(x, padding_mask=mask))[0, 0], np.asarray(glob(changed, padding_mask=mask))[0, 0]
    )


def test_attention_never_reads_padded_keys_and_stays_finite_when_rows_are_all_padding():
    layer = TemporalSelfAttention(num_heads=2, key_dim=4, window=1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 10, 8)).astype("float32")
    mask = np.arange(10)[None] < 4  # steps 6..9 have no real key within +-1
    garbage = x.copy()
    garbage[0, 4:] = rng.normal(0, 100, size=(6, 8))
    out, out_garbage = (np.asarray(layer(v, padding_mask=mask)) for v in (x, garbage))
    np.testing.assert_allclose(out[0, :4], out_garbage[0, :4], atol=1e-6)
    assert np.all(np.isfinite(out))


# -- the model ------------------------------------------------------------------


def test_default_model_has_the_notes_sizes():
    config = models.get_config("keyframe_transformer")
    assert (config.input_mode, config.input_shape) == ("features", (None, 1024))
    model = models.build_from_config("keyframe_transformer", config)
    assert model.get_layer("projection").kernel.shape == (1024, 512)
    assert model.get_layer("encoder_3_ff_1").kernel.shape == (512, 2048)
    with pytest.raises(ValueError):
        model.get_layer("encoder_4_ff_1")
    attention = model.get_layer("encoder_1_attention").attention
    assert (attention.num_heads, attention.key_dim, attention.dropout) == (8, 64, 0.1)
    assert model.get_layer("dual_attention_fusion").kernel.shape == (1024, 512)
    assert model.get_layer("scorer_hidden").kernel.shape == (512, 256)
    assert model.output_names == ["scores"]


def test_default_fusion_is_concatenate_and_project_only():
    model = models.build("keyframe_transformer", **TINY)
    names = {layer.name for layer in model.layers}
    assert not names & {"dual_attention_dropout", "dual_attention_residual", "dual_attention_norm"}
    # The scorer reads the fusion Dense directly.
    assert model.get_layer("scorer_hidden").input is model.get_layer("dual_attention_fusion").output
    older = models.build("keyframe_transformer", **TINY, fusion="concat_residual")
    assert older.get_layer("scorer_hidden").input is older.get_layer("dual_attention_norm").output
    assert older.count_params() - model.count_params() == 2 * 16  # the LayerNorm
    with pytest.raises(ValueError, match="fusion must be one of concat, concat_residual"):
        models.get_config("keyframe_transformer", fusion="sum")


def test_default_parameter_count_by_hand():
    # Features mode, D = 1024, d = 512, 3 encoder layers, FFN 2048, 8 heads.
    d, ff = 512, 2048
    attention = 4 * (d * d + d)  # query, key, value, output projections
    encoder = attention + (d * ff + ff) + (ff * d + d) + 2 * (2 * d)
    expected = (
        (1024 * d + d)  # projection
        + 3 * encoder
        + 2 * attention  # local and global branches
        + (2 * d * d + d)  # fusion Dense
        + (d * 256 + 256) + (256 + 1)  # scorer
    )
    assert expected == 12_739_585
    model = models.build("keyframe_transformer")
    assert model.count_params() == expected


def test_layer_norms_use_pytorch_epsilon():
    model = models.build("keyframe_transformer", **TINY, fusion="concat_residual")
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.LayerNormalization)]
    assert len(norms) == 2 * TINY["num_layers"] + 1
    assert all(layer.epsilon == 1e-5 for layer in norms)
    custom = models.build("keyframe_transformer", **TINY, layer_norm_epsilon=1e-3)
    assert custom.get_layer("encoder_1_ff_norm").epsilon == 1e-3


def test_scores_any_length_in_zero_one_with_padding_at_zero():
    model = models.build("keyframe_transformer", **TINY)
    for steps in (5, 13):
        inputs, _ = keyframe_example_batch(model_config(steps), 3, seed=steps)
        scores = np.asarray(model(inputs, training=False))
        assert scores.shape == (3, steps)
        assert np.all(scores[inputs["mask"]] > 0) and np.all(scores[inputs["mask"]] < 1)
        assert np.all(scores[~inputs["mask"]] == 0)


def model_config(steps):
    return models.get_config("keyframe_transformer", **{**TINY, "input_shape": (steps, 12)})


def test_config_switches_shape_with_the_mode_and_names_bad_values():
    config = models.get_config("keyframe_transformer", input_mode="frames")
    assert config.input_shape == (None, 224, 224, 3) and config.backbone == "efficientnet_b0"
    back = config.with_overrides(input_mode="features")
    assert back.input_shape == (None, 1024)
    with pytest.raises(ValueError, match="input_mode must be one of features, frames"):
        models.get_config("keyframe_transformer", input_mode="pixels")
    with pytest.raises(ValueError, match="H, W >= 32"):
        models.get_config("keyframe_transformer", input_mode="frames", input_shape=(None, 16, 16, 3))
    with pytest.raises(ValueError, match="rank 2"):
        models.get_config("keyframe_transformer", input_shape=(None, 8, 8, 3))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        models.get_config("keyframe_transformer", model_dim=20, num_heads=8)
    with pytest.raises(ValueError, match="backbone must be one of"):
        models.get_config("keyframe_transformer", input_mode="frames", backbone="vgg16")
    with pytest.raises(ValueError, match="num_classes must be 1"):
        models.get_config("keyframe_transformer", num_classes=3)


def test_features_mode_trains_in_one_adamw_stage():
    config = models.get_config("keyframe_transformer")
    spec = models.get_family("keyframe_transformer").training(config, steps_per_epoch=10)
    assert isinstance(spec.optimizer, keras.optimizers.AdamW)
    assert float(spec.optimizer.learning_rate) == pytest.approx(1e-4)
    assert spec.optimizer.weight_decay == pytest.approx(0.01)
    (stage,) = spec.stages
    assert (stage.name, stage.epochs, stage.prepare) == ("train", 10, None)
    assert float(stage.optimizer.learning_rate) == pytest.approx(1e-4)
    assert stage.optimizer.global_clipnorm is None and stage.optimizer.clipnorm is None
    assert (spec.monitor, spec.monitor_mode) == ("val_loss", "min")
    short = config.with_overrides(stage1_epochs=3)
    assert models.get_family("keyframe_transformer").training(short, 1).stages[0].epochs == 3


def test_loss_is_the_ranking_loss_alone_by_default():
    config = models.get_config("keyframe_transformer")
    spec = models.get_family("keyframe_transformer").training(config, steps_per_epoch=1)
    assert isinstance(spec.loss, SpearmanRankingLoss) and spec.loss.mse_weight == 0.0
    # Hard ranks of TARGETS / PREDICTIONS give rho 0.8: the loss is 0.2
    # with no MSE term added.
    strict = SpearmanRankingLoss(temperature=1e-3, mse_weight=config.mse_weight)
    assert float(strict([TARGETS], [PREDICTIONS])) == pytest.approx(0.2, abs=1e-5)
    with_mse = config.with_overrides(mse_weight="0.5")
    assert models.get_family("keyframe_transformer").training(with_mse, 1).loss.mse_weight == 0.5


def test_stage_lengths_are_the_notes_and_old_flags_still_work():
    frames = dict(input_mode="frames", input_shape=(None, 32, 32, 3), backbone_weights=None)
    config = models.get_config("keyframe_transformer", **frames)
    training = models.get_family("keyframe_transformer").training
    first, second = training(config, 1).stages
    assert (first.epochs, second.epochs) == (10, 20)
    # `--epochs N` sets stage 1 and `--stage1-epochs` wins over it, as before.
    first, second = training(config.with_overrides(epochs="5"), 1).stages
    assert (first.epochs, second.epochs) == (5, 20)
    first, second = training(
        config.with_overrides(epochs="5", stage1_epochs="3", stage2_epochs="2"), 1
    ).stages
    assert (first.epochs, second.epochs) == (3, 2)


def test_frames_mode_fine_tunes_the_last_two_blocks_in_a_second_stage():
    config = models.get_config(
        "keyframe_transformer", input_mode="frames", input_shape=(None, 32, 32, 3),
        backbone_weights=None, model_dim=16, num_layers=1, num_heads=2, ff_dim=32,
        scorer_units=8, epochs=30, stage1_epochs=3, stage2_epochs=2,
    )
    model = models.build_from_config("keyframe_transformer", config)
    backbone = model.get_layer("efficientnet_b0_backbone")
    assert not backbone.trainable_weights
    frozen_count = len(model.trainable_weights)
    spec = models.get_family("keyframe_transformer").training(config, steps_per_epoch=4)
    first, second = spec.stages
    assert (first.name, first.epochs, first.prepare) == ("frozen_backbone", 3, None)
    assert float(first.optimizer.learning_rate) == pytest.approx(1e-4)
    assert first.optimizer.weight_decay == pytest.approx(0.01)
    assert (second.name, second.epochs) == ("fine_tune", 2)
    assert float(second.optimizer.learning_rate) == pytest.approx(1e-5)
    # One global norm over all gradients (the notes' clip_grad_norm_), not
    # a separate norm per variable.
    assert second.optimizer.global_clipnorm == 1.0 and second.optimizer.clipnorm is None
    second.prepare(model)
    application = backbone.get_layer("efficientnetb0")
    unfrozen = {
        layer.name.split("_")[0].rstrip("abcdefgh")
        for layer in application.layers if layer.trainable and layer.weights
    }
    assert unfrozen == {"block6", "block7", "top"}
    assert len(model.trainable_weights) > frozen_count
    batch_norms = [
        layer for layer in application.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert batch_norms and not any(layer.trainable for layer in batch_norms)
