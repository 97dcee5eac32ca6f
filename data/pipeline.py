"""tf.data pipelines for clip models: sample, augment, batch, prefetch.

Clips enter as uint8 [T, H, W, C] with an integer label, from arrays, a
generator or the video reader, and leave as batches of
`({"frames": float32 [B, T', H, W, C] in [0, 1]}, labels)`.

Augmentation draws one set of random numbers per clip and applies it to
every frame (the same crop box, the same flip, the same brightness and
contrast), so the frames of a clip stay aligned. All randomness comes from
stateless ops, so the same seed gives the same batches even with parallel
map. Given an `epoch`, a training pipeline's order and augmentation depend
on the seed and the epoch number only (`epoch_seed`), and `epoch_stream`
chains the epochs from any first one: a run resumed at epoch k sees exactly
the batches an uninterrupted run saw there.

Beyond crop, flip and colour, training can use RandAugment (`RandAugment`:
one op sequence per clip, the same ops and magnitudes on every frame) and
MixUp / CutMix (`Mixing`: each clip is mixed with another clip of its
batch, a CutMix box being the same on every frame, and the targets become
class distributions). They are written with TF ops rather than Keras's
`RandAugment`, `MixUp` and `CutMix` layers: those layers draw their
randomness from a `SeedGenerator` or an int (`keras.random` refuses a
tensor seed), so they cannot take the element's stateless seed that keeps a
resumed run on the batches of an uninterrupted one; their RandAugment also
draws ops per image (one per frame of a clip folded into the batch) and its
colour ops assume RGB, while the embedded clips have 4 channels.

Example:

>>> import numpy as np
>>> clips = np.zeros((6, 10, 32, 32, 3), np.uint8)
>>> ds = clip_batches(from_arrays(clips, np.arange(6) % 2), batch_size=4,
...                   num_frames=8, training=True, seed=0)
>>> [tuple(x["frames"].shape) for x, _ in ds]
[(4, 8, 32, 32, 3), (2, 8, 32, 32, 3)]
"""

