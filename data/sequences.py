"""tf.data pipeline for per-frame feature sequences.

Feature files hold `features` [N, T_max, D] (each row zero-padded after its
`num_frames[i]` real frames), `num_frames` [N] and `labels` [N]. The
pipeline takes such arrays, checks them, and yields batches of

    ({"features": [B, T, D] float32, "mask": [B, T] bool}, labels [B] int32)

where T is the longest sequence of the batch (or a fixed `pad_to`), the
padding is always at the end (what the cuDNN LSTM kernel needs) and
`mask[b, t]` is True exactly for the real frames. Whatever a file stores in
its padding never reaches the model: each row is cut to its real frames
before it is padded again with zeros.

Optional feature-level augmentation (`SequenceAugmentation`) runs in the
graph with stateless random ops, one seed per element drawn from the
pipeline seed, so the same seed gives the same batches in every run, and
every epoch gets a new shuffle and new augmentation.

Example:

>>> features = np.random.rand(5, 8, 16).astype("float32")
>>> dataset = sequence_dataset(features, [8, 3, 5, 1, 2], [0, 1, 0, 1, 1],
...                            batch_size=2, num_classes=2)
>>> inputs, labels = next(iter(dataset))
>>> inputs["features"].shape, inputs["mask"].numpy().sum(axis=1)
(TensorShape([2, 8, 16]), array([8, 3]))
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from data import pipeline
from models.losses import PADDED_TARGET

# Rows checked at once for NaN/Inf, so the check's memory stays bounded.
_CHECK_ROWS = 256


@dataclasses.dataclass(frozen=True)
class SequenceAugmentation:
    """Feature-level augmentation of one sequence, applied in this order.

    Args:
        crop_min_fraction: random temporal crop: keep a contiguous window
            of at least this fraction of the real frames (length and start
            uniform). 1.0 turns the crop off.
        frame_dropout: drop each remaining real frame with this
            probability; the kept frames close up in order, so padding
            stays at the end, and at least one frame is always kept (the
            one with the largest draw). 0 turns it off.
        noise_std: standard deviation of gaussian noise added to the real
            frames (padding stays zero). 0 turns it off.
    """

    crop_min_fraction: float = 1.0
    frame_dropout: float = 0.0
    noise_std: float = 0.0

    def __post_init__(self):
        if not 0.0 < self.crop_min_fraction <= 1.0:
            raise ValueError(
                f"crop_min_fraction must be in (0, 1], got {self.crop_min_fraction!r}"
            )
        if not 0.0 <= self.frame_dropout < 1.0:
            raise ValueError(f"frame_dropout must be in [0, 1), got {self.frame_dropout!r}")
        if not self.noise_std >= 0.0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std!r}")

    @property
    def enabled(self):
        return self.crop_min_fraction < 1.0 or self.frame_dropout > 0.0 or self.noise_std > 0.0


def validate_sequences(
    features,
    num_frames,
    labels,
    num_classes=None,
    feature_dim=None,
    max_frames=None,
    source="features",
):
    """Refuses arrays that would train or predict on garbage.

    Args:
        features: [N, T, D] array.
        num_frames: [N] real frames per row, 1 <= n <= T.
        labels: [N] integer labels.
        num_classes: when given, labels must lie in [0, num_classes).
        feature_dim: when given, D must equal it.
        max_frames: when given, no row may have more real frames (e.g. the
            longest sequence a checkpoint was trained on).
        source: the file name (or other label) used in error messages.

    Returns:
        `(num_frames, labels)` as int32 / int64 arrays.

    Raises:
        ValueError: naming `source`, the row and what was expected.
    """
    shape = getattr(features, "shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(f"{source}: features must be a [N, T, D] array, got shape {shape}")
    count, steps, dim = shape
    if count == 0:
        raise ValueError(f"{source}: contains no sequences")
    if feature_dim is not None and dim != feature_dim:
        raise ValueError(
            f"{source}: features have dimension {dim} but {feature_dim} is expected"
        )
    num_frames = _integer_vector(num_frames, "num_frames", count, source)
    labels = _integer_vector(labels, "labels", count, source)

    short = np.flatnonzero(num_frames < 1)
    if short.size:
        row = short[0]
        raise ValueError(
            f"{source}: row {row} has no real frame (num_frames={num_frames[row]})"
        )
    long = np.flatnonzero(num_frames > steps)
    if long.size:
        row = long[0]
        raise ValueError(
            f"{source}: row {row} has num_frames={num_frames[row]} but only "
            f"{steps} frames are stored"
        )
    if max_frames is not None:
        over = np.flatnonzero(num_frames > max_frames)
        if over.size:
            row = over[0]
            raise ValueError(
                f"{source}: row {row} has {num_frames[row]} frames, longer than the "
                f"{max_frames} the model was trained on"
            )
    if num_classes is not None:
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if bad.size:
            row = bad[0]
            raise ValueError(
                f"{source}: row {row} has label {labels[row]}, expected 0 to "
                f"{num_classes - 1} (num_classes={num_classes})"
            )

    for start in range(0, count, _CHECK_ROWS):
        block = np.asarray(features[start:start + _CHECK_ROWS])
        real = np.arange(steps)[None, :] < num_frames[start:start + len(block), None]
        bad = ~np.isfinite(block).all(axis=-1) & real
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            row = rows[0]
            frame = int(np.flatnonzero(bad[row])[0])
            raise ValueError(
                f"{source}: row {start + row} has NaN or Inf features (frame {frame})"
            )
    return num_frames, labels


def _integer_vector(values, name, count, source):
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (count,):
        raise ValueError(
            f"{source}: {name} must have shape ({count},) to match features, "
            f"got {array.shape}"
        )
    if array.dtype.kind == "f":
        fractional = np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))
        if fractional.size:
            row = fractional[0]
            raise ValueError(
                f"{source}: row {row}: {name}[{row}] is {array[row].item()}, expected an integer"
            )
    elif array.dtype.kind not in "iub":
        raise ValueError(f"{source}: {name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def augment_sequence(frames, seed, augmentation: SequenceAugmentation):
    """Applies `augmentation` to one sequence of real frames [n, D].

    Args:
        frames: float32 [n, D] with n >= 1, real frames only.
        seed: int32/int64 [2] seed of the stateless random ops.
        augmentation: what to apply.

    Returns:
        float32 [m, D] with 1 <= m <= n.
    """
    crop_seed, start_seed, drop_seed, noise_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 4)
    )
    if augmentation.crop_min_fraction < 1.0:
        count = tf.shape(frames)[0]
        shortest = tf.cast(
            tf.math.ceil(augmentation.crop_min_fraction * tf.cast(count, tf.float32)), tf.int32
        )
        shortest = tf.clip_by_value(shortest, 1, count)
        length = tf.random.stateless_uniform(
            [], crop_seed, minval=shortest, maxval=count + 1, dtype=tf.int32
        )
        start = tf.random.stateless_uniform(
            [], start_seed, minval=0, maxval=count - length + 1, dtype=tf.int32
        )
        frames = frames[start:start + length]
    if augmentation.frame_dropout > 0.0:
        draws = tf.random.stateless_uniform(tf.shape(frames)[:1], drop_seed)
        # Keep frames drawn at or above the rate; if none is, the threshold
        # falls to the largest draw, which keeps exactly that frame.
        threshold = tf.minimum(augmentation.frame_dropout, tf.reduce_max(draws))
        frames = tf.boolean_mask(frames, draws >= threshold)
    if augmentation.noise_std > 0.0:
        frames = frames + augmentation.noise_std * tf.random.stateless_normal(
            tf.shape(frames), noise_seed
        )
    return frames


def sequence_dataset(
    features,
    num_frames,
    targets,
    batch_size: int,
    *,
    input_name: str = "features",
    num_classes=None,
    shuffle: bool = False,
    seed: int = 0,
    augmentation: SequenceAugmentation | None = None,
    pad_to=None,
    drop_remainder: bool = False,
    feature_dim=None,
    max_frames=None,
    source: str = "features",
    epoch=None,
):
    """Builds the batched, masked dataset of variable-length sequences.

    Two layouts of the same thing, one pipeline:

    - labelled rows of a feature file: `features` [N, T, D] (anything
      `np.asarray` takes, e.g. an h5py dataset), `num_frames` [N], and one
      integer label per row in `targets` [N];
    - frame-scored videos: `features` a list of N arrays [T_i, ...]
      (features [T_i, D] or frames [T_i, H, W, 3]), `num_frames` None, and
      one target per step in `targets`, a list of [T_i] arrays, padded with
      `PADDED_TARGET`. The sequences may be any numeric arrays, memory-mapped
      files included: each is read and made float32 when the pipeline
      reaches it.

    Each row is cut to its real steps before it is padded again with
    zeros, so whatever a file stores in its padding never reaches the
    model. Shuffling and augmentation are seeded and stateless per element:
    the same seed gives the same batches in every run, and every epoch gets
    a new order and new augmentation.

    Args:
        features, num_frames, targets: see above.
        batch_size: sequences per batch.
        input_name: the name of the sequence input, `"features"` or
            `"frames"`.
        num_classes: when given, labels are checked against it.
        shuffle: reshuffle the rows every epoch (seeded).
        seed: the one seed of shuffling and augmentation.
        augmentation: optional `SequenceAugmentation` (training only, [T, D]
            sequences with labels).
        pad_to: pad every batch to this many steps instead of to its
            longest sequence; must be >= every row's length.
        drop_remainder: drop a last, smaller batch.
        feature_dim, max_frames: checked as in `validate_sequences`.
        source: the file name used in error messages.
        epoch: the epoch (an int or a scalar tensor, e.g. inside
            `data.pipeline.epoch_stream`) whose order and augmentation to
            draw; None draws new ones every time the dataset is iterated.

    Returns:
        A `tf.data.Dataset` of `({input_name, "mask"}, targets)`; prefetched
        unless `epoch` is given (the stream of epochs prefetches).

    Raises:
        ValueError: bad arrays (see `validate_sequences`) or bad arguments.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(features, (list, tuple)):
        rows = _scored_rows(features, targets, source)
    else:
        rows = _labelled_rows(
            features, num_frames, targets, num_classes, feature_dim, max_frames, source
        )
    if pad_to is not None and pad_to < int(rows.lengths.max()):
        raise ValueError(
            f"pad_to={pad_to} is shorter than the longest sequence in {source} "
            f"({int(rows.lengths.max())} frames)"
        )
    if augmentation is not None and not augmentation.enabled:
        augmentation = None
    prepare = _element_maker(rows, augmentation)
    if epoch is not None:
        elements = _elements_of_epoch(rows, prepare, seed, epoch, shuffle)
    else:
        elements = _elements_drawn_anew(rows, prepare, seed, shuffle)
    dataset = _masked_batches(elements, rows, batch_size, input_name, pad_to, drop_remainder)
    return dataset if epoch is not None else dataset.prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class _Rows:
    """The sequences a pipeline reads, whichever layout they came in.

    Args:
        lengths: int [N], the real steps of each row.
        labels: int [N], one label per row (zeros for frame-scored rows).
        step_shape: the shape of one step ((D,) or (H, W, 3)).
        real_steps: `index -> float32 [lengths[index], *step_shape]`.
        step_targets: `index -> float32 [lengths[index]]`, the per-step
            targets of frame-scored rows; None for labelled rows.
    """

    lengths: np.ndarray
    labels: np.ndarray
    step_shape: tuple
    real_steps: object
    step_targets: object = None

    @property
    def per_step(self):
        return self.step_targets is not None


