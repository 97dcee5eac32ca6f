"""R(2+1)D-18 and its Perceiver head: counts, shapes, weights, errors."""

import keras
import numpy as np
import pytest

import models
from models import r2plus1d
from models.perceiver import Perceiver, VideoPositionEncoding

# ---------------------------------------------------------------------------
# Parameter counts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "blocks, expected",
    [(4, 1_929_865), (6, 7_804_601), (7, 17_137_693), (8, 31_300_125)],
)
def test_backbone_trainable_parameters_match_the_ablation_tables(blocks, expected):
    backbone = r2plus1d.build_r2plus1d_backbone((8, 32, 32, 3), cnn_blocks=blocks)
    assert backbone.name == "r2plus1d_backbone"
    assert r2plus1d.count_params(backbone) == expected


def test_backbone_count_by_hand_for_two_blocks():
    # stem: 3*45*49 + 2*45 + 45*64*3 + 2*64; layer1 block: midplanes 144,
    # twice (64*144*9 + 2*144 + 144*64*3 + 2*64).
    stem = 3 * 45 * 49 + 2 * 45 + 45 * 64 * 3 + 2 * 64
    block = 2 * (64 * 144 * 9 + 2 * 144 + 144 * 64 * 3 + 2 * 64)
    backbone = r2plus1d.build_r2plus1d_backbone((4, 16, 16, 3), cnn_blocks=2)
    assert r2plus1d.count_params(backbone) == stem + 2 * block


def test_midplanes_are_computed_once_per_block_and_shared_by_both_convs():
    assert [r2plus1d.midplanes(i, o) for i, o in [(64, 64), (64, 128), (128, 128),
                                                  (128, 256), (256, 512), (512, 512)]] == [
        144, 230, 288, 460, 921, 1152]
    backbone = r2plus1d.build_r2plus1d_backbone((8, 32, 32, 3), cnn_blocks=4)
    # The first block of layer2 goes 64 -> 128: both its convs use 230.
    assert backbone.get_layer("layer2_0_conv1_spatial").filters == 230
    assert backbone.get_layer("layer2_0_conv2_spatial").filters == 230
    assert backbone.get_layer("layer2_1_conv2_spatial").filters == 288


def test_model_reports_cnn_params_even_when_frozen():
    config = dict(input_shape=(8, 32, 32, 3), cnn_blocks=4, num_classes=5)
    model = models.build("r2plus1d", **config)
    assert r2plus1d.cnn_params(model) == 1_929_865
    assert r2plus1d.attention_params(model) == 0
    # Classifier: 128 * 5 + 5.
    assert r2plus1d.count_params(model) == 1_929_865 + 128 * 5 + 5
    frozen = models.build("r2plus1d", freeze_backbone=True, **config)
    assert r2plus1d.cnn_params(frozen) == 1_929_865
    assert r2plus1d.count_params(frozen) == 128 * 5 + 5


ATTENTION_TABLE = [
    ((1, 0), 3.4e6),
    ((0, 1), 4.2e6),
    ((1, 1), 7.6e6),
    ((1, 2), 11.8e6),
    ((1, 6), 28.6e6),
    ((2, 12), 57.2e6),
]


@pytest.mark.parametrize("blocks, expected", ATTENTION_TABLE, ids=lambda v: str(v))
def test_perceiver_parameters_are_within_the_readmes_0_6_percent_of_the_tables(blocks, expected):
    cross, self_ = blocks
    perceiver = Perceiver(cross_blocks=cross, self_blocks=self_)
    # The 8-block backbone at 16x112x112 gives 2x7x7 = 98 tokens of 512.
    perceiver.build((None, 98, 512))
    count = r2plus1d.count_params(perceiver)
    assert abs(count - expected) / expected <= 0.006, count


def test_perceiver_count_by_hand():
    d, h = 512, 2048
    geglu = d * 2 * h + 2 * h + h * d + d
    cross = 3 * 2 * d + (3 * (d * 64 + 64) + 64 * d + d) + geglu
    self_ = 2 * 2 * d + (4 * d * d + 3 * d + d) + geglu
    latents, final_norm = 256 * d, 2 * d
    perceiver = Perceiver(cross_blocks=1, self_blocks=2)
    perceiver.build((None, 10, 512))
    assert r2plus1d.count_params(perceiver) == latents + cross + 2 * self_ + final_norm