import dataclasses

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Per-clip augmentation, the same on every frame of a clip.

    Args:
        crop_scale: the crop's side is drawn from this fraction range of the
            frame's side, then resized back to the frame size.
        flip: horizontal flip with probability 0.5.
        brightness: added offset drawn from [-brightness, brightness].
        contrast: factor drawn from [1 - contrast, 1 + contrast], around
            the clip's mean.
        temporal_jitter: the start frame is drawn uniformly from the frames
            the clip has beyond `num_frames`; without it the clip is cut
            from its centre.
        rand_augment: a `RandAugment` applied after the above, or None.
    """

    crop_scale: tuple = (0.8, 1.0)
    flip: bool = True
    brightness: float = 0.1
    contrast: float = 0.2
    temporal_jitter: bool = True
    rand_augment: "RandAugment | None" = None


# RandAugment's ops (Cubuk et al. 2020, as timm's `rand-m9` maps their
# magnitudes) that act on any number of channels; the colour op needs RGB
# and equalize a histogram per channel of uint8 frames, so both are left out.
RAND_AUGMENT_OPS = (
    "identity", "auto_contrast", "rotate", "shear_x", "shear_y", "translate_x",
    "translate_y", "solarize", "posterize", "contrast", "brightness", "sharpness",
)


@dataclasses.dataclass(frozen=True)
class RandAugment:
    """RandAugment drawn once per clip: `num_ops` ops, each drawn uniformly
    (with replacement) from `ops`, applied in turn at `magnitude` to every
    frame, the signed ops (rotate, shear, translate, contrast, brightness,
    sharpness) with one random sign per clip and op.

    Magnitudes are on the paper's 0-10 scale, mapped as timm maps them:
    rotate 30 M/10 degrees; shear 0.3 M/10; translate 0.45 M/10 of the side;
    solarize inverts values above 1 - M/10; posterize keeps 8 - floor(4 M/10)
    bits; contrast, brightness and sharpness blend with a factor 1 +- 0.9
    M/10 (brightness towards black, contrast towards the clip's mean grey,
    sharpness towards a 3x3 smoothing). auto_contrast stretches each
    channel's range over the whole clip, not per frame.

    Args:
        num_ops: ops per clip (the paper's N).
        magnitude: the paper's M, in [0, 10].
        ops: names from `RAND_AUGMENT_OPS`.
    """

    num_ops: int = 2
    magnitude: float = 9.0
    ops: tuple = RAND_AUGMENT_OPS

    def __post_init__(self):
        if self.num_ops < 1:
            raise ValueError(f"RandAugment num_ops must be >= 1, got {self.num_ops}")
        if not 0.0 <= self.magnitude <= 10.0:
            raise ValueError(f"RandAugment magnitude must be in [0, 10], got {self.magnitude}")
        unknown = [name for name in self.ops if name not in RAND_AUGMENT_OPS]
        if unknown or not self.ops:
            raise ValueError(
                f"unknown RandAugment op {', '.join(unknown) or '(none given)'}; "
                f"expected names from {', '.join(RAND_AUGMENT_OPS)}"
            )


@dataclasses.dataclass(frozen=True)
class Mixing:
    """MixUp and CutMix of the clips of a training batch.

    Each clip i is mixed with clip p(i) of its batch (p: a permutation of
    the batch). MixUp: frames lam x_i + (1 - lam) x_p(i), lam ~
    Beta(mixup_alpha, mixup_alpha). CutMix: a box of area (1 - lam) of the
    frame (lam ~ Beta(cutmix_alpha, cutmix_alpha), side ratio sqrt(1 - lam),
    centre uniform, cut at the frame's border) is taken from clip p(i), the
    same box on every frame; lam is then recomputed as 1 - box area / frame
    area, so the targets weigh each clip by its share of pixels. With both
    on, each clip uses one of them with probability 1/2 (timm's
    `switch_prob`). The target is lam onehot(y_i) + (1 - lam) onehot(y_p(i))
    (for one sigmoid output: lam y_i + (1 - lam) y_p(i), the positive
    class's weight).

    Args:
        mixup_alpha: MixUp's Beta parameter; 0 turns MixUp off.
        cutmix_alpha: CutMix's Beta parameter; 0 turns CutMix off.
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self):
        for name in ("mixup_alpha", "cutmix_alpha"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0 (0 turns it off), got {getattr(self, name)}")

    @property
    def enabled(self):
        return self.mixup_alpha > 0.0 or self.cutmix_alpha > 0.0


NO_AUGMENTATION = Augmentation(
    crop_scale=(1.0, 1.0), flip=False, brightness=0.0, contrast=0.0, temporal_jitter=False
)


def traced_as_written(function):
    """`function` for `Dataset.map`, `filter`, `flat_map` or `take_while`,
    traced as written, without AutoGraph.

    Every dataset function of the suite branches on Python values only
    (the augmentation settings, `seed is None`), so AutoGraph has nothing
    to convert; parsing and wrapping them took a fifth of the time of
    building the augmenting pipelines (34.6 vs 26.9 s for their tests).
    """
    return tf.autograph.experimental.do_not_convert(function)


def from_arrays(clips, labels, order=None):
    """An unbatched dataset of `(uint8 clip, int64 label)` from arrays, in
    the given `order` (e.g. `epoch_order`) or as they are."""
    clips = np.asarray(clips)
    labels = np.asarray(labels, dtype=np.int64)
    if clips.ndim != 5 or clips.dtype != np.uint8:
        raise ValueError(
            f"clips must be uint8 [N, T, H, W, C], got {clips.dtype} {clips.shape}"
        )
    if len(clips) != len(labels):
        raise ValueError(f"{len(clips)} clips but {len(labels)} labels")
    if order is None:
        return tf.data.Dataset.from_tensor_slices((clips, labels))
    clips, labels = tf.constant(clips), tf.constant(labels)
    return tf.data.Dataset.from_tensor_slices(order).map(
        traced_as_written(lambda index: (tf.gather(clips, index), tf.gather(labels, index)))
    )


def from_generator(generator, clip_shape):
    """An unbatched dataset from a callable that yields `(clip, label)`."""
    return tf.data.Dataset.from_generator(
        generator,
        output_signature=(
            tf.TensorSpec(clip_shape, tf.uint8),
            tf.TensorSpec((), tf.int64),
        ),
    )


def epoch_seed(seed, epoch):
    """The stateless seed [2] of one epoch's randomness.

    Example:

    >>> epoch_seed(0, 3).numpy().tolist() == epoch_seed(0, 3).numpy().tolist()
    True
    """
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])


def element_seed(seed, epoch, position):
    """The stateless seed [2] of one element of one epoch."""
    return tf.random.experimental.stateless_fold_in(
        epoch_seed(seed, epoch), tf.cast(position, tf.int64)
    )


def epoch_order(count, seed, epoch):
    """The order of `count` examples in one epoch: a permutation that
    depends on the seed and the epoch only.

    (`Dataset.shuffle` cannot do this: with a tensor seed it fails under a
    global seed of 0, and with a Python seed it reshuffles by how many
    times the dataset was iterated, which a resumed run does not repeat.)

    Example:

    >>> sorted(epoch_order(5, seed=0, epoch=2).numpy().tolist())
    [0, 1, 2, 3, 4]
    """
    keys = tf.random.stateless_uniform([count], epoch_seed(seed, epoch))
    return tf.cast(tf.argsort(keys), tf.int64)


# More epochs than any run trains: `epoch_stream` ends there.
MAX_EPOCHS = 1 << 30


def epoch_stream(make_epoch, first_epoch=0, to_device=True):
    """Batches of epochs `first_epoch`, `first_epoch + 1`, ... in one stream.

    Args:
        make_epoch: `epoch (int64 scalar tensor) -> dataset` of one epoch's
            batches.
        first_epoch: where the stream starts (a resumed run's epoch).
        to_device: as in `clip_batches`.

    Train on it with `steps_per_epoch` set to one epoch's batches.

    Example:

    >>> stream = epoch_stream(lambda epoch: tf.data.Dataset.from_tensors(epoch), 5)
    >>> [int(x) for x in stream.take(3)]
    [5, 6, 7]
    """
    epochs = tf.data.Dataset.range(first_epoch, MAX_EPOCHS)
    # The epoch builders branch on Python values only; AutoGraph would turn
    # their `is not None` tests on the epoch tensor into graph conditions.
    return place(epochs.flat_map(traced_as_written(make_epoch)).prefetch(AUTOTUNE), to_device)


def clip_batches(
    clips,
    batch_size,
    num_frames=None,
    training=False,
    seed=0,
    augmentation=Augmentation(),
    binary=False,
    shuffle_buffer=256,
    cache=False,
    to_device=True,
    epoch=None,
    mixing=None,
    num_classes=None,
):
    """Turns an unbatched `(uint8 clip, label)` dataset into model batches.

    Args:
        clips: dataset of `(uint8 [T, H, W, C], int64 label)`.
        batch_size: examples per batch; the last batch may be smaller.
        num_frames: frames the model takes; longer clips are cut (randomly
            when training with temporal jitter, else from the centre).
            None keeps every frame.
        training: shuffle and augment.
        seed: the one seed of shuffling and augmentation.
        augmentation: what to randomise when training.
        binary: labels become float32 [1], for one sigmoid output.
        shuffle_buffer: shuffle buffer size in clips.
        cache: cache decoded clips in memory after the first epoch.
        to_device: prefetch the batches onto the first GPU when one exists.
            Not inside a `tf.distribute` strategy's scope: the strategy
            splits each batch across its replicas and prefetches the parts
            onto their devices itself, which a dataset already pinned to
            one GPU would prevent.
        epoch: with `training`, the epoch (an int or a scalar tensor, e.g.
            inside `epoch_stream`) whose augmentation to draw; `clips` are
            then taken in the order given (put them in the epoch's order,
            see `epoch_order`). None shuffles `clips` in a buffer, in a new
            order every time the dataset is iterated.
        mixing: a `Mixing` of the training batches, or None. When it is on,
            training targets are class distributions: float32 [B, K] (or
            [B, 1], the positive class's weight, with `binary`); its draws
            come from each clip's stateless seed as the other augmentation's.
        num_classes: K, the width of the mixed targets (not with `binary`).

    Returns:
        A dataset of `({"frames": float32 [B, T', H, W, C]}, labels)`.
    """
    if not (training and mixing is not None and mixing.enabled):
        mixing = None
    elif not binary and not num_classes:
        raise ValueError("mixed targets need num_classes")
    mixed = (mixing, num_classes)
    if cache:
        clips = clips.cache()
    if training and epoch is not None:
        clips = clips.enumerate().map(
            traced_as_written(lambda position, example: _prepare(
                example, element_seed(seed, epoch, position), num_frames, augmentation, binary,
                mixed,
            )),
            num_parallel_calls=AUTOTUNE,
        )
    elif training:
        clips = clips.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        clips = tf.data.Dataset.zip((clips, randoms))
        clips = clips.map(
            traced_as_written(lambda example, key: _prepare(
                example, tf.stack([key, tf.constant(0, tf.int64)]), num_frames, augmentation,
                binary, mixed,
            )),
            num_parallel_calls=AUTOTUNE,
        )
    else:
        clips = clips.map(
            traced_as_written(
                lambda clip, label: _prepare((clip, label), None, num_frames, NO_AUGMENTATION, binary)
            ),
            num_parallel_calls=AUTOTUNE,
        )
    batches = clips.batch(batch_size)
    if mixing is not None:
        batches = batches.map(
            traced_as_written(lambda inputs, targets, seeds: mix_batch(inputs, targets, seeds, mixing)),
            num_parallel_calls=AUTOTUNE,
        )
    if epoch is not None:
        return batches  # one epoch of `epoch_stream`, which prefetches the stream
    return place(batches.prefetch(AUTOTUNE), to_device)


def place(batches, to_device=True):
    """Prefetches batches onto the first GPU when there is one and no
    `tf.distribute` strategy places them itself (see `clip_batches`)."""
    if to_device and not tf.distribute.has_strategy() and tf.config.list_physical_devices("GPU"):
        batches = batches.apply(tf.data.experimental.prefetch_to_device("/gpu:0"))
    return batches


def _prepare(example, seed, num_frames, augmentation, binary, mixed=(None, None)):
    clip, label = example
    frames = augment_clip(clip, seed, num_frames, augmentation)
    if binary:
        label = tf.cast(tf.reshape(label, [1]), tf.float32)
    mixing, num_classes = mixed
    if mixing is None:
        return {"frames": frames}, label
    if not binary:
        label = tf.one_hot(label, num_classes, dtype=tf.float32)
    return {"frames": frames}, label, seed


def augment_clip(clip, seed, num_frames=None, augmentation=Augmentation()):
    """Cuts and augments one uint8 clip; returns float32 frames in [0, 1].

    `seed` is a stateless seed (shape [2] int) or None for no randomness.
    """
    frames = tf.image.convert_image_dtype(clip, tf.float32)
    seeds = _split_seed(seed, 6)
    frames = _cut_frames(frames, num_frames, seeds[0] if augmentation.temporal_jitter else None)
    if seed is None:
        return frames

    height, width = tf.shape(frames)[1], tf.shape(frames)[2]
    low, high = augmentation.crop_scale
    if high < 1.0 or low < 1.0:
        scale = tf.random.stateless_uniform([], seeds[1], low, high)
        offset = tf.random.stateless_uniform([2], seeds[2], 0.0, 1.0) * (1.0 - scale)
        frame_size = tf.stack([height, width])
        extent = tf.cast(frame_size, tf.float32)
        size = tf.maximum(tf.cast(tf.round(scale * extent), tf.int32), 1)
        corner = tf.cast(offset * extent, tf.int32)
        frames = frames[:, corner[0] : corner[0] + size[0], corner[1] : corner[1] + size[1]]
        frames = tf.image.resize(frames, frame_size)
    if augmentation.flip:
        flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
        frames = tf.where(flip, tf.reverse(frames, axis=[2]), frames)
    if augmentation.brightness:
        delta = tf.random.stateless_uniform(
            [], seeds[4], -augmentation.brightness, augmentation.brightness
        )
        frames = frames + delta
    if augmentation.contrast:
        factor = tf.random.stateless_uniform(
            [], seeds[5], 1.0 - augmentation.contrast, 1.0 + augmentation.contrast
        )
        mean = tf.reduce_mean(frames, axis=[0, 1, 2], keepdims=True)
        frames = (frames - mean) * factor + mean
    frames = tf.clip_by_value(frames, 0.0, 1.0)
    if augmentation.rand_augment is not None:
        # A seed folded from the clip's, so that the draws above stay those
        # of a run without RandAugment.
        frames = rand_augment_clip(
            frames, _fold_seed(seed, _RAND_AUGMENT_STREAM), augmentation.rand_augment
        )
    return frames


# Stream numbers folded into a clip's seed for RandAugment and mixing.
_RAND_AUGMENT_STREAM = 1 << 20
_MIXING_STREAM = (1 << 20) + 1


def _fold_seed(seed, stream):
    folded = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), stream)
    return tf.cast(folded, tf.int64)


