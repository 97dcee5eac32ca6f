"""Frozen keras.applications image backbones that turn frames into features.

A backbone maps RGB frames with pixel values 0..255 to one globally
average-pooled feature vector per frame:

    frames [B, H, W, 3] float, 0..255  ->  features [B, D]

Each backbone carries its own keras.applications preprocessing inside the
model, so callers always pass raw pixels:

| name              | D    | preprocessing (inside the model)                   |
|-------------------|------|----------------------------------------------------|
| resnet50          | 2048 | caffe: RGB -> BGR, minus the ImageNet channel means |
| resnet101         | 2048 | caffe, as resnet50                                 |
| efficientnet_v2_s | 1280 | x / 128 - 1 (the application's own Rescaling)      |
| efficientnet_v2_m | 1280 | x / 128 - 1                                        |
| efficientnet_b0   | 1280 | x / 255, then ImageNet mean / std (Normalization)  |
| mobilenet_v3_small_minimalistic | 576 | x / 127.5 - 1 (the application's Rescaling) |

`mobilenet_v3_small_minimalistic` is MobileNetV3-Small without squeeze-
and-excitation or hard-swish (0.44 M parameters headless, against 4.0 M for
EfficientNet-B0): the variant meant for edge accelerators and int8, and
the cheapest backbone to trace, so the tiny frames-mode presets use it.

The returned model is a small wrapper: `images` input -> (caffe
preprocessing for ResNets) -> the headless keras.applications model (nested,
named after the application, e.g. `resnet50`) with `pooling="avg"`. Nesting
keeps the application's weight layout intact, so a weights file saved from
`keras.applications.ResNet50(include_top=False)` loads without renaming.

Example:

    >>> from models.backbones import build_frame_backbone
    >>> backbone = build_frame_backbone("efficientnet_b0", input_shape=(64, 64, 3))
    >>> backbone.output_shape
    (None, 1280)
"""

import functools
import os
import re
import warnings

import keras
import numpy as np

# name -> feature dimension of the pooled output.
BACKBONES = {
    "resnet50": 2048,
    "resnet101": 2048,
    "efficientnet_v2_s": 1280,
    "efficientnet_v2_m": 1280,
    "efficientnet_b0": 1280,
    "mobilenet_v3_small_minimalistic": 576,
}

_APPLICATIONS = {
    "resnet50": keras.applications.ResNet50,
    "resnet101": keras.applications.ResNet101,
    "efficientnet_v2_s": keras.applications.EfficientNetV2S,
    "efficientnet_v2_m": keras.applications.EfficientNetV2M,
    "efficientnet_b0": keras.applications.EfficientNetB0,
    "mobilenet_v3_small_minimalistic": functools.partial(
        keras.applications.MobileNetV3Small, minimalistic=True
    ),
}

# The ImageNet channel standard deviations that EfficientNet (v1) stores, as
# they are, in its Normalization layer's `variance`; see `_fix_b0_normalization`.
_IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="video_suite")
class ResNetPreprocessing(keras.layers.Layer):
    """keras.applications.resnet.preprocess_input as a layer ("caffe" mode).

    RGB pixels 0..255 become BGR with the ImageNet channel means subtracted,
    which is what the ResNet ImageNet weights were trained on. Being a layer,
    it travels with the model through `.keras` files and SavedModels.

    Example:

    >>> layer = ResNetPreprocessing()
    >>> np.round(np.asarray(layer(np.full((1, 2, 2, 3), 128.0, "float32"))[0, 0, 0]), 3)
    array([24.061, 11.221,  4.32 ], dtype=float32)
    """

    def call(self, inputs):
        return keras.applications.resnet.preprocess_input(
            keras.ops.cast(inputs, self.compute_dtype)
        )

    def compute_output_shape(self, input_shape):
        return input_shape



def _check_name(name):
    if name not in BACKBONES:
        raise ValueError(
            f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}"
        )


def _resolve_weights(weights):
    """None, "imagenet" or an existing .h5 / .weights.h5 file path."""
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        return None
    weights = os.fspath(weights)
    if weights == "imagenet":
        return weights
    if not weights.endswith(".h5"):
        raise ValueError(
            f"weights must be None, 'imagenet' or a path to a .h5 / .weights.h5 "
            f"file, got {weights!r}"
        )
    if not os.path.isfile(weights):
        raise ValueError(f"weights file {weights!r} does not exist")
    return weights