def _labelled_rows(features, num_frames, labels, num_classes, feature_dim, max_frames, source):
    """`_Rows` of a feature file's arrays, checked (`validate_sequences`)."""
    features = np.asarray(features)
    if features.dtype.kind != "f":
        raise ValueError(f"{source}: features must be floating point, got dtype {features.dtype}")
    lengths, labels = validate_sequences(
        features, num_frames, labels, num_classes, feature_dim, max_frames, source
    )
    features = features.astype(np.float32, copy=False)

    def real_steps(index):
        return features[index, : lengths[index]]

    return _Rows(lengths, labels, features.shape[2:], real_steps)


def _scored_rows(sequences, targets, source):
    """`_Rows` of frame-scored sequences, each made float32 only when the
    pipeline reads it (they may be uint8 frames or memory-mapped files)."""
    sequences, lengths, step_targets = _scored_sequences(sequences, targets, source)

    def real_steps(index):
        return np.asarray(sequences[index], np.float32)

    return _Rows(
        lengths, np.zeros(len(sequences), np.int32), sequences[0].shape[1:], real_steps,
        step_targets=lambda index: step_targets[index],
    )


def _element_maker(rows, augmentation):
    """The function that turns a row (index, label) and its seed into one
    element `(steps [n, ...], n, target)`, its steps augmented.

    Rows are read through `tf.numpy_function`, so an h5py dataset or a
    memory-mapped file is read one row at a time, when it is needed.
    """

    def prepare(row, draw):
        index, label = row
        frames = tf.numpy_function(rows.real_steps, [index], tf.float32, stateful=False)
        frames = tf.ensure_shape(frames, [None, *rows.step_shape])
        if augmentation is not None:
            frames = augment_sequence(frames, draw, augmentation)
        if rows.per_step:
            target = tf.numpy_function(rows.step_targets, [index], tf.float32, stateful=False)
            target = tf.ensure_shape(target, [None])
        else:
            target = label
        return frames, tf.shape(frames)[0], target

    return prepare


