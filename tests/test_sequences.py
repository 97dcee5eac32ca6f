"""The feature-sequence tf.data pipeline: masks, padding, seeds, checks."""

import numpy as np
import pytest

from data.sequences import (
    SequenceAugmentation,
    sequence_dataset,
    steps_per_epoch,
    validate_sequences,
)

DIM = 4


def stored(num_frames, steps=None, seed=0, padding_value=0.0):
    """Feature rows as a file stores them: real frames then padding."""
    rng = np.random.default_rng(seed)
    num_frames = np.asarray(num_frames)
    steps = steps or int(num_frames.max())
    features = rng.normal(size=(len(num_frames), steps, DIM)).astype("float32")
    padded = np.arange(steps)[None, :] >= num_frames[:, None]
    features[padded] = padding_value
    return features


def collect(dataset):
    return [
        (inputs["features"].numpy(), inputs["mask"].numpy(), labels.numpy())
        for inputs, labels in dataset
    ]


def test_batches_are_padded_to_their_longest_row_with_masks_from_num_frames():
    num_frames = np.array([2, 5, 1, 3, 4])
    # Garbage in the stored padding must never come through.
    features = stored(num_frames, steps=7, padding_value=99.0)
    labels = np.array([0, 1, 2, 1, 0])
    batches = collect(sequence_dataset(features, num_frames, labels, batch_size=2, num_classes=3))
    assert [b[0].shape for b in batches] == [(2, 5, DIM), (2, 3, DIM), (1, 4, DIM)]
    rows = 0
    for batch_features, mask, batch_labels in batches:
        assert mask.dtype == bool and batch_labels.dtype == np.int32
        for b in range(len(batch_labels)):
            n = num_frames[rows]
            np.testing.assert_array_equal(mask[b], np.arange(mask.shape[1]) < n)
            np.testing.assert_array_equal(batch_features[b, :n], features[rows, :n])
            assert np.all(batch_features[b, n:] == 0)
            assert batch_labels[b] == labels[rows]
            rows += 1
    assert rows == 5


def test_pad_to_gives_a_fixed_length():
    num_frames = np.array([2, 3])
    dataset = sequence_dataset(stored(num_frames, steps=6), num_frames, [0, 1], batch_size=2,
                               pad_to=6)
    (features, mask, _), = collect(dataset)
    assert features.shape == (2, 6, DIM)
    np.testing.assert_array_equal(mask.sum(axis=1), [2, 3])
    with pytest.raises(ValueError, match="pad_to=2 is shorter.*3 frames"):
        sequence_dataset(stored(num_frames), num_frames, [0, 1], batch_size=2, pad_to=2)


def test_drop_remainder_and_steps_per_epoch():
    num_frames = np.full(5, 2)
    dataset = sequence_dataset(stored(num_frames), num_frames, np.zeros(5, int), batch_size=2,
                               drop_remainder=True)
    assert len(collect(dataset)) == steps_per_epoch(5, 2, drop_remainder=True) == 2
    assert steps_per_epoch(5, 2) == 3


AUGMENT = SequenceAugmentation(crop_min_fraction=0.5, frame_dropout=0.3, noise_std=0.1)


def make_dataset(seed, augmentation=AUGMENT):
    num_frames = np.array([6, 3, 8, 1, 5, 7, 2, 4])
    return sequence_dataset(
        stored(num_frames), num_frames, np.arange(8) % 2, batch_size=3, shuffle=True,
        seed=seed, augmentation=augmentation, num_classes=2,
    )


def epochs(dataset, count=2):
    return [collect(dataset) for _ in range(count)]


def assert_same(a, b):
    assert len(a) == len(b)
    for batches_a, batches_b in zip(a, b):
        assert len(batches_a) == len(batches_b)
        for x, y in zip(batches_a, batches_b):
            for part_x, part_y in zip(x, y):
                np.testing.assert_array_equal(part_x, part_y)


def differs(a, b):
    try:
        assert_same(a, b)
    except AssertionError:
        return True
    return False


def test_same_seed_gives_the_same_batches_every_run():
    first = epochs(make_dataset(seed=5))
    again = epochs(make_dataset(seed=5))
    assert_same(first, again)
    # Another seed differs, and each epoch reshuffles and re-augments.
    assert differs(first, epochs(make_dataset(seed=6)))
    assert differs([first[0]], [first[1]])


def test_same_seed_without_augmentation_only_shuffles():
    first = epochs(make_dataset(seed=1, augmentation=None))
    assert_same(first, epochs(make_dataset(seed=1, augmentation=None)))
    labels = np.concatenate([b[2] for b in first[0]])
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4


def test_frame_dropout_keeps_order_padding_at_the_end_and_one_frame():
    num_frames = np.array([1, 2, 6, 9])
    features = stored(num_frames, seed=2)
    augmentation = SequenceAugmentation(frame_dropout=0.9)
    for seed in range(4):
        dataset = sequence_dataset(features, num_frames, [0, 0, 0, 0], batch_size=4,
                                   seed=seed, augmentation=augmentation)
        (batch, mask, _), = collect(dataset)
        lengths = mask.sum(axis=1)
        assert np.all(lengths >= 1) and np.all(lengths <= num_frames)
        for row in range(4):
            # Right-padded: True then False, nothing after the first False.
            np.testing.assert_array_equal(mask[row], np.arange(mask.shape[1]) < lengths[row])
            assert np.all(batch[row, lengths[row]:] == 0)
            # Every kept frame is an original real frame, in original order.
            source = [
                int(np.flatnonzero((features[row, :num_frames[row]] == frame).all(axis=1))[0])
                for frame in batch[row, :lengths[row]]
            ]
            assert source == sorted(set(source))
    # With rate 0.9, long rows do lose frames.
    assert lengths[3] < 9