def test_attention_params_of_the_full_model_are_the_perceiver_layer():
    model = models.build(
        "r2plus1d_perceiver", input_shape=(8, 16, 16, 3), cross_blocks=1, self_blocks=1
    )
    perceiver = model.get_layer("perceiver")
    assert isinstance(perceiver, Perceiver)
    assert r2plus1d.attention_params(model) == 7_620_288
    assert r2plus1d.cnn_params(model) == 31_300_125


# ---------------------------------------------------------------------------
# Shapes and padding, as PyTorch computes them
# ---------------------------------------------------------------------------


def test_odd_input_sizes_give_pytorch_shapes():
    # PyTorch: out = floor((n + 2p - k) / s) + 1 for every conv.
    # T 9:  stem 9, layer2 floor(8/2)+1 = 5, layer3 3, layer4 2.
    # H 35: stem floor((35+6-7)/2)+1 = 18, then 9, 5, 3.
    # W 33: stem floor(32/2)+1 = 17, then 9, 5, 3.
    backbone = r2plus1d.build_r2plus1d_backbone((9, 35, 33, 3), cnn_blocks=8)
    expected = {
        "stem_relu_temporal": (9, 18, 17, 64),
        "layer1_1_relu": (9, 18, 17, 64),
        "layer2_1_relu": (5, 9, 9, 128),
        "layer3_1_relu": (3, 5, 5, 256),
        "layer4_1_relu": (2, 3, 3, 512),
    }
    for name, shape in expected.items():
        assert tuple(backbone.get_layer(name).output.shape[1:]) == shape, name
    assert r2plus1d.feature_map_shape((9, 35, 33, 3)) == (2, 3, 3, 512)


def test_default_and_truncated_feature_maps():
    assert r2plus1d.feature_map_shape((16, 112, 112, 3)) == (2, 7, 7, 512)
    # 7 x 13: stem 7 x 7, layer2 4 x 4.
    backbone = r2plus1d.build_r2plus1d_backbone((7, 13, 13, 3), cnn_blocks=4)
    assert backbone.output_shape == (None, 4, 4, 4, 128)
    assert r2plus1d.feature_map_shape((7, 13, 13, 3), cnn_blocks=4) == (4, 4, 4, 128)


def reference_conv3d(x, kernel, stride, padding):
    """Direct cross-correlation with symmetric zero padding (PyTorch's)."""
    x = np.pad(x, [(0, 0)] + [(p, p) for p in padding] + [(0, 0)])
    kt, kh, kw, _, out = kernel.shape
    st, sh, sw = stride
    t = (x.shape[1] - kt) // st + 1
    h = (x.shape[2] - kh) // sh + 1
    w = (x.shape[3] - kw) // sw + 1
    result = np.zeros((x.shape[0], t, h, w, out), dtype="float64")
    for i in range(t):
        for j in range(h):
            for k in range(w):
                patch = x[:, i * st : i * st + kt, j * sh : j * sh + kh, k * sw : k * sw + kw]
                result[:, i, j, k] = np.tensordot(patch, kernel, axes=4)
    return result


@pytest.mark.parametrize(
    "name, stride, padding, channels",
    [
        ("stem_conv_spatial", (1, 2, 2), (0, 3, 3), 3),
        ("layer2_0_conv1_spatial", (1, 2, 2), (0, 1, 1), 64),
        ("layer2_0_conv1_temporal", (2, 1, 1), (1, 0, 0), 230),
    ],
    ids=["stem", "layer2_spatial", "layer2_temporal"],
)
def test_strided_convolutions_pad_symmetrically_on_even_sizes(name, stride, padding, channels):
    # On even sizes Keras' "same" would pad only at the end; PyTorch pads
    # both sides, so the values (not only the shapes) must match this.
    backbone = r2plus1d.build_r2plus1d_backbone((8, 16, 16, 3), cnn_blocks=3)
    conv = backbone.get_layer(name)
    pad = backbone.get_layer(f"{name}_pad")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 6, 6, channels)).astype("float32")
    actual = np.asarray(conv(pad(x)))
    expected = reference_conv3d(x, np.asarray(conv.kernel), stride, padding)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# Attention structure
# ---------------------------------------------------------------------------


