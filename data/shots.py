"""Shots of a video: kernel temporal segmentation (KTS) of per-sample features.

The summarization protocol cuts a video into shots with KTS (Potapov et
al., "Category-specific video summarization", ECCV 2014) before the
knapsack picks some of them. KTS chooses change points that minimise the
within-segment scatter of the features plus a penalty on their number.
The segmentation itself is `ruptures`' `KernelCPD(kernel="linear")`, an
exact dynamic programme over the same cost (the sum of squared distances of
the features to their segment's mean); one run of it for the largest
number of change points caches the best segmentation for every smaller
number. The number is KTS' model selection:

    k* = argmin_k  cost_k / n + vmax * k / (2 n) * (log(n / k) + 1)

with `vmax = 1` for L2-normalised features, as the public KTS code is used
on them (DSNet's `cpd_auto(..., vmax=1)`).

Long videos. The exact programme costs O(K n^2) for n samples and K
candidate change points (K grows with n), so an hour at 2 samples per
second (7200) would take hours. `segment_change_points` runs it exactly up
to `EXACT_SAMPLES` (6 minutes at 2 fps: about 0.3 s) and beyond that on
blocks: the samples are cut into cores of `BLOCK_SAMPLES`, each core is
segmented by exact KTS together with `MARGIN_SAMPLES` of context on either
side, and the change points that fall inside the core are kept. Each block
costs the same bounded time, so the whole grows linearly with the length.
KTS' penalty per change point depends on the shots' density (n / k), not
on n itself, so a block that sees a few shots on either side of its core
chooses the cuts the whole-video programme chooses. On sequences of many
shots the two agree exactly (tests/test_long_video.py); where a cut is
marginal (very noisy features), the two may differ by that cut.

What the features are. The public files' change points come from KTS on
GoogLeNet features. A keyframe run here may have a random-weight backbone
(tests, no network) or none at all (projection features); such features
hardly move at a cut, so KTS on them finds one or two shots. Shots are
therefore cut on colour: an HSV histogram (8 hue x 4 saturation x 4 value
bins) of every sampled frame, L2-normalised (`hsv_histogram`). On a test
video of four scenes with moving shapes this finds the four scenes exactly,
and on one 40-second scene it finds one shot; histogram cuts are also what
classic shot detectors use.

Example:

>>> features = np.repeat(np.eye(3), [4, 3, 5], axis=0)   # three flat segments
>>> kts_change_points(features)
[4, 7]
>>> change_points, lengths = shots_from_change_points([4, 7], picks=np.arange(12) * 10,
...                                                   n_frames=125)
>>> change_points.tolist(), lengths.tolist()
([[0, 39], [40, 69], [70, 124]], [40, 30, 55])
"""

import cv2
import numpy as np

HSV_BINS = (8, 4, 4)
DEFAULT_VMAX = 1.0
# Exact KTS up to this many samples; beyond, blocks of BLOCK_SAMPLES cores
# with MARGIN_SAMPLES of context on either side (see the module docstring).
EXACT_SAMPLES = 720
BLOCK_SAMPLES = 360
MARGIN_SAMPLES = 120


def hsv_histogram(frame, bins=HSV_BINS, bgr=False):
    """L2-normalised HSV colour histogram of an RGB uint8 frame [H, W, 3]
    (of a BGR one, as OpenCV decodes it, with `bgr`).

    Example:

    >>> red = np.zeros((8, 8, 3), np.uint8); red[..., 0] = 255
    >>> histogram = hsv_histogram(red)
    >>> histogram.shape, float(histogram.max())
    ((128,), 1.0)
    """
    hsv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2HSV if bgr else cv2.COLOR_RGB2HSV)
    counts = cv2.calcHist([hsv], [0, 1, 2], None, list(bins), [0, 180, 0, 256, 0, 256]).ravel()
    return (counts / (np.linalg.norm(counts) + 1e-10)).astype(np.float32)


