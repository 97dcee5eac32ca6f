"""benchmarks.latency: what it samples and decodes, and its bad input (the
timings themselves live in the benchmark, not in tests)."""

import numpy as np
import pytest

from benchmarks import latency
from common.cli import run_main
from data import video as video_lib


def test_keyframe_sampling_is_two_frames_a_second_over_the_whole_video():
    indices = latency.sampled_indices(750, 25.0, None)  # 30 s at 25 fps
    assert len(indices) == 60 and indices[0] == 0 and indices[-1] == 749
    assert np.all(np.diff(indices) >= 12) and np.all(np.diff(indices) <= 13)
    # Eight frames of a clip classifier: floor(749 k / 7).
    assert latency.sampled_indices(750, 25.0, 8).tolist() == [0, 107, 214, 321, 428, 535, 642, 749]


def test_decoding_converts_only_the_sampled_frames_and_matches_the_reader(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(20, 24, 32, 3), dtype=np.uint8)
    path = video_lib.write_video(str(tmp_path / "clip.avi"), frames, fps=10.0, fourcc="MJPG")
    indices = np.array([0, 5, 5, 19])
    decoded = np.stack(list(latency.decode_sampled(path, indices, (12, 16), threads=1)))
    assert decoded.shape == (4, 12, 16, 3) and decoded.dtype == np.float32
    expected, _, _ = video_lib.read_frames(path, indices.tolist(), (12, 16))
    np.testing.assert_allclose(decoded, expected.astype(np.float32), atol=1)
    np.testing.assert_array_equal(decoded[1], decoded[2])
    assert latency.video_info(path) == (20, 10.0)


@pytest.mark.parametrize("argv, message", [
    (["--models", "resnet"], "--models: unknown model 'resnet'"),
    (["--formats", "tflite"], "--formats: unknown format 'tflite'"),
    (["--video", "missing.mp4"], "--video missing.mp4: no such file"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        run_main(latency.main, argv + ["--cache", str(tmp_path)])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
