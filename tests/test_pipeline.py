"""The clip pipeline: aligned augmentation, determinism, shapes."""

import numpy as np
import tensorflow as tf

from data import pipeline
from data.synthetic import synthetic_clips


def ramp_clip(frames=6, height=16, width=20):
    """A clip whose every frame is the same horizontal ramp plus the frame
    index, so any per-frame difference in crop or flip shows up."""
    ramp = np.tile(np.linspace(0, 200, width, dtype=np.float32), (height, 1))
    clip = np.stack([ramp + 5 * t for t in range(frames)])[..., None]
    return clip.astype(np.uint8)


def test_augmentation_is_the_same_on_every_frame():
    clip = ramp_clip()
    augmentation = pipeline.Augmentation(brightness=0.0, contrast=0.0, temporal_jitter=False)
    for key in range(8):
        out = pipeline.augment_clip(
            tf.constant(clip), tf.constant([key, 0], tf.int64), None, augmentation
        ).numpy()
        # Every frame differs from the first by the same constant offset 5*t/255:
        # the same crop, resize and flip was applied to all of them.
        offsets = out - out[:1]
        expected = (5.0 * np.arange(len(clip)) / 255.0)[:, None, None, None]
        np.testing.assert_allclose(offsets, np.broadcast_to(expected, out.shape), atol=2e-3)


def test_flip_happens():
    clip = ramp_clip(frames=2)
    outs = [
        pipeline.augment_clip(tf.constant(clip), tf.constant([key, 0], tf.int64)).numpy()
        for key in range(16)
    ]
    increasing = [o[0, 0, -1, 0] > o[0, 0, 0, 0] for o in outs]
    assert any(increasing) and not all(increasing), "flip never or always applied"
    assert all(o.shape == (2, 16, 20, 1) for o in outs)


def ramp_spans(crop_scale, keys=16):
    """(first, last) value of the top row of each cropped ramp, in the
    ramp's 0..200 units; no flip, no colour change."""
    augmentation = pipeline.Augmentation(crop_scale=crop_scale, flip=False, brightness=0.0,
                                         contrast=0.0, temporal_jitter=False)
    clip = ramp_clip(frames=2)
    spans = []
    for key in range(keys):
        out = pipeline.augment_clip(
            tf.constant(clip), tf.constant([key, 0], tf.int64), None, augmentation).numpy()
        assert out.shape == (2, 16, 20, 1)
        spans.append((out[0, 0, 0, 0] * 255, out[0, 0, -1, 0] * 255))
    return np.array(spans)


def test_crop_cuts_a_part_of_the_frame_and_resizes_it_back():
    # The whole frame: the ramp from 0 to 200 (the uint8 ramp rounds down).
    np.testing.assert_allclose(ramp_spans((1.0, 1.0), keys=2), [[0, 200], [0, 200]], atol=1.0)
    # Half the width: 10 of 20 columns, 9 steps of 200 / 19, resized back to
    # the full width; where the half lies changes from clip to clip.
    half = ramp_spans((0.5, 0.5))
    widths = half[:, 1] - half[:, 0]
    assert np.all((widths > 80) & (widths < 100)), widths
    assert np.all((half[:, 0] >= 0) & (half[:, 1] <= 201))
    assert len(np.unique(np.round(half[:, 0]))) > 1, "the crop never moves"
    # The default 0.8-1.0 of the side: spans of 0.8 * 200 to 200.
    default = ramp_spans(pipeline.Augmentation.crop_scale)
    widths = default[:, 1] - default[:, 0]
    assert np.all(widths > 0.8 * 200 - 12) and np.all(widths < 201)
    assert widths.min() < 195, "no clip was cropped"


def test_temporal_jitter_cuts_a_window_of_consecutive_frames():
    clip = np.stack([np.full((8, 8, 1), 10 * t, np.uint8) for t in range(10)])
    augmentation = pipeline.Augmentation(
        crop_scale=(1.0, 1.0), flip=False, brightness=0.0, contrast=0.0
    )
    starts = set()
    for key in range(20):
        out = pipeline.augment_clip(
            tf.constant(clip), tf.constant([key, 1], tf.int64), 4, augmentation
        ).numpy()
        values = np.round(out[:, 0, 0, 0] * 255 / 10).astype(int)
        assert list(values) == list(range(values[0], values[0] + 4))
        starts.add(values[0])
    assert starts == {0, 1, 2, 3, 4, 5, 6}
    centre = pipeline.augment_clip(tf.constant(clip), None, 4).numpy()
    assert np.round(centre[0, 0, 0, 0] * 255 / 10) == 3


def batches(seed, clips, labels):
    dataset = pipeline.clip_batches(
        pipeline.from_arrays(clips, labels), 3, num_frames=4, training=True, seed=seed
    )
    return [(x["frames"].numpy(), y.numpy()) for x, y in dataset]


def test_same_seed_same_batches_other_seed_other_batches():
    clips, labels, _ = synthetic_clips(7, frames=6, height=16, width=16, seed=3)
    first, again, other = batches(5, clips, labels), batches(5, clips, labels), batches(6, clips, labels)
    assert [x.shape for x, _ in first] == [(3, 4, 16, 16, 3), (3, 4, 16, 16, 3), (1, 4, 16, 16, 3)]
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0], other[0][0])


def test_evaluation_batches_are_not_augmented_and_keep_order():
    clips, labels, _ = synthetic_clips(5, frames=4, height=16, width=16)
    dataset = pipeline.clip_batches(pipeline.from_arrays(clips, labels), 2, binary=True)
    frames = np.concatenate([x["frames"].numpy() for x, _ in dataset])
    targets = np.concatenate([y.numpy() for _, y in dataset])
    np.testing.assert_allclose(frames, clips / 255.0, atol=1e-6)
    assert targets.shape == (5, 1) and targets.dtype == np.float32
    np.testing.assert_array_equal(targets[:, 0], labels)


def test_from_arrays_rejects_wrong_shapes():
    import pytest

    with pytest.raises(ValueError, match="uint8 \\[N, T, H, W, C\\]"):
        pipeline.from_arrays(np.zeros((2, 4, 4, 3), np.uint8), [0, 1])
    with pytest.raises(ValueError, match="3 clips but 2 labels"):
        pipeline.from_arrays(np.zeros((3, 2, 4, 4, 3), np.uint8), [0, 1])
