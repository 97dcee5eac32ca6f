"""R(2+1)D-18 clip classifiers: the plain network and a Perceiver head.

`r2plus1d` is torchvision's `r2plus1d_18` layer for layer:

    stem:   Conv(1,7,7) 3->45 stride (1,2,2) pad (0,3,3), BN, ReLU,
            Conv(3,1,1) 45->64 pad (1,0,0), BN, ReLU
    layer1..layer4: two BasicBlocks each, 64/128/256/512 channels, the
            first block of layers 2-4 strides 2 in time and space
    BasicBlock: conv1 = Conv2Plus1D(in, out, stride), BN, ReLU
                conv2 = Conv2Plus1D(out, out), BN
                shortcut = Conv(1,1,1) stride s + BN where the shape
                changes; add, ReLU
    Conv2Plus1D: Conv(1,3,3) stride (1,s,s) pad (0,1,1) to `midplanes`,
            BN, ReLU, Conv(3,1,1) stride (s,1,1) pad (1,0,0)
    midplanes = (in * out * 27) // (in * 9 + 3 * out), computed once per
            block from its input and output widths and used by both convs
    head:   global average pool -> Dense(num_classes)

Convolutions have no bias; batch norm uses PyTorch's eps 1e-5 and momentum
0.1 (Keras momentum 0.9). PyTorch pads symmetrically; Keras' "same" pads a
strided convolution asymmetrically on even sizes, so every strided
convolution here gets an explicit `ZeroPadding3D` and "valid" padding, and
the stride-1 ones use "same", which for odd kernels and stride 1 is the same
symmetric padding. Output sizes follow PyTorch's `floor((n + 2p - k) / s) + 1`
for every input size, odd or even, and the weights of a torchvision
checkpoint compute the same function here.

The backbone (stem and blocks, no pooling) is a nested functional model
named `r2plus1d_backbone` whose output is the last feature map
[B, T', H', W', C]. `cnn_blocks` (1 to 8) ends it after that many
BasicBlocks. Its trainable parameters (stem included, head excluded, batch
norm gamma and beta counted, moving statistics not) are 1,929,865 /
7,804,601 / 17,137,693 / 31,300,125 for 4 / 6 / 7 / 8 blocks.

`r2plus1d_perceiver` flattens the backbone's feature map into M = T'H'W'
tokens, adds a fixed sinusoidal (t, h, w) position encoding (no
parameters), and feeds them to a `Perceiver` layer named `perceiver`
(see `models/perceiver.py`) followed by Dense(num_classes).

Both models take `frames` [B, T, H, W, C] with values in [0, 1] and first
normalise them with the Kinetics-400 mean and standard deviation that
torchvision's R(2+1)D weights expect (`normalize_input`).
"""

import dataclasses
import os
import re

import keras
import numpy as np

from models.config import ModelConfig, check_input_rank, check_positive, check_rate
from models.convlstm import classifier_training_spec, clip_example_batch
from models.perceiver import Perceiver, VideoPositionEncoding
from models.capabilities import (
    Ablation, AttentionMap, GradCamTarget, LatencyCase, sub_model,
)
from models.registry import Family, TrainingSpec, register

BACKBONE_NAME = "r2plus1d_backbone"
PERCEIVER_NAME = "perceiver"
MAX_BLOCKS = 8
STAGE_WIDTHS = (64, 128, 256, 512)
STEM_WIDTH = 45
# torchvision's Kinetics-400 normalisation for R(2+1)D inputs in [0, 1].
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