def test_temporal_crop_is_a_contiguous_window_of_the_minimum_length():
    num_frames = np.array([10, 10, 10, 10, 3])
    features = stored(num_frames, seed=3)
    augmentation = SequenceAugmentation(crop_min_fraction=0.6)
    lengths_seen = set()
    for seed in range(3):
        dataset = sequence_dataset(features, num_frames, np.zeros(5, int), batch_size=5,
                                   seed=seed, augmentation=augmentation)
        (batch, mask, _), = collect(dataset)
        for row in range(5):
            length = int(mask[row].sum())
            assert length >= int(np.ceil(0.6 * num_frames[row]))
            lengths_seen.add(length)
            start = int(np.flatnonzero((features[row] == batch[row, 0]).all(axis=1))[0])
            np.testing.assert_array_equal(batch[row, :length],
                                          features[row, start:start + length])
    assert len(lengths_seen) > 1


def test_noise_touches_real_frames_only():
    num_frames = np.array([3, 6])
    features = stored(num_frames, seed=4)
    dataset = sequence_dataset(features, num_frames, [0, 1], batch_size=2, seed=0,
                               augmentation=SequenceAugmentation(noise_std=0.5))
    (batch, mask, _), = collect(dataset)
    np.testing.assert_array_equal(mask.sum(axis=1), num_frames)
    noise = batch[mask] - features[:, :6][mask]
    assert 0.3 < noise.std() < 0.7
    assert np.all(batch[~mask] == 0)


def test_batches_feed_the_model():
    import models

    config = models.get_config(
        "bilstm_attention", input_shape=(None, DIM), num_classes=2, projection_dim=4,
        lstm_layers=1, lstm_units=3, attention_heads=1, attention_key_dim=2, pooling_dim=2,
        classifier_units=(4,),
    )
    model = models.build_from_config("bilstm_attention", config)
    inputs, _ = next(iter(make_dataset(seed=0)))
    assert model(inputs).shape == (3, 2)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(labels=[0, 3, 1]), r"train\.h5: row 1 has label 3, expected 0 to 2"),
        (dict(labels=[0, -1, 1]), "row 1 has label -1"),
        (dict(labels=[0, 1.5, 1]), r"row 1: labels\[1\] is 1.5, expected an integer"),
        (dict(num_frames=[2, 0, 1]), "row 1 has no real frame"),
        (dict(num_frames=[2, 5, 1]), "row 1 has num_frames=5 but only 3 frames are stored"),
        (dict(num_frames=[2, 1]), r"num_frames must have shape \(3,\)"),
        (dict(labels=[0, 1]), r"labels must have shape \(3,\)"),
        (dict(features=np.zeros((3, 3))), r"\[N, T, D\]"),
        (dict(features=np.zeros((0, 3, DIM))), "contains no sequences"),
        (dict(feature_dim=1280), "dimension 4 but 1280 is expected"),
        (dict(max_frames=2), "row 2 has 3 frames, longer than the 2"),
    ],
)
def test_bad_input_names_the_file_and_row(change, message):
    arguments = dict(
        features=stored([2, 1, 3], steps=3), num_frames=[2, 1, 3], labels=[0, 2, 1],
        num_classes=3, source="train.h5",
    )
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        validate_sequences(**arguments)
    with pytest.raises(ValueError, match=message):
        features = arguments.pop("features")
        sequence_dataset(features, arguments.pop("num_frames"), arguments.pop("labels"),
                         batch_size=2, **arguments)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_name_the_row_and_frame(bad):
    features = stored([2, 3, 1], steps=3)
    features[1, 2, 0] = bad
    with pytest.raises(ValueError, match="val.h5: row 1 has NaN or Inf features \\(frame 2\\)"):
        sequence_dataset(features, [2, 3, 1], [0, 0, 0], batch_size=2, source="val.h5")
    # Non-finite values in the stored padding are never read, so they pass.
    features[1, 2, 0] = 0.0
    features[2, 2, 1] = bad
    assert len(collect(sequence_dataset(features, [2, 3, 1], [0, 0, 0], batch_size=3))) == 1


def test_rows_beyond_the_first_check_block_are_checked():
    num_frames = np.ones(300, int)
    features = stored(num_frames, steps=1)
    features[280, 0, 0] = np.nan
    with pytest.raises(ValueError, match="row 280"):
        validate_sequences(features, num_frames, np.zeros(300, int))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(crop_min_fraction=0.0), "crop_min_fraction"),
        (dict(crop_min_fraction=1.5), "crop_min_fraction"),
        (dict(frame_dropout=1.0), "frame_dropout"),
        (dict(noise_std=-0.1), "noise_std"),
    ],
)
def test_bad_augmentation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SequenceAugmentation(**kwargs)


def test_bad_batch_size_and_dtype():
    with pytest.raises(ValueError, match="batch_size"):
        sequence_dataset(stored([1]), [1], [0], batch_size=0)
    with pytest.raises(ValueError, match="floating point"):
        sequence_dataset(np.zeros((1, 1, DIM), int), [1], [0], batch_size=1)