def test_no_token_by_token_attention_with_cross_blocks(monkeypatch):
    seen = []
    original = keras.layers.MultiHeadAttention.call

    def recording_call(self, query, value, key=None, **kwargs):
        seen.append((query.shape[1], value.shape[1]))
        return original(self, query, value, key, **kwargs)

    monkeypatch.setattr(keras.layers.MultiHeadAttention, "call", recording_call)
    perceiver = Perceiver(num_latents=4, latent_dim=16, cross_blocks=2, self_blocks=4,
                          cross_head_dim=8, self_heads=2, self_head_dim=8)
    tokens = np.ones((1, 37, 12), "float32")
    assert perceiver(tokens).shape == (1, 16)
    # Two cross blocks (4 latents x 37 tokens), four latent blocks (4 x 4),
    # in the order cross, self, self, cross, self, self.
    assert seen == [(4, 37), (4, 4), (4, 4), (4, 37), (4, 4), (4, 4)]

    seen.clear()
    direct = Perceiver(latent_dim=16, cross_blocks=0, self_blocks=1,
                       self_heads=2, self_head_dim=8)
    assert direct(tokens).shape == (1, 16)
    assert seen == [(37, 37)]
    assert direct.token_projection is not None  # 12 -> 16


def test_layers_serialize_with_their_config():
    perceiver = Perceiver(num_latents=3, latent_dim=8, cross_blocks=1, self_blocks=2,
                          cross_head_dim=4, self_heads=2, self_head_dim=4, dropout=0.1)
    clone = Perceiver.from_config(perceiver.get_config())
    assert clone.get_config() == perceiver.get_config()
    assert perceiver.compute_output_shape((None, 20, 6)) == (None, 8)
    encoding = VideoPositionEncoding()
    assert encoding.compute_output_shape((None, 2, 3, 4, 12)) == (None, 2, 3, 4, 12)
    restored = keras.layers.deserialize(keras.layers.serialize(perceiver))
    assert type(restored) is Perceiver and restored.self_blocks == 2


def test_position_encoding_tells_every_position_apart():
    encoded = np.asarray(VideoPositionEncoding()(np.zeros((1, 2, 3, 4, 18), "float32")))
    rows = encoded.reshape(-1, 18)
    distances = np.linalg.norm(rows[:, None] - rows[None], axis=-1)
    assert np.all(distances + np.eye(len(rows)) > 1e-3)
    # 18 channels = 3 axes x 3 sin/cos pairs; the time block varies only with t.
    np.testing.assert_allclose(encoded[0, 1, 0, 0, :6], encoded[0, 1, 2, 3, :6])


# ---------------------------------------------------------------------------
# Backbone weights
# ---------------------------------------------------------------------------


def randomized(backbone, seed=0):
    rng = np.random.default_rng(seed)
    for variable in backbone.weights:
        value = rng.normal(size=variable.shape).astype("float32")
        if "moving_variance" in variable.path:
            value = np.abs(value) + 0.5
        variable.assign(value)
    return backbone


