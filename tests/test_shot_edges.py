"""Colour histograms at their bin edges, and the KTS penalty of colour shots."""

import numpy as np

from data import shots
from tests.prediction_fixtures import scene_frames


def test_hsv_bins_are_even_over_the_full_ranges():
    # RGB (112, 128, 96) is HSV (45, 64, 128) in OpenCV's units: on the lower
    # edge of hue bin 2 (22.5 wide over 0-180), saturation bin 1 and value
    # bin 2 (64 wide over 0-256). Bins run hue-major: 2 * 16 + 1 * 4 + 2.
    frame = np.broadcast_to(np.array([112, 128, 96], np.uint8), (6, 4, 3))
    histogram = shots.hsv_histogram(frame)
    assert histogram.dtype == np.float32 and histogram.shape == (128,)
    assert np.flatnonzero(histogram).tolist() == [38]
    assert histogram[38] == 1.0
    # Two colours of equal area: each bin holds 1 / sqrt(2) after the L2 norm.
    frame = np.concatenate([frame, np.broadcast_to(np.array([255, 0, 0], np.uint8), (6, 4, 3))])
    histogram = shots.hsv_histogram(frame)
    assert np.flatnonzero(histogram).tolist() == [15, 38]  # red: hue 0, s 255, v 255
    np.testing.assert_allclose(histogram[[15, 38]], np.sqrt(0.5), rtol=1e-6)


def test_a_black_frame_falls_in_the_first_bin():
    histogram = shots.hsv_histogram(np.zeros((4, 4, 3), np.uint8))
    assert histogram[0] == 1.0 and np.isfinite(histogram).all()


def test_colour_shots_pass_their_penalty_to_kts():
    frames, starts = scene_frames(seconds=4.0, fps=10.0, scenes=4, size=(36, 64))
    picks = np.arange(0, 40, 2)
    change_points, _ = shots.color_shots(frames[picks], picks, n_frames=40)
    assert change_points[:, 0].tolist() == starts
    # A penalty a hundred times larger keeps the video one shot.
    change_points, lengths = shots.color_shots(frames[picks], picks, n_frames=40, vmax=100.0)
    assert change_points.tolist() == [[0, 39]] and lengths.tolist() == [40]
