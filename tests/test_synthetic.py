import numpy as np
import pytest

from data import synthetic


def test_deterministic_and_balanced():
    a = synthetic.synthetic_clips(8, frames=5, height=20, width=24, channels=4, num_classes=4, seed=7)
    b = synthetic.synthetic_clips(8, frames=5, height=20, width=24, channels=4, num_classes=4, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (8, 5, 20, 24, 4) and a[0].dtype == np.uint8
    assert np.bincount(a[1]).tolist() == [2, 2, 2, 2]
    assert a[2] == ["horizontal", "vertical", "diagonal", "anti_diagonal"]


def test_motion_is_visible_in_the_frames():
    clips, labels, names = synthetic.synthetic_clips(20, frames=8, height=32, width=32, seed=1)
    for clip, label in zip(clips, labels):
        bright = clip[..., 0] > 150
        rows, cols = [], []
        for frame in bright:
            r, c = np.nonzero(frame)
            rows.append(r.mean())
            cols.append(c.mean())
        row_motion, col_motion = np.ptp(rows), np.ptp(cols)
        if names[label] == "horizontal":
            assert col_motion > row_motion
        else:
            assert row_motion > col_motion


def test_bad_arguments():
    with pytest.raises(ValueError, match="at most 4 classes"):
        synthetic.synthetic_clips(2, task="shape", num_classes=5)
    with pytest.raises(ValueError, match="at least 1x8x8x1"):
        synthetic.synthetic_clips(2, height=4)