def _fix_b0_normalization(application):
    """Matches a loaded EfficientNetB0 to what `weights="imagenet"` builds.

    The ImageNet EfficientNet (v1) weights store the channel standard
    deviations where Keras' Normalization expects variances; with
    `weights="imagenet"` Keras therefore adds a Rescaling(1 / sqrt(std))
    after it. A model built with `weights=None` has no such layer, so when a
    local file carries those standard deviations we store their squares
    instead, which gives the same (x - mean) / std. A file whose
    normalization holds anything else (e.g. zeros/ones from a randomly
    initialised model) is left as it is.
    """
    for layer in application.layers:
        if isinstance(layer, keras.layers.Normalization) and hasattr(layer, "adapt_variance"):
            variance = keras.ops.convert_to_numpy(layer.adapt_variance)
            if np.allclose(variance, _IMAGENET_STDDEV_RGB, atol=1e-3):
                layer.adapt_variance.assign(np.square(np.asarray(_IMAGENET_STDDEV_RGB)))
                layer.finalize_state()
            return


def build_frame_backbone(name, weights=None, input_shape=(224, 224, 3), trainable=False):
    """Builds a headless, average-pooled keras.applications backbone.

    Args:
        name: one of `BACKBONES`: "resnet50", "resnet101",
            "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_b0",
            "mobilenet_v3_small_minimalistic".
        weights: `None` (random initialisation), `"imagenet"` (Keras
            downloads the weights; needs internet) or a path to a local
            `.h5` / `.weights.h5` file holding the weights of the headless
            application, e.g. one written by
            `keras.applications.ResNet50(include_top=False).save_weights(...)`.
        input_shape: frame shape (H, W, 3); keras.applications needs
            H, W >= 32.
        trainable: `False` freezes every layer. `True` makes the backbone
            trainable except its BatchNormalization layers, which stay
            frozen so they keep running in inference mode (fine-tuning with
            small video batches would otherwise wreck their statistics).
            Use `unfreeze_last_blocks` to train only the top blocks.

    Returns:
        A `keras.Model` named `<name>_backbone` taking `images` [B, H, W, 3]
        (float, 0..255, RGB) and returning features [B, BACKBONES[name]].

    Raises:
        ValueError: unknown name (the message lists the valid ones), a
            weights file that is missing or does not fit the architecture.

    Example:

        >>> backbone = build_frame_backbone("resnet50", input_shape=(32, 32, 3))
        >>> backbone(np.zeros((2, 32, 32, 3), "float32")).shape
        TensorShape([2, 2048])
    """
    _check_name(name)
    weights = _resolve_weights(weights)
    input_shape = tuple(int(size) for size in input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {input_shape!r}")

    constructor = _APPLICATIONS[name]
    kwargs = dict(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=input_shape,
        pooling="avg",
    )
    if name.startswith(("efficientnet_v2", "mobilenet_v3")):
        kwargs["include_preprocessing"] = True
    application = constructor(**kwargs)

    if weights not in (None, "imagenet"):
        try:
            # A mismatching file makes Keras warn once per layer before it
            # raises; the one error below says it all.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                application.load_weights(weights)
        except (ValueError, KeyError, OSError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(":")
            raise ValueError(
                f"weights file {weights!r} does not fit backbone {name!r} "
                f"(headless, input {input_shape}): {first_line}"
            ) from None
        if name == "efficientnet_b0":
            _fix_b0_normalization(application)

    images = keras.Input(shape=input_shape, name="images")
    x = images
    if name.startswith("resnet"):
        x = ResNetPreprocessing(name="resnet_preprocessing")(x)
    features = application(x)
    model = keras.Model(images, features, name=f"{name}_backbone")

    if trainable:
        model.trainable = True
        for layer in _application_of(model).layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    else:
        model.trainable = False
    return model


def _application_of(model):
    """The nested keras.applications model inside a `build_frame_backbone` model."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    return model


# A layer's block: EfficientNet names sub-blocks "block<group><letter>_...",
# ResNet names them "conv<stage>_block<k>_...", MobileNetV3 its inverted
# residual blocks "expanded_conv_..." (the first) and "expanded_conv_<k>_...".
_EFFICIENTNET_BLOCK = re.compile(r"^block(\d+)[a-z]+_")
_RESNET_STAGE = re.compile(r"^conv(\d+)_block\d+_")
_MOBILENET_BLOCK = re.compile(r"^(expanded_conv(?:_\d+)?)_")


def block_names(backbone_model):
    """The architecture's trainable blocks, first to last.

    EfficientNet (v1 and v2): the block groups "block1" ... "block7" (v2-S
    has 6); each group holds the sub-blocks "block6a", "block6b", ....
    ResNet: the stages "conv2" ... "conv5"; the stem ("conv1", "pool1") is
    not a block. MobileNetV3: each inverted residual block, "expanded_conv"
    and "expanded_conv_1" ... "expanded_conv_10" for Small (Keras names no
    stages there); its stem ("conv") is not a block, its last 1x1
    convolution ("conv_1") is the head.
    """
    names = []
    for layer in _application_of(backbone_model).layers:
        group = _block_of(layer.name)
        if group is not None and group not in names:
            names.append(group)
    return names


def _block_of(layer_name):
    match = _EFFICIENTNET_BLOCK.match(layer_name)
    if match:
        return f"block{match.group(1)}"
    match = _RESNET_STAGE.match(layer_name)
    if match:
        return f"conv{match.group(1)}"
    match = _MOBILENET_BLOCK.match(layer_name)
    if match:
        return match.group(1)
    return None


def unfreeze_last_blocks(backbone_model, num_blocks):
    """Makes the last `num_blocks` blocks trainable; everything else frozen.

    Blocks are the architecture's stages (see `block_names`): EfficientNet's
    block groups ("block7", "block6", ... counting back from the top),
    ResNet's stages ("conv5", "conv4", ...) and MobileNetV3's inverted
    residual blocks ("expanded_conv_10", ...). Layers after the last block
    (EfficientNet's `top_conv` / `top_bn`, MobileNetV3's `conv_1` /
    `conv_1_bn`) are unfrozen together with it
    whenever `num_blocks >= 1`; the stem and the preprocessing stay frozen.
    Every BatchNormalization layer stays frozen (trainable=False), so it
    keeps running in inference mode with its ImageNet statistics.

    Args:
        backbone_model: a model from `build_frame_backbone` (or a bare
            keras.applications ResNet / EfficientNet / MobileNetV3 model).
        num_blocks: 0 freezes everything; at most `len(block_names(...))`.

    Returns:
        The names of the unfrozen blocks, last first (e.g. ["block7",
        "block6"]).

    Raises:
        ValueError: `num_blocks` negative or larger than the number of blocks.

    Example:

        >>> backbone = build_frame_backbone("efficientnet_b0", input_shape=(32, 32, 3))
        >>> unfreeze_last_blocks(backbone, 2)
        ['block7', 'block6']
    """
    blocks = block_names(backbone_model)
    if not blocks:
        raise ValueError(
            f"model {backbone_model.name!r} has no ResNet, EfficientNet or MobileNetV3 blocks "
            "to unfreeze; expected a model from build_frame_backbone"
        )
    if not isinstance(num_blocks, (int, np.integer)) or not 0 <= num_blocks <= len(blocks):
        raise ValueError(
            f"num_blocks must be an integer in 0..{len(blocks)} for "
            f"{backbone_model.name!r} (blocks {blocks}), got {num_blocks!r}"
        )
    chosen = blocks[len(blocks) - num_blocks:]
    application = _application_of(backbone_model)

    # A container's trainable flag gates its children's weights, so the
    # containers stay trainable and each layer gets its own flag.
    backbone_model.trainable = True
    application.trainable = True
    for layer in backbone_model.layers:
        if layer is not application:
            layer.trainable = False
    after_last_block = False
    for layer in application.layers:
        block = _block_of(layer.name)
        if block is not None:
            after_last_block = block == blocks[-1]
            selected = block in chosen
        else:
            # Layers between the last block and the output (the head).
            selected = after_last_block and num_blocks >= 1
        if isinstance(layer, keras.layers.BatchNormalization):
            selected = False
        layer.trainable = selected
    return list(reversed(chosen))


def feature_dim(name):
    """The feature dimension D of backbone `name`."""
    _check_name(name)
    return BACKBONES[name]


__all__ = [
    "BACKBONES",
    "ResNetPreprocessing",
    "block_names",
    "build_frame_backbone",
    "feature_dim",
    "unfreeze_last_blocks",
]