def test_torchvision_state_dict_names_shapes_and_round_trip():
    source = randomized(r2plus1d.build_r2plus1d_backbone((4, 16, 16, 3), cnn_blocks=4))
    state = r2plus1d.torchvision_state_dict(source)
    # The module paths and [out, in, kt, kh, kw] layout of torchvision.
    assert state["stem.0.weight"].shape == (45, 3, 1, 7, 7)
    assert state["stem.3.weight"].shape == (64, 45, 3, 1, 1)
    assert state["layer1.0.conv1.0.0.weight"].shape == (144, 64, 1, 3, 3)
    assert state["layer2.0.conv2.0.3.weight"].shape == (128, 230, 3, 1, 1)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1, 1)
    assert state["layer2.0.conv1.1.running_var"].shape == (128,)
    target = r2plus1d.build_r2plus1d_backbone((4, 16, 16, 3), cnn_blocks=4)
    r2plus1d.load_torchvision_state_dict(target, {**state, "fc.weight": np.zeros((51, 512))})
    clips = np.random.default_rng(1).normal(size=(1, 4, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(target(clips), source(clips), rtol=1e-5, atol=1e-5)

    truncated = r2plus1d.build_r2plus1d_backbone((4, 16, 16, 3), cnn_blocks=2)
    r2plus1d.load_torchvision_state_dict(truncated, state)  # extra blocks ignored
    deeper = r2plus1d.build_r2plus1d_backbone((4, 16, 16, 3), cnn_blocks=6)
    with pytest.raises(ValueError, match="missing layer3.0"):
        r2plus1d.load_torchvision_state_dict(deeper, state)


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras", ".npz"])
def test_backbone_weights_file_loads_into_the_model(tmp_path, suffix):
    shape = dict(input_shape=(4, 16, 16, 3), cnn_blocks=2, num_classes=3)
    trained = models.build("r2plus1d", **shape)
    backbone = randomized(trained.get_layer("r2plus1d_backbone"))
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".weights.h5":
        backbone.save_weights(path)
    elif suffix == ".keras":
        trained.save(path)
    else:
        np.savez(path, **r2plus1d.torchvision_state_dict(backbone))
    model = models.build("r2plus1d_perceiver", backbone_weights=str(path),
                         freeze_backbone=True, num_latents=4, latent_dim=16,
                         cross_head_dim=8, self_heads=2, self_head_dim=8,
                         self_blocks=1, **shape)
    loaded = model.get_layer("r2plus1d_backbone")
    for expected, actual in zip(backbone.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))
    assert not loaded.trainable and not loaded.trainable_weights


def test_backbone_weights_errors(tmp_path):
    with pytest.raises(ValueError, match="backbone_weights: no such file"):
        models.build("r2plus1d", input_shape=(4, 16, 16, 3), cnn_blocks=1,
                     backbone_weights=str(tmp_path / "missing.npz"))
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"must end in \.weights\.h5, \.keras or \.npz"):
        models.build("r2plus1d", input_shape=(4, 16, 16, 3), cnn_blocks=1,
                     backbone_weights=str(other))


# ---------------------------------------------------------------------------
# Config errors and training defaults
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 9, -1, "two", 2.5])
def test_cnn_blocks_out_of_range(value):
    with pytest.raises(ValueError, match="cnn_blocks"):
        models.get_config("r2plus1d", cnn_blocks=value)


def test_self_blocks_must_divide_by_cross_blocks():
    with pytest.raises(ValueError, match="self_blocks must be divisible by cross_blocks.*"
                                         "self_blocks=3, cross_blocks=2"):
        models.get_config("r2plus1d_perceiver", cross_blocks=2, self_blocks=3)
    with pytest.raises(ValueError, match="at least one attention block"):
        models.get_config("r2plus1d_perceiver", cross_blocks=0, self_blocks=0)
    with pytest.raises(ValueError, match="cross_blocks must be an integer >= 0"):
        models.get_config("r2plus1d_perceiver", cross_blocks=-1)
    assert models.get_config("r2plus1d_perceiver", cross_blocks=2, self_blocks=12)


@pytest.mark.parametrize(
    "name, shape, blocks, message",
    [
        ("r2plus1d", (4, 16, 16, 3), 8, r"at least 8 frames of 16x16 pixels \(frames 4 < 8\)"),
        ("r2plus1d", (8, 15, 16, 3), 7, r"at least 8 frames of 16x16 pixels \(height 15 < 16\)"),
        ("r2plus1d_perceiver", (1, 8, 3, 3), 3, r"at least 2 frames of 4x4 pixels"),
        ("r2plus1d", (2, 1, 1, 3), 1, r"at least 1 frames of 2x2 pixels"),
    ],
)
def test_clip_too_small_names_the_minimum(name, shape, blocks, message):
    with pytest.raises(ValueError, match=message):
        models.get_config(name, input_shape=shape, cnn_blocks=blocks)


def test_smallest_clip_builds():
    model = models.build("r2plus1d", input_shape=(8, 16, 16, 3), cnn_blocks=8)
    assert model.get_layer("r2plus1d_backbone").output_shape == (None, 1, 1, 1, 512)


def test_defaults_are_the_design_values():
    config = models.get_config("r2plus1d")
    assert config.input_shape == (16, 112, 112, 3)
    assert config.num_classes == 51 and config.cnn_blocks == 8
    perceiver = models.get_config("r2plus1d_perceiver")
    assert (perceiver.num_latents, perceiver.latent_dim) == (256, 512)
    assert (perceiver.cross_heads, perceiver.cross_head_dim) == (1, 64)
    assert (perceiver.self_heads, perceiver.self_head_dim) == (8, 64)
    assert perceiver.ff_multiplier == 4


