"""Frame backbones: feature sizes, preprocessing inside, local weights, unfreezing."""

import h5py
import keras
import numpy as np
import pytest

from models.backbones import BACKBONES, block_names, build_frame_backbone, unfreeze_last_blocks

# One worker runs the module: its module-scoped runs are built once.
pytestmark = pytest.mark.xdist_group("test_backbones")

SHAPE = (32, 32, 3)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def frames(count=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, *SHAPE)).astype("float32")


@pytest.fixture(scope="module")
def built():
    """Backbones built once for the tests that only read them."""
    return {name: build_frame_backbone(name, input_shape=SHAPE) for name in ("resnet50", "efficientnet_b0")}


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    """A headless ResNet50 and a .weights.h5 file of its weights."""
    bare = keras.applications.ResNet50(include_top=False, weights=None, input_shape=SHAPE,
                                       pooling="avg")
    path = tmp_path_factory.mktemp("weights") / "resnet50_notop.weights.h5"
    bare.save_weights(path)
    return bare, path


def test_registry_dims():
    assert BACKBONES == {"resnet50": 2048, "resnet101": 2048, "efficientnet_v2_s": 1280,
                         "efficientnet_v2_m": 1280, "efficientnet_b0": 1280,
                         "mobilenet_v3_small_minimalistic": 576}


# The deeper builds take seconds each on 2 cores.
HEAVY = {"resnet101", "efficientnet_v2_s", "efficientnet_v2_m"}


def preprocessed_by_hand(name, x):
    """The image each backbone's first convolution sees, from the table of
    models/backbones.py."""
    if name.startswith("resnet"):  # caffe: RGB -> BGR, minus the ImageNet means
        return x[..., ::-1] - np.array([103.939, 116.779, 123.68], "float32")
    if name.startswith("efficientnet_v2"):
        return x / 128.0 - 1.0
    if name.startswith("mobilenet_v3"):
        return x / 127.5 - 1.0
    # EfficientNet-B0 without ImageNet weights: x / 255, then a Normalization
    # that has not been adapted (mean 0, variance 1).
    return x / 255.0


def call_recording_first_image_input(model, x):
    """(`model`'s features of `x`, what the application's first padding or
    convolution received in that call: the frames after all
    preprocessing)."""
    application = model.layers[-1]
    first = next(layer for layer in application.layers
                 if isinstance(layer, (keras.layers.ZeroPadding2D, keras.layers.Conv2D)))
    seen = []
    call = first.call

    def recorded(inputs, *args, **kwargs):
        seen.append(np.asarray(inputs))
        return call(inputs, *args, **kwargs)

    first.call = recorded
    try:
        features = model(x, training=False)
    finally:
        del first.call
    return features, seen[0]


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name for name in sorted(BACKBONES)
])
def test_every_backbone_preprocesses_pools_to_its_feature_dim_and_is_frozen(name, built):
    model = built.get(name) or build_frame_backbone(name, input_shape=SHAPE)
    x = frames()
    features, first_input = call_recording_first_image_input(model, x)
    assert tuple(features.shape) == (2, BACKBONES[name])
    assert model.trainable_weights == []
    assert np.isfinite(np.asarray(features)).all()
    np.testing.assert_allclose(first_input, preprocessed_by_hand(name, x), rtol=1e-5, atol=1e-4)


def test_resnet_preprocessing_and_local_weights_file(resnet_weights):
    bare, path = resnet_weights
    model = build_frame_backbone("resnet50", weights=str(path), input_shape=SHAPE)
    x = frames()
    # caffe preprocessing by hand: RGB -> BGR, minus the ImageNet means
    by_hand = x[..., ::-1] - np.array([103.939, 116.779, 123.68], "float32")
    np.testing.assert_allclose(model(x), bare(by_hand), rtol=1e-5, atol=1e-5)


def test_legacy_h5_efficientnet_b0_weights_get_imagenet_normalization(tmp_path):
    from keras.src.legacy.saving import legacy_h5_format

    bare = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=SHAPE,
                                             pooling="avg")
    norm = next(layer for layer in bare.layers if isinstance(layer, keras.layers.Normalization))
    # what the ImageNet file holds: standard deviations where variances belong
    norm.adapt_mean.assign(IMAGENET_MEAN)
    norm.adapt_variance.assign(IMAGENET_STD)
    norm.finalize_state()
    path = tmp_path / "efficientnetb0_notop.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, bare)

    model = build_frame_backbone("efficientnet_b0", weights=str(path), input_shape=SHAPE)
    inner = model.get_layer("efficientnetb0")
    loaded = next(layer for layer in inner.layers if isinstance(layer, keras.layers.Normalization))
    np.testing.assert_allclose(np.asarray(loaded.adapt_variance), np.square(IMAGENET_STD), rtol=1e-6)
    # the same network with x / 255 normalised by (x - mean) / std
    norm.adapt_variance.assign(np.square(IMAGENET_STD))
    norm.finalize_state()
    x = frames()
    np.testing.assert_allclose(model(x), bare(x), rtol=1e-5, atol=1e-6)