def rand_augment_clip(frames, seed, rand_augment):
    """Applies one RandAugment draw to every frame of a clip.

    Args:
        frames: float32 [T, H, W, C] in [0, 1].
        seed: stateless seed [2] of this clip's draw.
        rand_augment: a `RandAugment`.

    Returns:
        float32 [T, H, W, C] in [0, 1].

    Example:

    >>> frames = tf.random.stateless_uniform([3, 8, 8, 4], [0, 0])
    >>> frames = tf.concat([frames[:1], frames[:1], frames[1:2]], axis=0)
    >>> out = rand_augment_clip(frames, tf.constant([5, 1], tf.int64), RandAugment())
    >>> bool(tf.reduce_all(out[0] == out[1])), tuple(out.shape)
    (True, (3, 8, 8, 4))
    """
    level = rand_augment.magnitude / 10.0
    for op_seed in tf.unstack(
        tf.random.experimental.stateless_split(seed, rand_augment.num_ops)
    ):
        which_seed, sign_seed = tf.unstack(tf.random.experimental.stateless_split(op_seed, 2))
        which = tf.random.stateless_uniform(
            [], which_seed, 0, len(rand_augment.ops), dtype=tf.int32
        )
        sign = tf.where(tf.random.stateless_uniform([], sign_seed) < 0.5, -1.0, 1.0)
        branches = [
            (lambda op=_RAND_AUGMENT_FUNCTIONS[name], x=frames: op(x, level, sign))
            for name in rand_augment.ops
        ]
        frames = tf.clip_by_value(tf.switch_case(which, branches), 0.0, 1.0)
    return frames