def test_default_perceiver_is_the_notes_proposed_8_1_1():
    config = models.get_config("r2plus1d_perceiver", input_shape=(8, 32, 32, 3), num_classes=3,
                               widths=(8, 16, 24, 32), num_latents=4, latent_dim=16)
    assert (config.cnn_blocks, config.cross_blocks, config.self_blocks) == (8, 1, 1)
    model = models.build_from_config("r2plus1d_perceiver", config)
    perceiver = model.get_layer("perceiver")
    assert (perceiver.cross_blocks, perceiver.self_blocks) == (1, 1)
    assert len(perceiver.self_layers) == 1 and len(perceiver.cross_layers) == 1


@pytest.mark.parametrize("name, optimizer", [("r2plus1d", "SGD"), ("r2plus1d_perceiver", "AdamW")])
def test_training_spec_warms_up_then_decays(name, optimizer):
    config = models.get_config(name, epochs=10, warmup_epochs=2)
    spec = models.get_family(name).training(config, steps_per_epoch=5)
    assert type(spec.optimizer).__name__ == optimizer
    assert (spec.monitor, spec.monitor_mode) == ("val_accuracy", "max")
    assert [m.name for m in spec.metrics] == ["accuracy", "top5_accuracy"]
    schedule = r2plus1d.learning_rate_schedule(config, steps_per_epoch=5)
    rates = [float(schedule(step)) for step in (0, 5, 10, 30, 50)]
    assert rates[0] == 0.0
    assert rates[1] == pytest.approx(config.learning_rate / 2)
    assert rates[2] == pytest.approx(config.learning_rate)
    assert rates[2] > rates[3] > rates[4] >= 0.0
    assert rates[4] == pytest.approx(0.0, abs=1e-9)


def test_weight_decay_skips_norms_biases_and_latents():
    config = models.get_config(
        "r2plus1d_perceiver", input_shape=(4, 16, 16, 3), cnn_blocks=1, num_classes=3,
        num_latents=4, latent_dim=16, cross_head_dim=8, self_heads=2, self_head_dim=8,
        self_blocks=1,
    )
    model = models.build_from_config("r2plus1d_perceiver", config)
    optimizer = models.get_family("r2plus1d_perceiver").training(config, 1).optimizer
    decayed = {v.name for v in model.trainable_weights if optimizer._use_weight_decay(v)}
    assert "kernel" in decayed
    assert not decayed & {"gamma", "beta", "bias", "latents"}


def test_frames_are_normalised_with_kinetics_statistics():
    model = models.build("r2plus1d", input_shape=(4, 16, 16, 3), cnn_blocks=1, num_classes=3)
    layer = model.get_layer("kinetics_normalization")
    mean = np.array(r2plus1d.KINETICS_MEAN, "float32")
    std = np.array(r2plus1d.KINETICS_STD, "float32")
    np.testing.assert_allclose(layer(mean[None]), 0.0, atol=1e-6)
    np.testing.assert_allclose(layer((mean + std)[None]), 1.0, atol=1e-5)


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown field.*latents.*valid fields are:.*num_latents"):
        models.get_config("r2plus1d_perceiver", latents=3)


def test_tiny_widths_keep_the_layout():
    model = models.build("r2plus1d_perceiver", input_shape=(8, 16, 16, 3), widths=(8, 16, 24, 32),
                         num_classes=3, num_latents=4, latent_dim=16, cross_head_dim=8,
                         self_heads=2, self_head_dim=8, self_blocks=1)
    backbone = model.get_layer("r2plus1d_backbone")
    assert backbone.get_layer("stem_conv_spatial").filters == 45 * 8 // 64
    assert backbone.get_layer("layer2_0_conv1_spatial").filters == r2plus1d.midplanes(8, 16)
    assert backbone.output_shape == (None, 1, 1, 1, 32)
    with pytest.raises(ValueError, match="widths must list 4 stage widths"):
        models.get_config("r2plus1d", widths=(8, 16))
    with pytest.raises(ValueError, match="widths must be > 0"):
        models.get_config("r2plus1d", widths=(8, 16, 0, 32))
