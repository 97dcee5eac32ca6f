"""Long videos: prediction memory that does not grow with the length, the
window-by-window scorer, and shots from a segmentation of linear cost that
agrees with exact KTS.

The long videos are real files written with cv2.VideoWriter: minutes of
small frames at a few frames per second, scenes of plain colours with a
moving disk (`tests.prediction_fixtures.scene_frames`, drawn a scene at a
time so the test holds none of them whole).
"""

import dataclasses
import functools
import gc
import io
import os
import sys
import tracemalloc

import cv2
import numpy as np
import pytest

import models
from common.progress import VideoProgress
from data import shots
from tests.prediction_fixtures import SCENE_COLOURS
from train.serving.prediction import PredictOptions
from train.tasks import keyframes

FPS = 4.0
SIZE = (72, 96)


def write_long_video(path, minutes, scene_seconds=20.0, fps=FPS, size=SIZE):
    """`minutes` of scenes of `scene_seconds`, written frame by frame."""
    height, width = size
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    rng = np.random.default_rng(0)
    count = int(round(minutes * 60 * fps))
    per_scene = int(round(scene_seconds * fps))
    for index in range(count):
        scene, step = divmod(index, per_scene)
        frame = np.empty((height, width, 3), np.uint8)
        frame[...] = SCENE_COLOURS[scene % len(SCENE_COLOURS)][::-1]
        centre = (int(width * (0.1 + 0.8 * step / per_scene)), height // 2)
        cv2.circle(frame, centre, height // 8, (245, 245, 245), -1)
        noisy = frame + rng.normal(0, 3, frame.shape)
        writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
    writer.release()
    return os.fspath(path)


def frames_mode_record(config):
    return {"model": "keyframe_transformer", "preset": "tiny_frames", "seed": 0,
            "config": config.to_dict(), "data": {"data": "synthetic"}, "class_names": []}


@pytest.fixture(scope="module")
def frames_model():
    """A frames-mode keyframe model at 48x48: its inputs are 27 KB per
    sample as float, so holding every sample shows."""
    config = models.get_config("keyframe_transformer", "tiny_frames", input_shape=(None, 48, 48, 3))
    return models.build_from_config("keyframe_transformer", config), config


def peak_allocations(predictor, video, out):
    """Peak of Python/NumPy allocations while `predictor` runs, in bytes."""
    gc.collect()  # garbage of earlier work is not this run's
    tracemalloc.start()
    try:
        result = predictor(video, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result


@pytest.mark.slow
def test_prediction_memory_does_not_grow_with_the_video(frames_model, tmp_path, monkeypatch):
    model, config = frames_model
    options = PredictOptions(explain=True, progress=True)
    predictor = keyframes.KeyframePredictor(model, frames_mode_record(config), options)
    short = write_long_video(tmp_path / "one_minute.avi", 1)
    long = write_long_video(tmp_path / "four_minutes.avi", 4)
    # Traces the model's functions for both window lengths (a one-minute
    # video is one window of 120 samples, longer ones windows of 128).
    for minutes in (1, 70 / 60):
        warm = write_long_video(tmp_path / f"warm_{minutes:.2f}.avi", minutes)
        os.makedirs(tmp_path / f"warm_{minutes:.2f}")
        predictor(warm, str(tmp_path / f"warm_{minutes:.2f}"))
    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    # A line at every tenth of the video from the start, as a slow run writes them.
    monkeypatch.setattr(VideoProgress, "__init__", functools.partialmethod(VideoProgress.__init__,
                                                                           quiet=0))
    short_peak, short_result = peak_allocations(predictor, short, str(tmp_path / "a"))
    long_peak, long_result = peak_allocations(predictor, long, str(tmp_path / "b"))
    monkeypatch.undo()

    assert short_result["frames_scored"] == 120 and long_result["frames_scored"] == 480
    # Four times the video, less than 1.5 times the memory: what grows is
    # a few numbers per frame, not a 27 KB input per sample (480 of them
    # would be 13 MB, and as many frames of the explanation 10 MB more).
    # What stays is the scorer's buffer (224 inputs, 6 MB) and one
    # window's work.
    assert long_peak < 1.5 * short_peak, (short_peak, long_peak)
    assert long_peak < 20 * 2**20, (short_peak, long_peak)
    # Shots: the 12 scenes of 20 s, found by the blockwise segmentation
    # (480 samples is under EXACT_SAMPLES: exact KTS).
    assert long_result["shots_found"] == 12
    assert os.path.getsize(long_result["files"]["explanation_video"]) > 0
    # The progress line tells where in the video the work is and what is left.
    lines = stderr.getvalue().splitlines()
    assert any("2:00 / 4:00 of four_minutes.avi (50%)" in line and "left" in line for line in lines)


@pytest.mark.parametrize("seed", range(20))
def test_the_window_scorer_scores_as_inputs_arrive_and_keeps_few(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(33, 300))
    values = rng.normal(size=(n, 3)).astype(np.float32)
    weights = rng.normal(size=3)
    calls = []

    def per_step(inputs):
        part = inputs["features"][0]
        calls.append(len(part))
        # A value that depends on the whole window, as attention does.
        return (part @ weights + part.mean())[None]

    max_steps, stride = 32, 16
    scorer = keyframes.WindowScorer([per_step], "features", max_steps)
    position = 0
    while position < n:
        size = int(rng.integers(1, 40))
        scorer.add(values[position:position + size])
        position = min(n, position + size)
        # Every window whose inputs are all in has been scored, no other,
        # and only what a later window may need is held.
        assert len(calls) == (0 if position < max_steps else (position - max_steps) // stride + 1)
        assert scorer.held() < max_steps + stride + 40
    [streamed] = scorer.finish()

    starts = list(range(0, n - max_steps + 1, stride))
    if starts[-1] != n - max_steps:
        starts.append(n - max_steps)
    total, count = np.zeros(n), np.zeros(n)
    for start in starts:
        window = values[start:start + max_steps]
        total[start:start + max_steps] += window @ weights + window.mean()
        count[start:start + max_steps] += 1
    np.testing.assert_allclose(streamed, total / count, rtol=1e-6)
    assert len(calls) == len(starts)


def test_a_short_input_is_one_window_over_all_of_it():
    calls = []

    def per_step(inputs):
        calls.append(inputs["features"].shape[1])
        return np.cumsum(inputs["features"][..., 0], axis=1)

    scorer = keyframes.WindowScorer([per_step], "features", 8)
    scorer.add(np.ones((3, 1)))
    scorer.add(np.ones((2, 1)))
    assert scorer.finish()[0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and calls == [5]
    calls.clear()
    scorer = keyframes.WindowScorer([per_step], "features", 8)
    scorer.add(np.ones((8, 1)))  # exactly one window: scored once, none added at the end
    assert scorer.finish()[0].tolist() == list(range(1, 9)) and calls == [8]


def scene_features(n, seed, noise):
    """Histogram-like rows of shots of 4 to 120 samples, L2-normalised."""
    rng = np.random.default_rng(seed)
    parts, total = [], 0
    while total < n:
        length = int(rng.integers(4, 120))
        mean = rng.random(32) ** 4
        parts.append(np.abs(mean + rng.normal(0, noise, (length, 32)) * mean.mean()))
        total += length
    x = np.concatenate(parts)[:n]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("seed,noise", [(0, 0.3), (1, 1.0), (2, 2.0)])
def test_blockwise_segmentation_gives_the_exact_kts_answer(seed, noise):
    x = scene_features(900, seed, noise)
    exact = shots.kts_change_points(x)
    assert len(exact) > 5
    assert shots.segment_change_points(x, exact_samples=0) == exact


def test_segmentation_is_exact_on_short_videos_and_linear_beyond(kts_sizes):
    sizes = kts_sizes
    x = scene_features(shots.EXACT_SAMPLES, 3, 0.5)
    exact = shots.kts_change_points(x)
    sizes.clear()
    assert shots.segment_change_points(x) == exact
    assert sizes == [shots.EXACT_SAMPLES]  # one exact programme over all of it

    sizes.clear()
    x = scene_features(3000, 4, 0.5)
    shots.segment_change_points(x)
    biggest = shots.BLOCK_SAMPLES + 2 * shots.MARGIN_SAMPLES
    assert max(sizes) <= biggest and len(sizes) == -(-3000 // shots.BLOCK_SAMPLES)
    assert sum(sizes) <= 3000 * biggest / shots.BLOCK_SAMPLES


@pytest.mark.parametrize("extra_in_header", [0, 15])
def test_a_classifier_converts_only_the_frames_its_windows_read(extra_in_header, tmp_path,
                                                                monkeypatch):
    """The timeline of a long video is the same whether every frame is
    converted to the model's size or only those the windows sample, also
    when the header promises more frames than decode (within the 5% a
    stream accepts), which moves the last window."""
    from data.stream import FrameStream
    from train import tasks
    from train.tasks import timeline

    class HeaderPromisesMore(FrameStream):
        def __init__(self, path):
            super().__init__(path)
            promised = self.info.frame_count + extra_in_header
            self.info = dataclasses.replace(self.info, frame_count=promised)
            self._header_count = self.info.frame_count

    monkeypatch.setattr(timeline, "FrameStream", HeaderPromisesMore)
    converted = []
    original_rgb = timeline.rgb

    def counted_rgb(frame, size):
        converted.append(1)
        return original_rgb(frame, size)

    monkeypatch.setattr(timeline, "rgb", counted_rgb)
    # 552 frames: the last regular window ends at 540, a last one at 552;
    # 54 windows, the last batch of 6.
    video = write_long_video(tmp_path / "two_minutes.avi", 2.3)
    config = models.get_config("r2plus1d", "tiny")
    model = models.build_from_config("r2plus1d", config)
    record = {"model": "r2plus1d", "preset": "tiny", "seed": 0, "config": config.to_dict(),
              "data": {"data": "synthetic"}, "class_names": ["a", "b", "c"]}
    predictor = tasks.task_for("r2plus1d").predictor(model, record, PredictOptions(window=5.0,
                                                                                   stride=2.5))
    os.makedirs(tmp_path / "sparse")
    sparse = predictor(video, str(tmp_path / "sparse"))
    sparse_conversions = len(converted)
    converted.clear()
    predictor.encoder.reads = None
    os.makedirs(tmp_path / "all")
    every = predictor(video, str(tmp_path / "all"))

    assert len(converted) == 552
    # 4 of every 20 frames, twice over (windows overlap by half), and the
    # frames the last window may need.
    assert sparse_conversions < 552 / 2
    assert sparse["windows"] == every["windows"] == 54
    assert sparse["timeline"][-1]["frames"] == [532, 551]
    if not extra_in_header:
        # After the first batches a traced function (the last batch padded)
        # takes over from eager calls; the answers are the same.
        monkeypatch.setattr(timeline, "EAGER_BATCHES", 1000)
        os.makedirs(tmp_path / "eager")
        eager = predictor(video, str(tmp_path / "eager"))
        assert eager["timeline"] == every["timeline"] and eager["top"] == every["top"]
    assert sparse["timeline"] == every["timeline"] and sparse["top"] == every["top"]


def test_decoding_ahead_raises_the_streams_error_and_stops_with_its_consumer(tmp_path):
    import threading

    from data.stream import FrameStream, decode_ahead
    from data.video import VideoError
    from tests.video_files import write_truncated_video

    truncated = write_truncated_video(tmp_path / "cut.mkv", num_frames=40)
    with pytest.raises(VideoError, match="truncated"):
        for _ in decode_ahead(FrameStream(truncated)):
            pass
    video = write_long_video(tmp_path / "short.avi", 0.5)
    threads = threading.active_count()
    frames = decode_ahead(FrameStream(video), depth=2)
    assert [next(frames)[0] for _ in range(3)] == [0, 1, 2]
    assert threading.active_count() == threads + 1
    frames.close()  # the consumer stops: the decoding thread ends
    assert threading.active_count() == threads
    # Prepared in a second thread: both end with the consumer.
    frames = decode_ahead(FrameStream(video), depth=2, prepare=lambda index, frame: index * 10)
    assert [next(frames)[2] for _ in range(3)] == [0, 10, 20]
    assert threading.active_count() == threads + 2
    frames.close()
    assert threading.active_count() == threads

    def fails_at_five(index, frame):
        if index == 5:
            raise RuntimeError("frame 5")
        return index

    with pytest.raises(RuntimeError, match="frame 5"):
        list(decode_ahead(FrameStream(video), prepare=fails_at_five))
    assert threading.active_count() == threads