def _elements_of_epoch(rows, prepare, seed, epoch, shuffle):
    """The elements of epoch `epoch`: its order and each row's augmentation
    depend on the seed, the epoch and the row only (resumable)."""
    count = len(rows.lengths)
    order = pipeline.epoch_order(count, seed, epoch) if shuffle else tf.range(count, dtype=tf.int64)
    all_labels = tf.constant(rows.labels.astype(np.int32))
    indices = tf.data.Dataset.from_tensor_slices(order).map(
        pipeline.traced_as_written(lambda index: (index, tf.gather(all_labels, index)))
    )
    return indices.map(
        pipeline.traced_as_written(lambda index, label: prepare(
            (index, label), pipeline.element_seed(seed, epoch, index)
        )),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _elements_drawn_anew(rows, prepare, seed, shuffle):
    """The elements with a new order and new augmentation every time the
    dataset is iterated (seeded, so every run draws the same sequence)."""
    count = len(rows.lengths)
    indices = tf.data.Dataset.from_tensor_slices(
        (np.arange(count, dtype=np.int64), rows.labels.astype(np.int32))
    )
    if shuffle:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    # One random draw per element seeds its augmentation; a new iteration
    # gets new draws.
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(indices, draws).map(
        pipeline.traced_as_written(lambda row, draw: prepare(row, tf.stack([draw, row[0]]))),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _masked_batches(elements, rows, batch_size, input_name, pad_to, drop_remainder):
    """Batches of `({input_name, "mask"}, targets)`: zero-padded at the end
    to the batch's longest sequence (or `pad_to`), the mask True on the
    real steps, per-step targets padded with `PADDED_TARGET`; the
    cardinality is declared, so Keras knows an epoch's length."""
    per_step = rows.per_step
    dataset = elements.padded_batch(
        batch_size,
        padded_shapes=([pad_to, *rows.step_shape], [], [pad_to] if per_step else []),
        padding_values=(0.0, 0, PADDED_TARGET if per_step else 0),
        drop_remainder=drop_remainder,
    )

    def to_inputs(frames, lengths, target):
        mask = tf.sequence_mask(lengths, maxlen=tf.shape(frames)[1])
        return {input_name: frames, "mask": mask}, target

    dataset = dataset.map(pipeline.traced_as_written(to_inputs), num_parallel_calls=tf.data.AUTOTUNE)
    count = len(rows.lengths)
    batches = count // batch_size if drop_remainder else -(-count // batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches))


def _scored_sequences(sequences, targets, source):
    """Checks a list of sequences [T_i, ...] against their step targets."""
    if len(sequences) != len(targets) or not len(sequences):
        raise ValueError(
            f"{source}: need one target sequence per sequence, got {len(sequences)} and "
            f"{len(targets)}"
        )
    # Kept as given (uint8 frames, a memory-mapped file), made float32 one
    # sequence at a time as the pipeline reads them.
    sequences = [np.asarray(sequence) for sequence in sequences]
    targets = [np.asarray(target, dtype=np.float32).reshape(-1) for target in targets]
    for index, (sequence, target) in enumerate(zip(sequences, targets)):
        if (sequence.ndim < 2 or sequence.shape[0] != target.shape[0] or not len(target)
                or sequence.shape[1:] != sequences[0].shape[1:] or sequence.dtype.kind not in "fiu"):
            raise ValueError(
                f"{source}: sequence {index}: shape {sequence.shape} with {target.shape[0]} "
                f"targets; expected [T, {', '.join(map(str, sequences[0].shape[1:]))}] with "
                "T >= 1 targets"
            )
    lengths = np.array([len(target) for target in targets], np.int64)
    return sequences, lengths, targets


def steps_per_epoch(count: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches in one pass over `count` sequences."""
    if drop_remainder:
        return count // batch_size
    return math.ceil(count / batch_size)