def _affine(frames, row_x, row_y):
    # Each output pixel (x, y) reads the input at (row_x . (x, y, 1),
    # row_y . (x, y, 1)): one transform for every frame of the clip.
    transform = tf.reshape(tf.concat([row_x, row_y, tf.zeros([2])], axis=0), [1, 8])
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=frames, transforms=transform, output_shape=tf.shape(frames)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )


def _rotate(frames, level, sign):
    angle = sign * 30.0 * level * np.pi / 180.0
    height, width = tf.cast(tf.shape(frames)[1], tf.float32), tf.cast(tf.shape(frames)[2], tf.float32)
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    return _affine(
        frames,
        tf.stack([cos, -sin, cx - cos * cx + sin * cy]),
        tf.stack([sin, cos, cy - sin * cx - cos * cy]),
    )


def _shear_x(frames, level, sign):
    return _affine(frames, tf.stack([1.0, sign * 0.3 * level, 0.0]), tf.constant([0.0, 1.0, 0.0]))


def _shear_y(frames, level, sign):
    return _affine(frames, tf.constant([1.0, 0.0, 0.0]), tf.stack([sign * 0.3 * level, 1.0, 0.0]))


def _translate_x(frames, level, sign):
    shift = sign * 0.45 * level * tf.cast(tf.shape(frames)[2], tf.float32)
    return _affine(frames, tf.stack([1.0, 0.0, -shift]), tf.constant([0.0, 1.0, 0.0]))


