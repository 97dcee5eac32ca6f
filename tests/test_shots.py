"""Shots of a video: HSV histograms, KTS change points, shots in frames."""

import numpy as np
import pytest

from data import shots
from tests.prediction_fixtures import scene_frames


def test_colour_shots_find_the_scenes_of_a_video():
    frames, starts = scene_frames(seconds=10.0, fps=25.0, scenes=5, size=(72, 128))
    picks = np.round(np.arange(0, 250, 12.5)).astype(int)  # 2 fps
    change_points, lengths = shots.color_shots(frames[picks], picks, n_frames=250)
    # Every scene starts on a sampled frame (multiples of 50 are picks), so
    # the shots are the scenes exactly.
    assert change_points[:, 0].tolist() == starts
    assert change_points[-1, 1] == 249 and lengths.sum() == 250
    assert (change_points[1:, 0] == change_points[:-1, 1] + 1).all()


def test_one_scene_is_one_shot():
    frames, _ = scene_frames(seconds=20.0, fps=10.0, scenes=1, size=(72, 128))
    picks = np.arange(0, 200, 5)
    change_points, _ = shots.color_shots(frames[picks], picks, n_frames=200)
    assert change_points.tolist() == [[0, 199]]


def test_kts_matches_an_exhaustive_search_of_its_objective():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(3, 6))
    x = np.concatenate([rng.normal(means[i], 0.3, size=(n, 6)) for i, n in enumerate((5, 4, 6))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)

    def scatter(bounds):
        return sum(((x[a:b] - x[a:b].mean(0)) ** 2).sum() for a, b in zip(bounds[:-1], bounds[1:]))

    def objective(cuts):
        k = len(cuts)
        penalty = k / (2 * n) * (np.log(n / k) + 1) if k else 0.0
        return scatter([0, *cuts, n]) / n + penalty

    import itertools

    best = min(
        (cuts for k in range(0, 4) for cuts in itertools.combinations(range(1, n), k)),
        key=objective,
    )
    assert shots.kts_change_points(x) == list(best) == [5, 9]


def test_shots_from_change_points_cover_the_video():
    change_points, lengths = shots.shots_from_change_points([], [0, 10, 20], n_frames=25)
    assert change_points.tolist() == [[0, 24]] and lengths.tolist() == [25]
    with pytest.raises(ValueError, match=r"features must be \[n, d\]"):
        shots.kts_change_points(np.zeros(4))
