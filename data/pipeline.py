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
    """

    crop_scale: tuple = (0.8, 1.0)
    flip: bool = True
    brightness: float = 0.1
    contrast: float = 0.2
    temporal_jitter: bool = True


NO_AUGMENTATION = Augmentation(
    crop_scale=(1.0, 1.0), flip=False, brightness=0.0, contrast=0.0, temporal_jitter=False
)


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
        lambda index: (tf.gather(clips, index), tf.gather(labels, index))
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
    make_epoch = tf.autograph.experimental.do_not_convert(make_epoch)
    return place(epochs.flat_map(make_epoch).prefetch(AUTOTUNE), to_device)


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

    Returns:
        A dataset of `({"frames": float32 [B, T', H, W, C]}, labels)`.
    """
    if cache:
        clips = clips.cache()
    if training and epoch is not None:
        clips = clips.enumerate().map(
            lambda position, example: _prepare(
                example, element_seed(seed, epoch, position), num_frames, augmentation, binary
            ),
            num_parallel_calls=AUTOTUNE,
        )
    elif training:
        clips = clips.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        clips = tf.data.Dataset.zip((clips, randoms))
        clips = clips.map(
            lambda example, key: _prepare(
                example, tf.stack([key, tf.constant(0, tf.int64)]), num_frames, augmentation,
                binary,
            ),
            num_parallel_calls=AUTOTUNE,
        )
    else:
        clips = clips.map(
            lambda clip, label: _prepare((clip, label), None, num_frames, NO_AUGMENTATION, binary),
            num_parallel_calls=AUTOTUNE,
        )
    batches = clips.batch(batch_size)
    if epoch is not None:
        return batches  # one epoch of `epoch_stream`, which prefetches the stream
    return place(batches.prefetch(AUTOTUNE), to_device)


def place(batches, to_device=True):
    """Prefetches batches onto the first GPU when there is one and no
    `tf.distribute` strategy places them itself (see `clip_batches`)."""
    if to_device and not tf.distribute.has_strategy() and tf.config.list_physical_devices("GPU"):
        batches = batches.apply(tf.data.experimental.prefetch_to_device("/gpu:0"))
    return batches


def _prepare(example, seed, num_frames, augmentation, binary):
    clip, label = example
    frames = augment_clip(clip, seed, num_frames, augmentation)
    if binary:
        label = tf.cast(tf.reshape(label, [1]), tf.float32)
    return {"frames": frames}, label


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
    return tf.clip_by_value(frames, 0.0, 1.0)


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