# --------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class R2Plus1DConfig(ModelConfig):
    """Config of the `r2plus1d` family.

    Args:
        input_shape: clip shape (T, H, W, C); default 16x112x112x3.
        num_classes: number of classes, 51 as in HMDB51; 1 gives one
            sigmoid output.
        cnn_blocks: BasicBlocks kept in the backbone, 1 to 8.
        widths: channels of the four stages, torchvision's (64, 128, 256,
            512); smaller widths (the stem's 45 scaled alike) make tiny
            models for tests and quick searches.
        backbone_weights: optional file loaded into the backbone after it
            is built: a Keras `.weights.h5` of the backbone, a `.keras`
            model that contains a `r2plus1d_backbone` (or is one), or an
            `.npz` of a torchvision `r2plus1d_18` state dict (arrays keyed by
            the state-dict names); see `load_backbone_weights`.
        freeze_backbone: make the backbone non-trainable (its batch norms
            then run in inference mode).
        normalize_input: normalise frames in [0, 1] with the Kinetics mean
            and std (per channel for 3 channels, their averages otherwise).
        optimizer: `"sgd"` (momentum, decoupled weight decay) or `"adamw"`.
        learning_rate: peak learning rate after the linear warm-up; the
            schedule then decays it to 0 along a cosine over the remaining
            steps of `epochs`.
        momentum: SGD momentum.
        weight_decay: decoupled weight decay; batch/layer norm parameters,
            biases and the latent array are excluded.
        warmup_epochs: epochs of linear warm-up from 0.

    The design notes give no optimizer for this family. The defaults follow
    torchvision's video classification recipe (SGD, momentum 0.9, weight
    decay 1e-4, lr 0.01, linear warm-up), with a cosine decay in place of
    its step milestones so that no milestone depends on `epochs`.
    """

    input_shape: tuple = (16, 112, 112, 3)
    num_classes: int = 51
    cnn_blocks: int = 8
    widths: tuple = STAGE_WIDTHS
    backbone_weights: str | None = None
    freeze_backbone: bool = False
    normalize_input: bool = True
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    batch_size: int = 8
    epochs: int = 30
    patience: int = 8

    def validate(self):
        super().validate()
        check_input_rank(self, 4, "(T, H, W, C)")
        if (
            not isinstance(self.cnn_blocks, int)
            or isinstance(self.cnn_blocks, bool)
            or not 1 <= self.cnn_blocks <= MAX_BLOCKS
        ):
            raise ValueError(
                f"cnn_blocks must be an integer from 1 to {MAX_BLOCKS}, "
                f"got {self.cnn_blocks!r}"
            )
        if len(self.widths) != len(STAGE_WIDTHS):
            raise ValueError(
                f"widths must list {len(STAGE_WIDTHS)} stage widths, got {self.widths!r}"
            )
        check_positive(self, "widths")
        time_stride, space_stride = backbone_strides(self.cnn_blocks)
        frames, height, width, _ = self.input_shape
        too_small = [
            (axis, size, minimum)
            for axis, size, minimum in (
                ("frames", frames, time_stride),
                ("height", height, space_stride),
                ("width", width, space_stride),
            )
            if size is not None and size < minimum
        ]
        if too_small:
            found = ", ".join(f"{axis} {size} < {minimum}" for axis, size, minimum in too_small)
            raise ValueError(
                f"input_shape {tuple(self.input_shape)!r} is too small for "
                f"cnn_blocks={self.cnn_blocks}: the backbone strides time by "
                f"{time_stride} and space by {space_stride}, so clips need at least "
                f"{time_stride} frames of {space_stride}x{space_stride} pixels ({found})"
            )
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}")