def kts_change_points(features, vmax=DEFAULT_VMAX, max_change_points=None):
    """KTS change points of a feature sequence, as the rows that start a segment.

    Args:
        features: [n, d] one feature vector per sample (L2-normalised rows
            for `vmax = 1`).
        vmax: weight of KTS' penalty on the number of change points; smaller
            gives more shots.
        max_change_points: the most change points considered (default
            `n // 2`: shots of at least two samples on average).

    Returns:
        Sorted sample indices (each in 1..n-1) where a new segment starts;
        empty for one segment.
    """
    import ruptures

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [n, d], got shape {x.shape}")
    n = len(x)
    limit = n // 2 if max_change_points is None else int(max_change_points)
    limit = min(limit, n - 1)
    if limit < 1:
        return []
    algorithm = ruptures.KernelCPD(kernel="linear", min_size=1).fit(x)
    algorithm.predict(n_bkps=limit)  # one dynamic programme; every k <= limit is cached
    # The linear kernel's cost, from prefix sums: total squared norm minus
    # each segment's squared sum over its length.
    prefix = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    total = float((x * x).sum())

    def cost(ends):
        bounds = np.asarray([0, *ends])
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        return total - float(((sums ** 2).sum(axis=1) / np.diff(bounds)).sum())

    best_k, best = 0, cost([n]) / n
    for k in range(1, limit + 1):
        value = cost(algorithm.predict(n_bkps=k)) / n + vmax * k / (2.0 * n) * (np.log(n / k) + 1.0)
        if value < best:
            best_k, best = k, value
    if best_k == 0:
        return []
    return [int(end) for end in algorithm.predict(n_bkps=best_k)[:-1]]


def segment_change_points(features, vmax=DEFAULT_VMAX, exact_samples=EXACT_SAMPLES,
                          block=BLOCK_SAMPLES, margin=MARGIN_SAMPLES):
    """KTS change points of a sequence of any length, at a cost that grows
    linearly with it: exact KTS up to `exact_samples` samples, blocks
    beyond (see the module docstring).

    Args:
        features: [n, d] one feature vector per sample.
        vmax: KTS' penalty weight.
        exact_samples: the longest sequence segmented in one programme.
        block: samples of each block's core.
        margin: samples of context on either side of a core.

    Returns:
        Sorted sample indices where a new segment starts, as
        `kts_change_points`.

    Example:

    >>> features = np.repeat(np.eye(4), [30, 25, 40, 35], axis=0)   # four flat segments
    >>> segment_change_points(features, exact_samples=50, block=40, margin=20)
    [30, 55, 95]
    >>> kts_change_points(features)
    [30, 55, 95]
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [n, d], got shape {x.shape}")
    n = len(x)
    if n <= exact_samples:
        return kts_change_points(x, vmax)
    if block < 1 or margin < 0:
        raise ValueError(f"block must be >= 1 and margin >= 0, got {block} and {margin}")
    starts = []
    for core in range(0, n, block):
        low, high = max(0, core - margin), min(n, core + block + margin)
        starts += [low + cut for cut in kts_change_points(x[low:high], vmax)
                   if core <= low + cut < core + block]
    return starts


def shots_from_change_points(starts, picks, n_frames):
    """Shots in frames, in the summarization files' form.

    Args:
        starts: sample indices that start a segment (from
            `kts_change_points`).
        picks: [n] frame index of every sample.
        n_frames: frames in the video.

    Returns:
        (change_points int64 [S, 2] with the first and last frame of every
        shot, both inclusive, covering 0..n_frames-1; n_frame_per_seg int64
        [S]).
    """
    picks = np.asarray(picks, dtype=np.int64)
    first = [0] + [int(picks[start]) for start in starts]
    first = np.asarray(sorted(set(first)), dtype=np.int64)
    last = np.append(first[1:] - 1, int(n_frames) - 1)
    return np.stack([first, last], axis=1), last - first + 1


def color_shots(frames, picks, n_frames, vmax=DEFAULT_VMAX):
    """Shots of a video from its sampled RGB frames (HSV histograms + KTS).

    Returns:
        The `shots_from_change_points` pair.
    """
    histograms = np.stack([hsv_histogram(frame) for frame in frames])
    return shots_from_change_points(segment_change_points(histograms, vmax), picks, n_frames)


__all__ = [
    "color_shots",
    "hsv_histogram",
    "kts_change_points",
    "segment_change_points",
    "shots_from_change_points",
]