def test_bad_names_and_weights(tmp_path, resnet_weights):
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg16'; expected one of \['efficientnet_b0'"):
        build_frame_backbone("vgg16")
    with pytest.raises(ValueError, match="absent.weights.h5' does not exist"):
        build_frame_backbone("resnet50", weights=str(tmp_path / "absent.weights.h5"))
    with pytest.raises(ValueError, match="path to a .h5"):
        build_frame_backbone("resnet50", weights=str(tmp_path / "weights.bin"))
    with pytest.raises(ValueError, match="resnet50_notop.weights.h5' does not fit backbone 'efficientnet_b0'"):
        build_frame_backbone("efficientnet_b0", weights=str(resnet_weights[1]), input_shape=SHAPE)


def trainable_layers(model):
    inner = model.layers[-1]
    return [layer for layer in inner.layers if layer.trainable and layer.weights]


@pytest.fixture
def unfrozen_b0(built):
    """The shared EfficientNet-B0, frozen again whatever the test does, so
    that the tests reading `built` see it frozen in any order."""
    model = built["efficientnet_b0"]
    yield model
    unfreeze_last_blocks(model, 0)
    assert model.trainable_weights == []


def test_unfreeze_last_efficientnet_blocks_keeps_batch_norm_frozen(unfrozen_b0):
    model = unfrozen_b0
    assert block_names(model) == [f"block{i}" for i in range(1, 8)]
    assert unfreeze_last_blocks(model, 2) == ["block7", "block6"]
    names = [layer.name for layer in trainable_layers(model)]
    assert names and all(name.startswith(("block6", "block7", "top_conv")) for name in names)
    assert any(name.startswith("block6") for name in names) and "top_conv" in names
    inner = model.layers[-1]
    batch_norms = [layer for layer in inner.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batch_norms and not any(layer.trainable for layer in batch_norms)
    assert len(model.trainable_weights) > 0
    # frozen batch norm runs in inference mode even when training
    x = frames()
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), rtol=1e-5, atol=1e-6)

    assert unfreeze_last_blocks(model, 0) == []
    assert model.trainable_weights == []
    with pytest.raises(ValueError, match=r"num_blocks must be an integer in 0..7"):
        unfreeze_last_blocks(model, 8)


def test_unfreeze_resnet_stage_and_trainable_flag():
    model = build_frame_backbone("resnet50", input_shape=SHAPE, trainable=True)
    inner = model.layers[-1]
    assert all(not layer.trainable for layer in inner.layers
               if isinstance(layer, keras.layers.BatchNormalization))
    assert len(model.trainable_weights) > 100
    assert block_names(model) == ["conv2", "conv3", "conv4", "conv5"]
    assert unfreeze_last_blocks(model, 1) == ["conv5"]
    names = [layer.name for layer in trainable_layers(model)]
    assert names and all(name.startswith("conv5_block") and name.endswith("conv") for name in names)


def test_unfreeze_last_mobilenet_blocks_and_the_head():
    model = build_frame_backbone("mobilenet_v3_small_minimalistic", input_shape=SHAPE)
    assert block_names(model) == ["expanded_conv"] + [f"expanded_conv_{k}" for k in range(1, 11)]
    assert unfreeze_last_blocks(model, 2) == ["expanded_conv_10", "expanded_conv_9"]
    names = {layer.name for layer in trainable_layers(model)}
    assert names == {f"expanded_conv_{k}_{part}" for k in (9, 10)
                     for part in ("expand", "depthwise", "project")} | {"conv_1"}
    assert unfreeze_last_blocks(model, 0) == [] and model.trainable_weights == []


def test_keras_file_round_trip(tmp_path, built):
    model = built["resnet50"]
    model.save(tmp_path / "backbone.keras")
    loaded = keras.saving.load_model(tmp_path / "backbone.keras")
    x = frames()
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
