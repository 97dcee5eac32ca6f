"""Colour histograms at their bin edges, and KTS against its objective."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_bgr_frame_gives_the_histogram_of_its_rgb_colours():
    """Guards `bgr`: OpenCV's channel order is converted, not read as RGB."""
    frame = np.broadcast_to(np.array([255, 0, 0], np.uint8), (4, 4, 3))  # red
    np.testing.assert_array_equal(shots.hsv_histogram(frame[..., ::-1], bgr=True),
                                  shots.hsv_histogram(frame))
    assert np.flatnonzero(shots.hsv_histogram(frame[..., ::-1], bgr=True)).tolist() == [15]


def test_a_sequence_of_exactly_exact_samples_is_one_programme(kts_sizes):
    """Guards `n <= exact_samples`: a sequence that long is segmented by
    exact KTS at once; one sample more, in blocks."""
    sizes = kts_sizes
    features = np.repeat(np.eye(4), 3, axis=0)  # four flat segments of 3
    assert shots.segment_change_points(features, exact_samples=12, block=4, margin=2) == [3, 6, 9]
    assert sizes == [12]
    sizes.clear()
    assert shots.segment_change_points(features, exact_samples=11, block=4, margin=2) == [3, 6, 9]
    assert sizes == [6, 8, 6]


def test_blocks_keep_the_change_points_of_their_own_core():
    """Guards the blockwise segmentation at its edges: a change point on the
    first sample of a core belongs to that core only, each block's points
    are shifted by where its context starts, every block adds its own, and
    the penalty reaches each block's KTS."""
    features = np.repeat(np.eye(4), 3, axis=0)  # changes at 3, 6 and 9
    # Cores of 3 samples start exactly where the segments do.
    assert shots.segment_change_points(features, exact_samples=11, block=3, margin=2) == [3, 6, 9]
    assert shots.segment_change_points(features, vmax=10.0, exact_samples=11, block=3,
                                       margin=2) == []
    # The smallest blocks and no context are allowed; less is refused.
    assert shots.segment_change_points(features, exact_samples=11, block=1, margin=0) == []
    for block, margin in ((0, 0), (1, -1)):
        with pytest.raises(ValueError, match="block must be >= 1 and margin >= 0"):
            shots.segment_change_points(features, exact_samples=11, block=block, margin=margin)


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


def kts_objective(x, cuts, vmax=1.0):
    """KTS' objective of one segmentation, from its definition: within-segment
    scatter over n plus vmax k / (2 n) (log(n / k) + 1)."""
    n, k = len(x), len(cuts)
    bounds = [0, *cuts, n]
    scatter = sum(((x[a:b] - x[a:b].mean(0)) ** 2).sum() for a, b in zip(bounds[:-1], bounds[1:]))
    return scatter / n + (vmax * k / (2 * n) * (np.log(n / k) + 1) if k else 0.0)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(n=st.integers(2, 9), seed=st.integers(0, 10**6), vmax=st.sampled_from([0.1, 0.5, 1.0]))
def test_kts_minimises_its_objective_over_every_segmentation(n, seed, vmax):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    found = shots.kts_change_points(x, vmax=vmax)
    # Every segmentation of at most n // 2 change points (the default limit).
    best = min(
        (list(cuts) for k in range(n // 2 + 1) for cuts in itertools.combinations(range(1, n), k)),
        key=lambda cuts: kts_objective(x, cuts, vmax),
    )
    assert len(found) <= n // 2
    assert kts_objective(x, found, vmax) == pytest.approx(kts_objective(x, best, vmax), abs=1e-12)


def test_kts_limits_the_number_of_change_points():
    # Four two-sample segments: three change points, over n // 3 = 2.
    x = np.repeat(np.eye(4), 2, axis=0)
    assert shots.kts_change_points(x) == [2, 4, 6]
    assert shots.kts_change_points(x, max_change_points=1) in ([2], [4], [6])
    assert shots.kts_change_points(x, max_change_points=100) == [2, 4, 6]
    # Two different samples: one change point is allowed (n // 2 = 1).
    assert shots.kts_change_points(np.eye(2)) == [1]
    assert shots.kts_change_points(np.eye(3)[:1]) == []
