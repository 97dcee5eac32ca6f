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


@pytest.mark.parametrize("decoder", ["opencv", "pyav"])
def test_decoding_converts_only_the_sampled_frames_and_matches_the_reader(tmp_path, decoder):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(20, 24, 32, 3), dtype=np.uint8)
    path = video_lib.write_video(str(tmp_path / "clip.avi"), frames, fps=10.0, fourcc="MJPG")
    indices = np.array([0, 5, 5, 19])
    counts = {}
    decoded = np.stack(list(latency.decode_sampled(path, indices, (12, 16), 1, decoder, counts)))
    assert decoded.shape == (4, 12, 16, 3) and decoded.dtype == np.float32
    expected, _, _ = video_lib.read_frames(path, indices.tolist(), (12, 16), decoder="opencv")
    np.testing.assert_allclose(decoded, expected.astype(np.float32), atol=1)
    np.testing.assert_array_equal(decoded[1], decoded[2])
    assert latency.video_info(path) == (20, 10.0)
    # OpenCV decodes every frame up to the last sampled one; PyAV only the
    # sampled ones of this keyframe-only file.
    assert counts == ({"sent": 20, "decoded": 20} if decoder == "opencv"
                      else {"sent": 3, "decoded": 3, "seeks": 0})


def test_the_benchmark_video_is_h264_with_a_keyframe_a_second_at_least(tmp_path):
    path = latency.benchmark_video_path(str(tmp_path))
    assert latency.h264_encoder() is not None and path.endswith("_h264.mp4")
    latency.write_benchmark_video(path, seconds=2, size=(48, 64))
    from data import av_decoder

    index = av_decoder.index_packets(path)
    assert index.codec == "h264"
    # x264 may add a keyframe at a scene cut, never leave a gap over 25.
    assert np.diff(np.flatnonzero(index.keyframe).tolist() + [50]).max() <= 25
    assert latency.video_info(path) == (50, 25.0)
    # Both decoders read it alike.
    opencv = np.stack(list(latency.decode_sampled(path, np.array([3, 30]), (24, 32), 1, "opencv")))
    pyav = np.stack(list(latency.decode_sampled(path, np.array([3, 30]), (24, 32), 1, "pyav")))
    assert np.abs(opencv - pyav).max() <= 2


@pytest.mark.parametrize("argv, message", [
    (["--models", "resnet"], "--models: unknown model 'resnet'"),
    (["--formats", "tflite"], "--formats: unknown format 'tflite'"),
    (["--decoders", "ffmpeg"], "--decoders: unknown decoder 'ffmpeg'"),
    (["--overlap-batch", "0"], "--overlap-batch must be >= 1, got 0"),
    (["--video", "missing.mp4"], "--video missing.mp4: no such file"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        run_main(latency.main, argv + ["--cache", str(tmp_path)])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
