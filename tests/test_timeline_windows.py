"""Which windows of a video a classifier reads, and the prediction defaults.

`ClassifierPredictor` runs on a stand-in stream (frame i holds its index)
and a stand-in model, so what is checked is the windowing itself: which
frames each window gets, that the last one ends at the video's end, and
that together they cover the video.
"""

import contextlib
import json
import types
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import data.stream
from train import predict
from train.tasks import timeline
from train.serving import prediction
from train.serving.prediction import PredictOptions


class IndexedStream:
    """`n_frames` frames at `fps`; frame i is [1, 1, 2] holding i in base 256.
    `held` counts the frames still referenced (`most_held`: the peak)."""

    def __init__(self, path, n_frames, fps):
        self.path = path
        self.fps = fps
        self.info = types.SimpleNamespace(frame_count=n_frames)
        self.n_frames = n_frames
        self.held = self.most_held = 0

    def __iter__(self):
        for index in range(self.n_frames):
            frame = np.array([[[index // 256, index % 256]]], np.uint8)
            self.held += 1
            self.most_held = max(self.most_held, self.held)
            weakref.finalize(frame, self.release)
            yield index, frame

    def release(self):
        self.held -= 1


class Recorder:
    """A window encoder and a two-class model that record what they see."""

    def __init__(self):
        self.windows = []  # (frame indices given, frame indices of the frames given)
        self.batches = []  # examples per model call
        self.encoder = timeline.WindowEncoder((1, 1), self.encode, lambda count: np.arange(count))

    def encode(self, frames, indices):
        decoded = frames[:, 0, 0, 0].astype(int) * 256 + frames[:, 0, 0, 1]
        self.windows.append((np.asarray(indices), decoded))
        return {"frames": np.zeros(1, np.float32)}

    def __call__(self, inputs, training="not given"):
        assert training is False
        count = len(inputs["frames"])
        self.batches.append(count)
        return {"probabilities": np.tile([0.25, 0.75], (count, 1))}


@contextlib.contextmanager
def stream_of(n_frames, fps):
    """data.stream's FrameStream and rgb replaced by the stand-in stream;
    yields the streams made."""
    saved = data.stream.FrameStream, data.stream.rgb
    made = []

    def open_stream(path):
        made.append(IndexedStream(path, n_frames, fps))
        return made[-1]

    def rgb(frame, size):
        assert size == (1, 1)  # the encoder's frame size
        return frame

    data.stream.FrameStream, data.stream.rgb = open_stream, rgb
    try:
        yield made
    finally:
        data.stream.FrameStream, data.stream.rgb = saved


def predicted_windows(n_frames, fps, out=None, write=False, recorder=None, **options):
    """[(start, stop)] of the windows read, after checking that each window
    got exactly its own frames; with `write`, also the result."""
    recorder = recorder or Recorder()
    predictor = timeline.ClassifierPredictor(
        recorder, {"model": "convlstm", "class_names": ["a", "b"]},
        PredictOptions(**options), recorder.encoder)
    if not write:
        predictor._write = lambda *args: None
    with stream_of(n_frames, fps) as streams:
        result = predictor("video.mp4", out)
    assert [stream.path for stream in streams] == ["video.mp4"]
    recorder.stream = streams[0]
    spans = []
    for indices, decoded in recorder.windows:
        np.testing.assert_array_equal(decoded, indices)  # the frames of its own span
        assert (np.diff(indices) == 1).all()
        spans.append((int(indices[0]), int(indices[-1]) + 1))
    return spans, result


# 10 fps, 1-second windows every half second: 10 frames, stride 5.
WINDOWS = dict(window=1.0, stride=0.5)


@pytest.mark.parametrize("n_frames, expected", [
    (30, [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30)]),  # the last stride ends at the end
    (33, [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30), (23, 33)]),  # one more, ending there
    (11, [(0, 10), (1, 11)]),
    (10, [(0, 10)]),   # exactly one window
    (7, [(0, 7)]),     # shorter than a window: the whole video
])
def test_windows_start_every_stride_and_the_last_ends_at_the_video_end(n_frames, expected):
    spans, _ = predicted_windows(n_frames, 10.0, **WINDOWS)
    assert spans == expected


def test_window_and_stride_are_rounded_to_whole_frames():
    # 7.5 fps: a 1-second window is 7.5 frames, rounded to 8; the stride 3.75, to 4.
    spans, _ = predicted_windows(20, 7.5, **WINDOWS)
    assert spans == [(0, 8), (4, 12), (8, 16), (12, 20)]


def test_the_timeline_lists_the_windows_read(tmp_path):
    spans, result = predicted_windows(33, 10.0, out=str(tmp_path), write=True, **WINDOWS)
    assert result["windows"] == 6 and result["frame_count"] == 33
    assert [entry["frames"] for entry in result["timeline"]] == [
        [start, stop - 1] for start, stop in spans]
    assert result["timeline"][-1]["end"] == 3.3 and result["timeline"][-1]["start"] == 2.3
    with open(tmp_path / "timeline.json") as file:
        assert len(json.load(file)["windows"]) == 6
    assert result["top"] == [{"label": "b", "probability": 0.75}, {"label": "a", "probability": 0.25}]


def test_default_options():
    options = PredictOptions()
    assert (options.window, options.stride, options.top_k) == (5.0, 2.5, 5)
    assert (options.ratio, options.sample_rate) == (0.15, 2.0)
    assert options.backbone is None and options.explain is False
    parsed = predict.build_parser().parse_args(["--run", "r", "--video", "v"])
    assert (parsed.window, parsed.stride, parsed.top_k, parsed.ratio, parsed.sample_rate) == (
        5.0, 2.5, 5, 0.15, 2.0)


def test_default_windows_are_five_seconds_every_two_and_a_half():
    # 12 s at 10 fps: 50-frame windows every 25 frames, and one ending at 120.
    spans, _ = predicted_windows(120, 10.0)
    assert spans == [(0, 50), (25, 75), (50, 100), (70, 120)]
    spans, _ = predicted_windows(50, 10.0)  # 5 s: one window
    assert spans == [(0, 50)]


class OneOutput(Recorder):
    """A one-output model: float32 probabilities as one array, named by
    `output_names` as Keras names a model's single output."""

    output_names = ["probabilities"]

    def __call__(self, inputs, training="not given"):
        assert training is False
        return np.tile(np.array([0.1, 0.9], np.float32), (len(inputs["frames"]), 1))


def test_a_one_output_model_and_its_float32_probabilities(tmp_path):
    spans, result = predicted_windows(15, 10.0, out=str(tmp_path), write=True,
                                      recorder=OneOutput(), **WINDOWS)
    assert spans == [(0, 10), (5, 15)]
    with open(tmp_path / "timeline.json") as file:
        windows = json.load(file)["windows"]
    # Rounded in float64: 0.1, not float32's 0.10000000149.
    assert [window["probabilities"] for window in windows] == [[0.1, 0.9], [0.1, 0.9]]
    assert result["top"][0] == {"label": "b", "probability": 0.9}


def test_explanations_are_gathered_window_by_window():
    recorder = Recorder()
    predictor = timeline.ClassifierPredictor(
        recorder, {"model": "convlstm", "class_names": ["a", "b"]},
        PredictOptions(**WINDOWS), recorder.encoder)
    written = {}
    predictor.explainer = lambda inputs: ["one window"] * len(inputs["frames"])
    result = {"files": {}, "notes": []}
    predictor._write = lambda *args: result
    predictor._explain = lambda *args: written.update(
        args=args, explained=list(predictor._explained))
    with stream_of(105, 10.0):
        assert predictor("video.mp4", "out") is result
    # One explanation per window, from the batches the windows went in,
    # explained with everything the prediction knows.
    video, out, fps, windows, probabilities, given = written["args"]
    assert (video, out, fps, given) == ("video.mp4", "out", 10.0, result)
    assert len(windows) == 20 and probabilities.shape == (20, 2)
    assert written["explained"] == ["one window"] * 20


def test_windows_go_to_the_model_eight_at_a_time():
    recorder = Recorder()
    spans, _ = predicted_windows(105, 10.0, recorder=recorder, **WINDOWS)
    assert len(spans) == 20 and recorder.batches == [8, 8, 4]


def test_only_the_frames_of_open_windows_are_held():
    # 10-frame windows every 5 frames: at most one window's frames (and the
    # frame being read) are held while the video decodes.
    recorder = Recorder()
    predicted_windows(200, 10.0, recorder=recorder, **WINDOWS)
    assert recorder.stream.most_held <= 11
    recorder = Recorder()
    predicted_windows(200, 10.0, recorder=recorder, window=1.0, stride=2.0)  # gaps between
    assert recorder.stream.most_held <= 11


def test_a_file_without_a_frame_rate_is_read_at_25_fps(tmp_path):
    spans, result = predicted_windows(60, 0.0, out=str(tmp_path), write=True, **WINDOWS)
    # 1-second windows of 25 frames every 12.5 -> 12 frames (rounded half to even).
    assert spans == [(0, 25), (12, 37), (24, 49), (35, 60)]
    assert result["fps"] == 25.0
    assert result["notes"] == ["the file gives no frame rate; 25 fps assumed"]


def test_times_are_rounded_to_milliseconds():
    assert prediction.seconds(1, 3.0) == 0.333 and prediction.seconds(2, 3.0) == 0.667


@pytest.mark.parametrize("field, value", [
    ("ratio", 0.0), ("ratio", 1.0), ("window", 0.0), ("stride", -1.0),
    ("sample_rate", float("inf")), ("window", float("nan")), ("top_k", 0),
])
def test_options_out_of_range_are_refused(field, value):
    with pytest.raises(ValueError, match=f"--{field.replace('_', '-')} must be"):
        PredictOptions(**{field: value})


def test_options_at_the_edge_of_their_range_are_kept():
    options = PredictOptions(ratio=0.999, window=1e-3, stride=1e-3, sample_rate=1e-3, top_k=1)
    assert options.top_k == 1 and options.ratio == 0.999


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(n_frames=st.integers(1, 120), window=st.integers(1, 40), stride=st.integers(1, 40))
def test_windows_cover_the_video(n_frames, window, stride):
    spans, _ = predicted_windows(n_frames, 1.0, window=float(window), stride=float(stride))
    if n_frames <= window:
        assert spans == [(0, n_frames)]
        return
    starts = [start for start, _ in spans]
    assert all(stop - start == window for start, stop in spans)
    assert spans[-1][1] == n_frames  # the last window ends at the video's end
    assert starts == sorted(set(starts))  # in order, none twice
    # All but a last window start every stride from 0; the last one
    # is there only when they leave a tail.
    regular = list(range(0, n_frames - window + 1, stride))
    assert starts[:len(regular)] == regular
    assert len(starts) == len(regular) + (regular[-1] + window < n_frames)
    covered = np.zeros(n_frames, bool)
    for start, stop in spans:
        covered[start:stop] = True
    # Every frame is read when windows overlap or touch; otherwise the
    # gaps between strides are what is skipped.
    if stride <= window:
        assert covered.all()


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(frames=st.integers(1, 400), steps=st.integers(2, 64))
def test_a_clip_runs_model_steps_span_the_window(frames, steps):
    # The clip models' WindowEncoder.positions (train/tasks/clips.py).
    from train.tasks.clips import sample_frame_indices

    positions = np.asarray(sample_frame_indices(frames, steps))
    assert len(positions) == steps
    assert positions[0] == 0 and positions[-1] == frames - 1
    assert (np.diff(positions) >= 0).all()
    if frames >= steps:  # enough frames: no frame is read twice
        assert len(set(positions.tolist())) == steps