def _translate_y(frames, level, sign):
    shift = sign * 0.45 * level * tf.cast(tf.shape(frames)[1], tf.float32)
    return _affine(frames, tf.constant([1.0, 0.0, 0.0]), tf.stack([0.0, 1.0, -shift]))


def _auto_contrast(frames, level, sign):
    low = tf.reduce_min(frames, axis=[0, 1, 2], keepdims=True)
    high = tf.reduce_max(frames, axis=[0, 1, 2], keepdims=True)
    spread = high - low
    return tf.where(spread > 0.0, (frames - low) / tf.maximum(spread, 1e-6), frames)


def _solarize(frames, level, sign):
    return tf.where(frames > 1.0 - level, 1.0 - frames, frames)


def _posterize(frames, level, sign):
    step = float(2 ** int(4 * level))  # 8 - floor(4 M / 10) bits kept
    return tf.floor(tf.round(frames * 255.0) / step) * step / 255.0


def _blend(degenerate, frames, level, sign):
    return degenerate + (1.0 + sign * 0.9 * level) * (frames - degenerate)


def _contrast(frames, level, sign):
    return _blend(tf.reduce_mean(frames), frames, level, sign)


def _brightness(frames, level, sign):
    return _blend(tf.zeros_like(frames), frames, level, sign)