@dataclasses.dataclass(frozen=True)
class R2Plus1DPerceiverConfig(R2Plus1DConfig):
    """Config of `r2plus1d_perceiver`: the backbone fields plus the Perceiver's.

    Args:
        num_latents: rows of the learned latent array, the Perceiver's
            number of latent vectors, 256.
        latent_dim: width of each latent vector (channels of the latent
            array and of every attention block's output), 512.
        cross_blocks: cross-attention blocks (latents attend to the tokens);
            0 runs the self-attention blocks on the tokens directly.
        self_blocks: latent self-attention blocks, `self_blocks /
            cross_blocks` after each cross-attention block.
        cross_heads: attention heads of every cross-attention block, 1.
        cross_head_dim: query/key width of each cross-attention head, 64.
        self_heads: attention heads of every latent self-attention block, 8.
        self_head_dim: query/key width of each self-attention head, 64.
        ff_multiplier: GEGLU hidden width, 4 x latent_dim.
        dropout: dropout on every attention and feed-forward output.
        position_encoding: add the fixed sinusoidal (t, h, w) encoding to
            the tokens.

    The default architecture is the notes' proposed model: all 8 blocks +
    1 cross-attention + 1 self-attention block (0.703 in their table).
    Their ablation rows stay one override away (`--self-blocks 6` gives
    8+1+6; `tuning.search --grid seed-ablation` runs all ten). The notes
    give no optimizer: AdamW (lr 3e-4, weight decay 0.05, linear warm-up,
    cosine decay) is the usual choice for attention models and is ours.
    """

    num_latents: int = 256
    latent_dim: int = 512
    cross_blocks: int = 1
    self_blocks: int = 1
    cross_heads: int = 1
    cross_head_dim: int = 64
    self_heads: int = 8
    self_head_dim: int = 64
    ff_multiplier: int = 4
    dropout: float = 0.1
    position_encoding: bool = True
    optimizer: str = "adamw"
    learning_rate: float = 3e-4
    weight_decay: float = 0.05

    def validate(self):
        super().validate()
        check_positive(
            self,
            "num_latents",
            "latent_dim",
            "cross_heads",
            "cross_head_dim",
            "self_heads",
            "self_head_dim",
            "ff_multiplier",
        )
        check_rate(self, "dropout")
        for name in ("cross_blocks", "self_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.cross_blocks + self.self_blocks < 1:
            raise ValueError(
                "cross_blocks + self_blocks must be >= 1 (the Perceiver needs at "
                "least one attention block), got 0 + 0"
            )
        if self.cross_blocks and self.self_blocks % self.cross_blocks:
            raise ValueError(
                f"self_blocks must be divisible by cross_blocks (each cross-attention "
                f"block is followed by self_blocks / cross_blocks self-attention "
                f"blocks), got self_blocks={self.self_blocks}, "
                f"cross_blocks={self.cross_blocks}"
            )


# --------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------


def block_plan(cnn_blocks=MAX_BLOCKS, widths=STAGE_WIDTHS):
    """(name, in_width, out_width, stride) of the first `cnn_blocks` blocks."""
    plan = []
    in_width = widths[0]
    for stage, width in enumerate(widths, start=1):
        for index in range(2):
            stride = 2 if stage > 1 and index == 0 else 1
            plan.append((f"layer{stage}_{index}", in_width, width, stride))
            in_width = width
    return plan[:cnn_blocks]


def midplanes(in_width, out_width):
    """torchvision's width between the (1,3,3) and (3,1,1) convolutions."""
    return (in_width * out_width * 27) // (in_width * 9 + 3 * out_width)


def backbone_strides(cnn_blocks):
    """(time, space) downsampling factors of a backbone with `cnn_blocks`."""
    strided = sum(1 for *_, stride in block_plan(cnn_blocks) if stride == 2)
    return 2**strided, 2 * 2**strided


def _conv_size(size, kernel, stride, padding):
    if size is None:
        return None
    return (size + 2 * padding - kernel) // stride + 1


def stem_width(widths=STAGE_WIDTHS):
    """Width between the stem's two convolutions: 45 for torchvision's 64."""
    return max(1, STEM_WIDTH * widths[0] // STAGE_WIDTHS[0])


def feature_map_shape(input_shape, cnn_blocks=MAX_BLOCKS, widths=STAGE_WIDTHS):
    """The backbone's output shape (T', H', W', C'), as PyTorch computes it."""
    frames, height, width, _ = input_shape
    height = _conv_size(height, 7, 2, 3)
    width = _conv_size(width, 7, 2, 3)
    channels = widths[0]
    for _, _, out_width, stride in block_plan(cnn_blocks, widths):
        frames = _conv_size(frames, 3, stride, 1)
        height = _conv_size(height, 3, stride, 1)
        width = _conv_size(width, 3, stride, 1)
        channels = out_width
    return frames, height, width, channels


# --------------------------------------------------------------------------
# Backbone
# --------------------------------------------------------------------------


def _conv(x, filters, kernel, stride, padding, name):
    """Conv3D without bias, padded symmetrically as PyTorch pads."""
    same = all(s == 1 and p == k // 2 for k, s, p in zip(kernel, stride, padding))
    if any(padding) and not same:
        x = keras.layers.ZeroPadding3D(
            tuple((p, p) for p in padding), name=f"{name}_pad"
        )(x)
    return keras.layers.Conv3D(
        filters,
        kernel,
        strides=stride,
        padding="same" if same else "valid",
        use_bias=False,
        # torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
        kernel_initializer=keras.initializers.VarianceScaling(
            2.0, mode="fan_out", distribution="untruncated_normal"
        ),
        name=name,
    )(x)


def _batch_norm(x, name):
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name
    )(x)


def _conv2plus1d(x, mid, out_width, stride, name):
    x = _conv(x, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), f"{name}_spatial")
    x = _batch_norm(x, f"{name}_mid_bn")
    x = keras.layers.ReLU(name=f"{name}_mid_relu")(x)
    return _conv(x, out_width, (3, 1, 1), (stride, 1, 1), (1, 0, 0), f"{name}_temporal")


def _basic_block(x, in_width, out_width, stride, name):
    mid = midplanes(in_width, out_width)
    shortcut = x
    x = _conv2plus1d(x, mid, out_width, stride, f"{name}_conv1")
    x = _batch_norm(x, f"{name}_conv1_bn")
    x = keras.layers.ReLU(name=f"{name}_conv1_relu")(x)
    x = _conv2plus1d(x, mid, out_width, 1, f"{name}_conv2")
    x = _batch_norm(x, f"{name}_conv2_bn")
    if stride != 1 or in_width != out_width:
        shortcut = _conv(
            shortcut, out_width, (1, 1, 1), (stride,) * 3, (0, 0, 0),
            f"{name}_downsample_conv",
        )
        shortcut = _batch_norm(shortcut, f"{name}_downsample_bn")
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_r2plus1d_backbone(
    input_shape, cnn_blocks=MAX_BLOCKS, widths=STAGE_WIDTHS, name=BACKBONE_NAME
):
    """The R(2+1)D-18 stem and the first `cnn_blocks` BasicBlocks.

    Args:
        input_shape: (T, H, W, C) of the (already normalised) clips.
        cnn_blocks: BasicBlocks to keep, 1 to 8.
        widths: channels of the four stages; torchvision's (64, 128, 256,
            512). Other widths scale the stem's 45 in proportion.
        name: the model's name.

    Returns:
        A functional `keras.Model` from [B, T, H, W, C] to the last feature
        map [B, T', H', W', C'] (see `feature_map_shape`).

    Example:

    >>> backbone = build_r2plus1d_backbone((8, 32, 32, 3), cnn_blocks=4)
    >>> backbone.output_shape
    (None, 4, 8, 8, 128)
    """
    clips = keras.Input(shape=tuple(input_shape), name="clips")
    x = _conv(clips, stem_width(widths), (1, 7, 7), (1, 2, 2), (0, 3, 3), "stem_conv_spatial")
    x = _batch_norm(x, "stem_bn_spatial")
    x = keras.layers.ReLU(name="stem_relu_spatial")(x)
    x = _conv(x, widths[0], (3, 1, 1), (1, 1, 1), (1, 0, 0), "stem_conv_temporal")
    x = _batch_norm(x, "stem_bn_temporal")
    x = keras.layers.ReLU(name="stem_relu_temporal")(x)
    for block_name, in_width, out_width, stride in block_plan(cnn_blocks, widths):
        x = _basic_block(x, in_width, out_width, stride, block_name)
    return keras.Model(clips, x, name=name)


# --------------------------------------------------------------------------
# Backbone weights: Keras files and torchvision state dicts
# --------------------------------------------------------------------------

_TORCH_LAYER_PATTERNS = (
    (r"stem_conv_spatial", "stem.0"),
    (r"stem_bn_spatial", "stem.1"),
    (r"stem_conv_temporal", "stem.3"),
    (r"stem_bn_temporal", "stem.4"),
    (r"layer(\d)_(\d)_conv(\d)_spatial", r"layer\1.\2.conv\3.0.0"),
    (r"layer(\d)_(\d)_conv(\d)_mid_bn", r"layer\1.\2.conv\3.0.1"),
    (r"layer(\d)_(\d)_conv(\d)_temporal", r"layer\1.\2.conv\3.0.3"),
    (r"layer(\d)_(\d)_conv(\d)_bn", r"layer\1.\2.conv\3.1"),
    (r"layer(\d)_(\d)_downsample_conv", r"layer\1.\2.downsample.0"),
    (r"layer(\d)_(\d)_downsample_bn", r"layer\1.\2.downsample.1"),
)


def torchvision_name(layer_name):
    """The torchvision `r2plus1d_18` module path of one backbone layer.

    Example:

    >>> torchvision_name("layer2_0_conv1_temporal")
    'layer2.0.conv1.0.3'
    """
    for pattern, replacement in _TORCH_LAYER_PATTERNS:
        if re.fullmatch(pattern, layer_name):
            return re.sub(pattern, replacement, layer_name)
    return None


def torchvision_state_dict(backbone):
    """The backbone's weights as a torchvision-style state dict of arrays.

    The inverse of `load_torchvision_state_dict`: conv kernels become
    [out, in, kt, kh, kw], batch norms `weight`, `bias`, `running_mean`,
    `running_var`.
    """
    state = {}
    for layer in backbone.layers:
        prefix = torchvision_name(layer.name)
        if prefix is None:
            continue
        if isinstance(layer, keras.layers.Conv3D):
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            state[f"{prefix}.weight"] = np.transpose(kernel, (4, 3, 0, 1, 2))
        else:
            for key, variable in zip(
                ("weight", "bias", "running_mean", "running_var"),
                (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance),
            ):
                state[f"{prefix}.{key}"] = keras.ops.convert_to_numpy(variable)
    return state


def load_torchvision_state_dict(backbone, state):
    """Copies torchvision `r2plus1d_18` weights into `backbone`.

    Keys of layers the backbone does not have (the classifier `fc.*`, blocks
    beyond `cnn_blocks`, `num_batches_tracked`) are ignored, so a full
    checkpoint loads into a truncated backbone.

    Args:
        backbone: a model from `build_r2plus1d_backbone`.
        state: mapping from state-dict names to arrays, e.g.
            `{k: v.numpy() for k, v in model.state_dict().items()}`.

    Raises:
        ValueError: a backbone weight is missing or has the wrong shape.
    """
    missing, wrong = [], []
    assignments = []
    for layer in backbone.layers:
        prefix = torchvision_name(layer.name)
        if prefix is None:
            continue
        if isinstance(layer, keras.layers.Conv3D):
            pairs = [(layer.kernel, "weight", (2, 3, 4, 1, 0))]
        else:
            pairs = [
                (layer.gamma, "weight", None),
                (layer.beta, "bias", None),
                (layer.moving_mean, "running_mean", None),
                (layer.moving_variance, "running_var", None),
            ]
        for variable, key, axes in pairs:
            name = f"{prefix}.{key}"
            if name not in state:
                missing.append(name)
                continue
            value = np.asarray(state[name], dtype="float32")
            if axes is not None and value.ndim == 5:
                value = np.transpose(value, axes)
            if tuple(value.shape) != tuple(variable.shape):
                wrong.append(f"{name} {tuple(value.shape)} != {tuple(variable.shape)}")
                continue
            assignments.append((variable, value))
    if missing or wrong:
        details = "; ".join(
            ([f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"] if missing else [])
            + ([f"wrong shape {', '.join(wrong[:5])}"] if wrong else [])
        )
        raise ValueError(f"the state dict does not fit the R(2+1)D backbone: {details}")
    for variable, value in assignments:
        variable.assign(value)


def load_backbone_weights(backbone, path):
    """Loads `path` into `backbone`; the format follows the file name.

    - `*.weights.h5`: `backbone.save_weights(...)` of the same architecture.
    - `*.keras`: a saved model that is, or contains, a `r2plus1d_backbone`;
      every backbone layer is copied by name (so a deeper backbone's file
      loads into a truncated one).
    - `*.npz`: a torchvision `r2plus1d_18` state dict saved with
      `numpy.savez` (see `load_torchvision_state_dict`).

    Raises:
        ValueError: the file does not exist, has another format, or does not
            fit the backbone.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"backbone_weights: no such file {path!r}")
    if path.endswith(".npz"):
        with np.load(path) as arrays:
            load_torchvision_state_dict(backbone, dict(arrays))
    elif path.endswith(".weights.h5"):
        try:
            backbone.load_weights(path)
        except ValueError as error:
            raise ValueError(
                f"backbone_weights {path!r} does not fit the backbone: {error}"
            ) from None
    elif path.endswith(".keras"):
        saved = keras.saving.load_model(path, compile=False)
        source = saved if saved.name == BACKBONE_NAME else _find_backbone(saved, path)
        for layer in backbone.layers:
            if not layer.weights:
                continue
            try:
                weights = source.get_layer(layer.name).get_weights()
                layer.set_weights(weights)
            except ValueError as error:
                raise ValueError(
                    f"backbone_weights {path!r}: layer {layer.name!r} does not fit: {error}"
                ) from None
    else:
        raise ValueError(
            f"backbone_weights must end in .weights.h5, .keras or .npz, got {path!r}"
        )


def _find_backbone(model, path):
    try:
        return model.get_layer(BACKBONE_NAME)
    except ValueError:
        raise ValueError(
            f"backbone_weights {path!r} holds no layer named {BACKBONE_NAME!r}"
        ) from None


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def _normalization(config):
    channels = config.input_shape[-1]
    mean, std = np.array(KINETICS_MEAN), np.array(KINETICS_STD)
    if channels != 3:
        mean, std = np.full(channels, mean.mean()), np.full(channels, std.mean())
    return keras.layers.Normalization(
        axis=-1, mean=mean.tolist(), variance=(std**2).tolist(), name="kinetics_normalization"
    )


def _backbone_features(config):
    """frames input, backbone model and its feature map, weights loaded."""
    frames = keras.Input(shape=tuple(config.input_shape), name="frames")
    backbone = build_r2plus1d_backbone(config.input_shape, config.cnn_blocks, config.widths)
    if config.backbone_weights:
        load_backbone_weights(backbone, config.backbone_weights)
    if config.freeze_backbone:
        backbone.trainable = False
    x = _normalization(config)(frames) if config.normalize_input else frames
    return frames, backbone, backbone(x)


def _classifier(config, x):
    # float32 under a mixed-precision policy: probabilities, loss and the
    # exported signature keep full precision.
    if config.num_classes == 1:
        return keras.layers.Dense(
            1, activation="sigmoid", dtype="float32", name="probabilities"
        )(x)
    return keras.layers.Dense(
        config.num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)


def build_r2plus1d(config: R2Plus1DConfig) -> keras.Model:
    """R(2+1)D-18 (truncated to `cnn_blocks`) with average pool and softmax.

    Example:

    >>> model = build_r2plus1d(R2Plus1DConfig(input_shape=(4, 16, 16, 3),
    ...                                       cnn_blocks=2, num_classes=3))
    >>> model.output_shape
    (None, 3)
    """
    frames, _, features = _backbone_features(config)
    pooled = keras.layers.GlobalAveragePooling3D(name="average_pool")(features)
    return keras.Model({"frames": frames}, _classifier(config, pooled), name="r2plus1d")


def build_r2plus1d_perceiver(config: R2Plus1DPerceiverConfig) -> keras.Model:
    """R(2+1)D backbone -> M tokens -> Perceiver -> softmax.

    Example:

    >>> model = build_r2plus1d_perceiver(R2Plus1DPerceiverConfig(
    ...     input_shape=(4, 16, 16, 3), cnn_blocks=2, num_classes=3,
    ...     num_latents=4, latent_dim=16, self_blocks=1, cross_head_dim=8,
    ...     self_heads=2, self_head_dim=8))
    >>> model.get_layer("perceiver").output.shape
    (None, 16)
    """
    frames, _, features = _backbone_features(config)
    if config.position_encoding:
        features = VideoPositionEncoding(name="position_encoding")(features)
    tokens = keras.layers.Reshape((-1, features.shape[-1]), name="tokens")(features)
    pooled = Perceiver(
        num_latents=config.num_latents,
        latent_dim=config.latent_dim,
        cross_blocks=config.cross_blocks,
        self_blocks=config.self_blocks,
        cross_heads=config.cross_heads,
        cross_head_dim=config.cross_head_dim,
        self_heads=config.self_heads,
        self_head_dim=config.self_head_dim,
        ff_multiplier=config.ff_multiplier,
        dropout=config.dropout,
        name=PERCEIVER_NAME,
    )(tokens)
    return keras.Model(
        {"frames": frames}, _classifier(config, pooled), name="r2plus1d_perceiver"
    )


def count_params(layer, trainable_only=True):
    """Number of (trainable) scalars in a layer or model."""
    weights = layer.trainable_weights if trainable_only else layer.weights
    return int(sum(np.prod(w.shape) for w in weights))


def cnn_params(model):
    """Trainable parameters of a model's `r2plus1d_backbone` (0 if none).

    Counted as if the backbone were trainable, so a frozen backbone still
    reports its size.
    """
    try:
        backbone = model.get_layer(BACKBONE_NAME)
    except ValueError:
        return 0
    return int(
        sum(
            np.prod(w.shape)
            for layer in backbone.layers
            for w in layer.weights
            if not w.name.startswith("moving_")
        )
    )


def attention_params(model):
    """Parameters of a model's `perceiver` layer (0 if none)."""
    try:
        return count_params(model.get_layer(PERCEIVER_NAME))
    except ValueError:
        return 0


# --------------------------------------------------------------------------
# Training defaults and registration
# --------------------------------------------------------------------------


def learning_rate_schedule(config: R2Plus1DConfig, steps_per_epoch: int):
    """Linear warm-up from 0 over `warmup_epochs`, then cosine decay to 0."""
    steps_per_epoch = max(int(steps_per_epoch), 1)
    warmup_steps = config.warmup_epochs * steps_per_epoch
    decay_steps = max(config.epochs * steps_per_epoch - warmup_steps, 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else config.learning_rate,
        decay_steps=decay_steps,
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def r2plus1d_training(config: R2Plus1DConfig, steps_per_epoch: int) -> TrainingSpec:
    """Optimizer, loss and metrics: see the config's docstring for the choice."""
    schedule = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule,
            momentum=config.momentum,
            weight_decay=config.weight_decay or None,
        )
    else:
        optimizer = keras.optimizers.AdamW(
            learning_rate=schedule, weight_decay=config.weight_decay
        )
    if config.weight_decay:
        optimizer.exclude_from_weight_decay(
            var_names=["gamma", "beta", "bias", "latents"]
        )
    return classifier_training_spec(optimizer, config.num_classes, monitor="val_accuracy")


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------

# The design notes' ablation table, in its order: backbone blocks + cross-
# attention blocks + self-attention blocks. `N+0+0` is plain R(2+1)D.
NOTES_ABLATION = (
    (8, 1, 6),
    (8, 1, 2),
    (8, 1, 1),
    (8, 0, 0),
    (7, 1, 1),
    (6, 1, 6),
    (4, 1, 6),
    (4, 2, 12),
    (8, 1, 0),
    (8, 0, 1),
)


def architecture_label(cnn_blocks, cross_blocks, self_blocks):
    """`"8+1+6"`: the notes' name of an architecture."""
    return f"{cnn_blocks}+{cross_blocks}+{self_blocks}"


def architecture(cnn_blocks, cross_blocks, self_blocks):
    """(model name, config fields) of a `CNN+CROSS+SELF` architecture.

    Example:

    >>> architecture(8, 0, 0)
    ('r2plus1d', {'cnn_blocks': 8})
    >>> architecture(4, 2, 12)[0]
    'r2plus1d_perceiver'
    """
    if cross_blocks == 0 and self_blocks == 0:
        return "r2plus1d", {"cnn_blocks": cnn_blocks}
    return "r2plus1d_perceiver", {
        "cnn_blocks": cnn_blocks, "cross_blocks": cross_blocks, "self_blocks": self_blocks,
    }


# `tuning.search --grid full`: the cartesian product of the values the notes
# ablate; combinations whose self blocks do not divide by the cross blocks
# are left out by the config's own validation.
FULL_GRID = {
    "cnn_blocks": (4, 6, 7, 8),
    "cross_blocks": (0, 1, 2),
    "self_blocks": (0, 1, 2, 6, 12),
}

ABLATION = Ablation(
    fields=("cnn_blocks", "cross_blocks", "self_blocks"),
    rows={"seed-ablation": NOTES_ABLATION},
    full_grid=FULL_GRID,
    resolve=lambda row: architecture(*row),
    label=lambda row: architecture_label(*row),
    # A grid file's missing lists take the notes' proposed 8+1+1.
    defaults={"cnn_blocks": (8,), "cross_blocks": (1,), "self_blocks": (1,)},
    # Self-attention blocks follow the cross blocks in equal groups.
    skip=lambda row: bool(row[1]) and row[2] % row[1] != 0,
)


def size_metrics(model):
    """The tuner's size columns: backbone, attention and all parameters."""
    return {
        "CNN params": cnn_params(model),
        "attention params": attention_params(model),
        "params": count_params(model, trainable_only=False),
    }


def r2plus1d_explanation(model):
    """Grad-CAM on the backbone's last feature map [T', H', W', C] (the
    average pool's input)."""
    try:
        pool = model.get_layer("average_pool")
    except ValueError:
        raise ValueError("--explain: the r2plus1d model has no average_pool layer") from None
    return GradCamTarget(pool.input, "the backbone's last feature map")


def perceiver_explanation(model):
    """The Perceiver's cross-attention from its latents to the (T', H', W')
    tokens of the backbone's last feature map, averaged over heads, latents
    and cross-attention blocks (`Perceiver.cross_attention_maps`)."""
    perceiver, tokens_of = sub_model(model, PERCEIVER_NAME)
    if not perceiver.cross_blocks:
        raise ValueError(
            "--explain: this r2plus1d_perceiver has no cross-attention (cross_blocks=0: "
            "self-attention on the tokens), so it has no explanation"
        )
    grid = tuple(int(s) for s in model.get_layer("tokens").input.shape[1:4])

    def maps(inputs):
        attention = perceiver.cross_attention_maps(tokens_of(inputs, training=False))
        return keras.ops.reshape(attention, (-1, *grid))

    return AttentionMap("where the latents look in the backbone's last feature map "
                        "(Perceiver cross-attention)", maps)


def _ablation_presets(model_name):
    rows = (architecture(*row) + (architecture_label(*row),) for row in NOTES_ABLATION)
    return {label: fields for name, fields, label in rows if name == model_name}


# Clips of the embedded synthetic set: 16 frames of 48x64 RGB, one class per
# motion of its default task.
DEMO = dict(input_shape=(16, 48, 64, 3), num_classes=6)

register(
    Family(
        name="r2plus1d",
        config=R2Plus1DConfig(),
        build=build_r2plus1d,
        training=r2plus1d_training,
        example_batch=clip_example_batch,
        presets={
            "tiny": dict(input_shape=(4, 16, 16, 3), cnn_blocks=3, num_classes=3),
            # The full 8-block backbone on 8 frames of 112x112, batch 2.
            "benchmark": dict(input_shape=(8, 112, 112, 3), cnn_blocks=8, batch_size=2),
            "demo": DEMO,
            "latency": dict(input_shape=(8, 112, 112, 3), cnn_blocks=8),
            **_ablation_presets("r2plus1d"),
        },
        explanation=r2plus1d_explanation,
        size_metrics=size_metrics,
        latency=LatencyCase(preset="latency", frames=8),
        ablation=ABLATION,
    )
)

register(
    Family(
        name="r2plus1d_perceiver",
        config=R2Plus1DPerceiverConfig(),
        build=build_r2plus1d_perceiver,
        training=r2plus1d_training,
        example_batch=clip_example_batch,
        presets={
            "tiny": dict(
                input_shape=(4, 16, 16, 3), cnn_blocks=1, num_classes=3, num_latents=8,
                latent_dim=32, cross_blocks=1, self_blocks=1, cross_head_dim=16,
                self_heads=2, self_head_dim=16,
            ),
            # Self-attention on the tokens themselves (64 wide, projected to 32).
            "tiny_tokens": dict(
                input_shape=(3, 9, 7, 3), cnn_blocks=1, num_classes=3, latent_dim=32,
                cross_blocks=0, self_blocks=1, self_heads=2, self_head_dim=16,
            ),
            # The 8-block backbone with 1 cross- and 1 self-attention block.
            "benchmark": dict(
                input_shape=(8, 112, 112, 3), cnn_blocks=8, cross_blocks=1, self_blocks=1,
                batch_size=2,
            ),
            "demo": DEMO,
            "latency": dict(input_shape=(8, 112, 112, 3), cnn_blocks=8, cross_blocks=1,
                            self_blocks=1),
            **_ablation_presets("r2plus1d_perceiver"),
        },
        explanation=perceiver_explanation,
        size_metrics=size_metrics,
        latency=LatencyCase(preset="latency", frames=8),
        # Its profile shows the optimizer's per-variable update ops.
        benchmark_xla_update=True,
        ablation=ABLATION,
    )
)