def _sharpness(frames, level, sign):
    shape = tf.shape(frames)
    planes = tf.reshape(tf.transpose(frames, [0, 3, 1, 2]), [-1, shape[1], shape[2], 1])
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    padded = tf.pad(planes, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    smooth = tf.nn.conv2d(padded, tf.reshape(kernel, [3, 3, 1, 1]), 1, "VALID")
    smooth = tf.transpose(
        tf.reshape(smooth, [shape[0], shape[3], shape[1], shape[2]]), [0, 2, 3, 1]
    )
    return _blend(smooth, frames, level, sign)


_RAND_AUGMENT_FUNCTIONS = {
    "identity": lambda frames, level, sign: frames,
    "auto_contrast": _auto_contrast,
    "rotate": _rotate,
    "shear_x": _shear_x,
    "shear_y": _shear_y,
    "translate_x": _translate_x,
    "translate_y": _translate_y,
    "solarize": _solarize,
    "posterize": _posterize,
    "contrast": _contrast,
    "brightness": _brightness,
    "sharpness": _sharpness,
}


def mix_batch(inputs, targets, seeds, mixing):
    """MixUp / CutMix of one batch (see `Mixing`).

    Args:
        inputs: {"frames": float32 [B, T, H, W, C]}.
        targets: float32 [B, K] class distributions (one-hot when unmixed),
            or [B, 1] positive-class weights.
        seeds: int64 [B, 2], each clip's stateless seed; the partner
            permutation comes from the first clip's, each clip's weight,
            box and choice between MixUp and CutMix from its own.
        mixing: the `Mixing`.

    Returns:
        `(inputs, targets)` mixed.

    Example:

    >>> frames = tf.stack([tf.zeros([2, 4, 4, 1]), tf.ones([2, 4, 4, 1])])
    >>> targets = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    >>> seeds = tf.constant([[0, 0], [0, 1]], tf.int64)
    >>> _, mixed = mix_batch({"frames": frames}, targets, seeds, Mixing(mixup_alpha=1.0))
    >>> [round(float(total), 5) for total in tf.reduce_sum(mixed, axis=1)]
    [1.0, 1.0]
    """
    frames = inputs["frames"]
    shape = tf.shape(frames)
    count, height, width = shape[0], shape[2], shape[3]
    mix_seeds = tf.map_fn(lambda seed: _fold_seed(seed, _MIXING_STREAM), tf.cast(seeds, tf.int64))
    keys = tf.random.stateless_uniform([count], mix_seeds[0])
    partner = tf.argsort(keys)

    def draw(seed):
        beta_mix, beta_cut, centre_seed, coin_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 4)
        )
        mix_weight = _beta(beta_mix, mixing.mixup_alpha)
        cut_weight = _beta(beta_cut, mixing.cutmix_alpha)
        centre = tf.random.stateless_uniform([2], centre_seed)
        if mixing.mixup_alpha > 0.0 and mixing.cutmix_alpha > 0.0:
            use_cutmix = tf.random.stateless_uniform([], coin_seed) < 0.5
        else:
            use_cutmix = tf.constant(mixing.cutmix_alpha > 0.0)
        return mix_weight, cut_weight, centre, use_cutmix

    mix_weight, cut_weight, centre, use_cutmix = tf.map_fn(
        draw, mix_seeds,
        fn_output_signature=(tf.float32, tf.float32, tf.TensorSpec([2], tf.float32), tf.bool),
    )
    box, box_share = cutmix_boxes(cut_weight, centre, height, width)
    weight = tf.where(use_cutmix, 1.0 - box_share, mix_weight)

    others = tf.gather(frames, partner)
    blended = frames * mix_weight[:, None, None, None, None] + others * (
        1.0 - mix_weight[:, None, None, None, None]
    )
    pasted = tf.where(box[:, None, :, :, None], others, frames)
    mixed_frames = tf.where(use_cutmix[:, None, None, None, None], pasted, blended)
    mixed_targets = targets * weight[:, None] + tf.gather(targets, partner) * (1.0 - weight[:, None])
    return {**inputs, "frames": mixed_frames}, mixed_targets


def cutmix_boxes(weight, centre, height, width):
    """CutMix boxes as masks [B, H, W] (True inside) and their share of the
    frame [B]: side ratio sqrt(1 - weight), centred at `centre` [B, 2]
    (fractions of height and width), cut at the frame's border as timm's
    `rand_bbox` does.

    Example:

    >>> box, share = cutmix_boxes(tf.constant([0.75]), tf.constant([[0.5, 0.5]]), 4, 4)
    >>> box.numpy().astype(int)[0].tolist(), share.numpy().tolist()
    ([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], [0.25])
    """
    ratio = tf.sqrt(1.0 - weight)
    size = tf.stack([height, width])
    extent = tf.cast(size, tf.float32)
    cut = tf.cast(tf.round(ratio[:, None] * extent), tf.int32)  # [B, 2]
    middle = tf.cast(tf.floor(centre * extent), tf.int32)
    low = tf.clip_by_value(middle - cut // 2, 0, size)
    high = tf.clip_by_value(middle + cut // 2, 0, size)
    rows, cols = tf.range(height), tf.range(width)
    in_rows = (rows[None, :] >= low[:, :1]) & (rows[None, :] < high[:, :1])
    in_cols = (cols[None, :] >= low[:, 1:]) & (cols[None, :] < high[:, 1:])
    box = in_rows[:, :, None] & in_cols[:, None, :]
    share = tf.cast(tf.reduce_prod(high - low, axis=1), tf.float32) / tf.cast(height * width, tf.float32)
    return box, share


def _beta(seed, alpha):
    if alpha <= 0.0:
        return tf.constant(1.0)
    draws = tf.random.stateless_gamma([2], seed, alpha=alpha)
    return draws[0] / tf.maximum(draws[0] + draws[1], 1e-12)


def _cut_frames(frames, num_frames, seed):
    if num_frames is None:
        return frames
    spare = tf.shape(frames)[0] - num_frames
    tf.debugging.assert_non_negative(
        spare, message=f"a clip has fewer frames than the {num_frames} the model takes"
    )
    if seed is None:
        start = spare // 2
    else:
        start = tf.random.stateless_uniform([], seed, 0, spare + 1, dtype=tf.int32)
    return frames[start : start + num_frames]


def _split_seed(seed, count):
    if seed is None:
        return [None] * count
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))
