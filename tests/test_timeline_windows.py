"""Which windows of a video a classifier reads, how the video's answer
weighs them, and the prediction defaults.

`ClassifierPredictor` runs on a stand-in stream (frame i holds its index,
read in the caller's thread) and a stand-in model whose answer for a window
names the window's first frame, so what is checked is the windowing
itself: which frames each window gets, which windows are kept and in what
order, that the last one ends at the video's end and that together they
cover the video.

The rules: a video shorter than two windows is one window over all of it;
a longer one gets windows every stride from 0 and, when those leave a
tail, one ending at the video's end, which replaces the window before it
when it starts less than half a stride after it.
"""

import contextlib
import json
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from train import predict
from train.serving import prediction
from train.serving.prediction import PredictOptions
from train.tasks import timeline

# 10 fps, 1-second windows every half second: 10 frames, stride 5. A video
# under 20 frames is one window; a last window starting 2 frames after the
# one before replaces it, 3 frames after it is added.
FPS = 10.0
WINDOWS = dict(window=1.0, stride=0.5)
# An even stride, so that a start exactly half a stride after the one
# before exists: 8-frame windows every 4 frames.
EVEN_STRIDE = dict(window=0.8, stride=0.4)
# The stand-in model's probability of class "b" is the window's first
# frame / SCALE.
SCALE = 1000.0


class IndexedStream:
    """`decoded` frames at `fps`, `header` of them in the header until the
    end (as `data.stream.FrameStream` corrects its count once decoded);
    frame i is [1, 1, 3] holding i in base 256. `held` lists, as each frame
    is read, how many frames are still referenced; `converted`, the frames
    resized for the model."""

    def __init__(self, path, decoded, fps, header=None):
        self.path = path
        self.fps = fps
        self.decoded = decoded
        self.info = types.SimpleNamespace(frame_count=decoded if header is None else header)
        self.live = 0
        self.held = []
        self.converted = []

    def __iter__(self):
        for index in range(self.decoded):
            frame = Frame([[[index // 256, index % 256, 0]]], self)
            self.held.append(self.live)
            yield index, frame
        self.info.frame_count = self.decoded

    def release(self):
        self.live -= 1


class Frame(np.ndarray):
    """A frame that counts itself in its stream's `live` while referenced."""

    def __new__(cls, values, stream):
        frame = np.asarray(values, np.uint8).view(cls)
        frame.stream = stream
        stream.live += 1
        return frame

    def __array_finalize__(self, source):
        self.stream = None

    def __del__(self):
        if self.stream is not None:
            self.stream.release()


def decoded_index(frames):
    return frames[:, 0, 0, 0].astype(int) * 256 + frames[:, 0, 0, 1]


class Recorder:
    """A window encoder and a two-class model that record what they see.

    The model's answer for a window is [1 - s / SCALE, s / SCALE], s the
    window's first frame, so every row of probabilities names its window.
    """

    def __init__(self, reads=None):
        self.windows = []  # (frame indices given, decoded index of each frame given)
        self.calls = []  # ("eager" or "traced", examples in the batch)
        self.encoder = timeline.WindowEncoder((1, 1), self.encode, positions=np.arange,
                                              reads=reads)

    def encode(self, frames, indices):
        assert frames.dtype == np.uint8 and len(frames) == len(indices)
        self.windows.append((np.asarray(indices), decoded_index(frames)))
        return {"frames": np.array([indices[0]], np.float32)}

    def answer(self, inputs):
        starts = np.asarray(inputs["frames"], np.float64)[:, 0] / SCALE
        return {"probabilities": np.stack([1.0 - starts, starts], axis=1)}

    def __call__(self, inputs, training="not given"):
        assert training is False
        self.calls.append(("eager", len(inputs["frames"])))
        return self.answer(inputs)

    def predict_on_batch(self, inputs):
        self.calls.append(("traced", len(inputs["frames"])))
        return self.answer(inputs)


@contextlib.contextmanager
def stream_of(decoded, fps, header=None):
    """timeline's FrameStream, rgb and watch replaced by the stand-in
    stream, read in this thread; yields the streams made. Each stream's
    `watched` holds what `watch` was given (it shows the progress)."""
    saved = timeline.FrameStream, timeline.rgb, timeline.watch
    made = []

    def open_stream(path):
        made.append(IndexedStream(path, decoded, fps, header))
        return made[-1]

    def rgb(frame, size):
        assert size == (1, 1)  # the encoder's frame size
        frame.stream.converted.append(int(decoded_index(frame[None])[0]))
        return frame

    def watch(stream, fps, options, video):
        stream.watched = (fps, options, video)
        return iter(stream)

    timeline.FrameStream, timeline.rgb, timeline.watch = open_stream, rgb, watch
    try:
        yield made
    finally:
        timeline.FrameStream, timeline.rgb, timeline.watch = saved


def predict_windows(n_frames, fps=FPS, out=None, write=False, recorder=None, header=None,
                    **options):
    """Runs the predictor; returns what it gave `_write` (`windows`,
    `probabilities`, `n_frames`, `fps`), the `result` with `write`, the
    `encoded` spans and the `stream`, after checking that every window got
    its own frames where it reads and that each row of probabilities
    belongs to its window."""
    recorder = recorder or Recorder()
    predictor = timeline.ClassifierPredictor(
        recorder, {"model": "convlstm", "class_names": ["a", "b"]},
        PredictOptions(**options), recorder.encoder)
    given_to_write = {}
    original_write = predictor._write

    def record_write(video, out, fps, fps_note, n_frames, windows, probabilities):
        given_to_write.update(windows=list(windows), probabilities=probabilities,
                              n_frames=n_frames, fps=fps)
        if write:
            return original_write(video, out, fps, fps_note, n_frames, windows, probabilities)
        return None

    predictor._write = record_write
    with stream_of(n_frames, fps, header) as streams:
        result = predictor("video.mp4", out)
    assert [stream.path for stream in streams] == ["video.mp4"]
    assert streams[0].watched == (given_to_write["fps"], predictor.options, "video.mp4")
    encoded = []
    for indices, decoded in recorder.windows:
        assert (np.diff(indices) == 1).all()
        reads = (np.arange(len(indices)) if recorder.encoder.reads is None
                 else recorder.encoder.reads(len(indices)))
        np.testing.assert_array_equal(decoded[reads], indices[reads])
        encoded.append((int(indices[0]), int(indices[-1]) + 1))
    windows = given_to_write["windows"]
    np.testing.assert_allclose(given_to_write["probabilities"][:, 1] * SCALE,
                               [start for start, _ in windows], atol=1e-6)
    return types.SimpleNamespace(result=result, encoded=encoded, stream=streams[0],
                                 **given_to_write)


def regular(n_frames, window, stride):
    """The windows every `stride` from 0 that end inside `n_frames`."""
    return [(start, start + window) for start in range(0, n_frames - window + 1, stride)]


@pytest.mark.parametrize("n_frames, expected", [
    (7, [(0, 7)]),  # shorter than a window: all of it
    (10, [(0, 10)]),  # exactly one window
    (11, [(0, 11)]),  # just over one window
    (19, [(0, 19)]),  # just under two windows: still one
    (20, [(0, 10), (5, 15), (10, 20)]),  # exactly two: the strides end at the end
    (21, [(0, 10), (5, 15), (11, 21)]),  # just over two: the last one replaces (10, 20)
    (30, [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30)]),
    (32, [(0, 10), (5, 15), (10, 20), (15, 25), (22, 32)]),  # 2 < 2.5 after (20, 30): replaces
    (33, [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30), (23, 33)]),  # 3 after: added
])
def test_windows_at_one_and_two_window_lengths_and_at_half_a_stride(n_frames, expected):
    """Guards the one-window rule (under two windows, not one), the windows
    every stride, and the half-stride replacement on an odd stride."""
    predicted = predict_windows(n_frames, **WINDOWS)
    assert predicted.windows == expected
    assert predicted.n_frames == n_frames


@pytest.mark.parametrize("n_frames, expected", [
    (15, [(0, 15)]),
    (16, regular(16, 8, 4)),
    (24, regular(24, 8, 4)),  # the strides end at the video's end
    (25, regular(16, 8, 4) + [(12, 20), (17, 25)]),  # 1 after (16, 24): replaces it
    (26, regular(24, 8, 4) + [(18, 26)]),  # exactly half a stride after: a window of its own
    (27, regular(24, 8, 4) + [(19, 27)]),
])
def test_a_last_window_half_a_stride_after_the_one_before_is_kept(n_frames, expected):
    """Guards `<` (not `<=`) in the replacement rule: a start exactly half a
    stride after the previous one is not a near repeat."""
    assert predict_windows(n_frames, **EVEN_STRIDE).windows == expected


@pytest.mark.parametrize("n_frames", [20, 30, 24])
def test_a_video_that_ends_where_a_stride_ends_gets_no_extra_window(n_frames):
    """Guards the test for a tail: when the last regular window ends at the
    video's end, no window ending there is read a second time."""
    options = WINDOWS if n_frames != 24 else EVEN_STRIDE
    predicted = predict_windows(n_frames, **options)
    assert predicted.windows[-1][1] == n_frames
    assert predicted.encoded == predicted.windows  # nothing read and then dropped


def test_a_replaced_window_is_read_once_and_dropped_with_its_answer():
    """Guards which row goes with a replaced window: the one before the
    last, not the last."""
    predicted = predict_windows(32, **WINDOWS)
    assert predicted.encoded == [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30), (22, 32)]
    # predict_windows checks that each remaining row is its window's answer.
    assert predicted.windows == [(0, 10), (5, 15), (10, 20), (15, 25), (22, 32)]


def test_a_near_last_window_stays_where_replacing_would_leave_frames_unread():
    """Guards coverage against the no-near-repeat rule: with window = stride,
    dropping (20, 30) for (22, 32) would leave frames 20 and 21 unread."""
    predicted = predict_windows(32, window=1.0, stride=1.0)
    assert predicted.windows == [(0, 10), (10, 20), (20, 30), (22, 32)]
    # Where the window before still reaches the last one, (21, 31) goes ...
    assert predict_windows(32, window=1.0, stride=0.7).windows == [
        (0, 10), (7, 17), (14, 24), (22, 32)]
    # ... also when that window is the first: two windows long, (7, 17) goes.
    assert predict_windows(20, window=1.0, stride=0.7).windows == [(0, 10), (10, 20)]


def test_window_and_stride_are_rounded_to_whole_frames():
    """Guards the frame counts of a window and a stride at a fractional
    frame rate."""
    # 7.5 fps: a 1-second window is 7.5 frames, rounded to 8; the stride 3.75, to 4.
    assert predict_windows(20, 7.5, **WINDOWS).windows == [(0, 8), (4, 12), (8, 16), (12, 20)]
    # Shorter than a frame: one frame.
    assert predict_windows(3, 10.0, window=0.01, stride=0.01).windows == [(0, 1), (1, 2), (2, 3)]


def test_default_options():
    """Pins the prediction defaults (dataclass defaults are not mutated) and
    that the command line offers the same."""
    options = PredictOptions()
    assert (options.window, options.stride, options.top_k) == (5.0, 2.5, 5)
    assert (options.ratio, options.sample_rate) == (0.15, 2.0)
    assert options.backbone is None and options.explain is False and options.progress is False
    parsed = predict.build_parser().parse_args(["--run", "r", "--video", "v"])
    assert (parsed.window, parsed.stride, parsed.top_k, parsed.ratio, parsed.sample_rate) == (
        5.0, 2.5, 5, 0.15, 2.0)


@pytest.mark.parametrize("n_frames, expected", [
    (50, [(0, 50)]),  # 5 s: one window
    (99, [(0, 99)]),  # just under two windows: one
    (100, [(0, 50), (25, 75), (50, 100)]),
    (110, [(0, 50), (25, 75), (60, 110)]),  # 10 frames after (50, 100), under 12.5: replaces it
    (113, [(0, 50), (25, 75), (50, 100), (63, 113)]),  # 13 after: added
    (120, [(0, 50), (25, 75), (50, 100), (70, 120)]),
])
def test_default_windows_are_five_seconds_every_two_and_a_half(n_frames, expected):
    """Guards the default windowing end to end: 50-frame windows every 25
    at 10 fps."""
    assert predict_windows(n_frames).windows == expected


def test_the_timeline_lists_the_windows_and_the_answer_counts_each_moment_once(tmp_path):
    """Guards what a timeline reports: the windows kept, their times, and
    the video's answer as the windows' answers weighted by moment_weights
    (not their plain mean)."""
    predicted = predict_windows(33, out=str(tmp_path), write=True, **WINDOWS)
    result = predicted.result
    assert result["windows"] == 6 and result["frame_count"] == 33
    assert [entry["frames"] for entry in result["timeline"]] == [
        [start, stop - 1] for start, stop in predicted.windows]
    assert result["timeline"][-1]["start"] == 2.3 and result["timeline"][-1]["end"] == 3.3
    with open(tmp_path / "timeline.json") as file:
        assert len(json.load(file)["windows"]) == 6
    # Frames 23-24 lie in three windows, 5-22 and 25-29 in two, the rest in one.
    weights = np.array([15 / 2, 5, 5, 14 / 3, 14 / 3, 37 / 6]) / 33
    starts = np.array([0, 5, 10, 15, 20, 23])
    b = weights @ starts / SCALE
    assert round(b, 4) != round(starts.mean() / SCALE, 4)
    assert result["top"] == [{"label": "a", "probability": round(1 - b, 4)},
                             {"label": "b", "probability": round(b, 4)}]


@pytest.mark.parametrize("windows, n_frames, expected", [
    ([(0, 7)], 7, [1.0]),  # one window over a short video
    ([(0, 10), (5, 15), (10, 20)], 20, [3 / 8, 2 / 8, 3 / 8]),  # half-overlapping strides
    # A replaced last window: frame 10 lies in one window, 11-14 in two.
    ([(0, 10), (5, 15), (11, 21)], 21, [7.5 / 21, 5.5 / 21, 8 / 21]),
    ([(0, 4), (10, 16)], 16, [0.4, 0.6]),  # strides longer than windows: gaps weigh nothing
    ([(0, 10), (0, 10)], 10, [0.5, 0.5]),  # the same frames twice count once
    ([(0, 10), (0, 10), (10, 20)], 20, [0.25, 0.25, 0.5]),
    ([(0, 4), (2, 6)], 8, [0.5, 0.5]),  # frames no window reads weigh nothing
    ([(0, 4), (2, 6)], 4, [0.5, 0.5]),  # frames past n_frames still count
])
def test_moment_weights_give_every_frame_a_total_weight_of_one(windows, n_frames, expected):
    """Guards moment_weights on hand-computed cases: a frame in k windows
    gives 1/k to each, and the weights sum to one."""
    weights = timeline.moment_weights(windows, n_frames)
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    assert weights.sum() == pytest.approx(1.0)


def test_windows_go_to_the_model_eight_at_a_time():
    """Guards the batch size and the last, shorter batch."""
    recorder = Recorder()
    predicted = predict_windows(105, recorder=recorder, **WINDOWS)
    assert len(predicted.windows) == 20
    assert recorder.calls == [("eager", 8), ("eager", 8), ("eager", 4)]


def test_after_the_eager_batches_a_padded_batch_gives_the_same_answers(monkeypatch):
    """Guards the switch from eager calls to the traced function: which
    batch switches, the padding to a full batch, and that only the real
    windows' answers are kept."""
    monkeypatch.setattr(timeline, "EAGER_BATCHES", 2)
    recorder = Recorder()
    predicted = predict_windows(105, recorder=recorder, **WINDOWS)
    assert recorder.calls == [("eager", 8), ("eager", 8), ("traced", 8)]
    assert predicted.probabilities.shape == (20, 2)  # the 4 padding rows are not answers
    padded = timeline._pad(np.arange(3)[:, None], 5)
    assert padded[:, 0].tolist() == [0, 1, 2, 2, 2]
    full = np.arange(4)[:, None]
    assert timeline._pad(full, 4) is full


def test_a_one_output_model_and_its_float32_probabilities(tmp_path):
    """Guards an unnamed single output (named by `output_names`) and that
    probabilities are rounded in float64."""

    class OneOutput(Recorder):
        output_names = ["probabilities"]

        def __call__(self, inputs, training="not given"):
            assert training is False
            return np.tile(np.array([0.1, 0.9], np.float32), (len(inputs["frames"]), 1))

    recorder = OneOutput()
    predictor = timeline.ClassifierPredictor(
        recorder, {"model": "convlstm", "class_names": ["a", "b"]},
        PredictOptions(**WINDOWS), recorder.encoder)
    with stream_of(25, FPS):
        result = predictor("video.mp4", str(tmp_path))
    with open(tmp_path / "timeline.json") as file:
        windows = json.load(file)["windows"]
    # Rounded in float64: 0.1, not float32's 0.10000000149.
    assert [window["probabilities"] for window in windows] == [[0.1, 0.9]] * 4
    assert result["top"][0] == {"label": "b", "probability": 0.9}


def test_a_sigmoid_output_is_two_columns():
    """Guards that a one-column (sigmoid) answer becomes two classes."""

    class Sigmoid(Recorder):
        def answer(self, inputs):
            return {"probabilities": super().answer(inputs)["probabilities"][:, 1:]}

    predicted = predict_windows(25, recorder=Sigmoid(), **WINDOWS)
    assert predicted.probabilities.shape == (4, 2)


def test_explanations_are_gathered_window_by_window():
    """Guards that every kept window has its explanation, in order, and a
    replaced window's explanation leaves with it."""
    recorder = Recorder()
    predictor = timeline.ClassifierPredictor(
        recorder, {"model": "convlstm", "class_names": ["a", "b"]},
        PredictOptions(**WINDOWS), recorder.encoder)
    written = {}
    predictor.explainer = lambda inputs: [f"from {int(s)}" for s in inputs["frames"][:, 0]]
    result = {"files": {}, "notes": []}
    predictor._write = lambda *args: result
    predictor._explain = lambda *args: written.update(
        args=args, explained=list(predictor._explained))
    with stream_of(107, FPS):
        assert predictor("video.mp4", "out") is result
    # 105 would end on a stride; 107 ends 2 frames after the last: replaced.
    video, out, fps, windows, probabilities, given = written["args"]
    assert (video, out, fps, given) == ("video.mp4", "out", FPS, result)
    assert len(windows) == 20 and probabilities.shape == (20, 2)
    assert windows[-2:] == [(90, 100), (97, 107)]
    assert written["explained"] == [f"from {start}" for start, _ in windows]


def test_the_stages_after_decoding_are_reported():
    """Guards the stages a listener (the page's progress) hears once the
    frames are scored: the timeline, then the explanation when there is one."""
    for explained in (False, True):
        recorder = Recorder()
        predictor = timeline.ClassifierPredictor(
            recorder, {"model": "convlstm", "class_names": ["a", "b"]},
            PredictOptions(**WINDOWS), recorder.encoder)
        predictor._write = lambda *args: {}
        if explained:
            predictor.explainer = lambda inputs: [None] * len(inputs["frames"])
            predictor._explain = lambda *args: None
        heard = []
        with stream_of(25, FPS), prediction.progress_to(lambda *stage: heard.append(stage)):
            predictor("video.mp4", "out")
        assert heard == [("writing the timeline", None, None)] + (
            [("writing the explanation", None, None)] if explained else [])


def test_only_the_frames_a_later_window_may_need_are_held():
    """Guards the dropping of frames: all are held until the video is known
    to span two windows, then at most a window's frames (and the one being
    read), with windows overlapping or with gaps between them."""
    for options in (WINDOWS, dict(window=1.0, stride=2.0)):
        predicted = predict_windows(200, **options)
        held = predicted.stream.held
        assert max(held[:21]) == 20 and max(held[21:]) <= 11


def test_only_the_frames_windows_read_are_converted():
    """Guards frames_needed: a frame is resized only when a window reads it
    or when it lies where the last window may start, given that a stream
    may end up to 5% short of its header; the windows are the same as when
    every frame is converted."""
    recorder = Recorder(reads=lambda count: [0, count // 2, count - 1])
    predicted = predict_windows(200, recorder=recorder, **WINDOWS)
    # Windows every 5 frames read their frames 0, 5 and 9: frames 5k and
    # 5k + 9. The header promises 200, so at least 190 decode: every frame
    # from 180 on may be in the last window.
    expected = [i for i in range(180) if i % 5 == 0 or i % 5 == 4 and i > 4]
    assert predicted.stream.converted == expected + list(range(180, 200))
    assert predicted.windows == predict_windows(200, **WINDOWS).windows


@pytest.mark.parametrize("decoded, header, last", [
    (203, 213, (193, 203)),  # 10 fewer than the header (5%): the last window is added
    (192, 202, (182, 192)),  # ... and replaces the one before
    (21, 21, (11, 21)),  # a last window over frames the windows before skip
])
def test_a_stream_shorter_than_its_header_still_gets_its_last_window(decoded, header, last):
    """Guards the frames kept for a last window whose position is known only
    at the end: the predictor raises when a window reads a frame that was
    not kept."""
    recorder = Recorder(reads=lambda count: [0, count - 1])
    predicted = predict_windows(decoded, recorder=recorder, header=header, **WINDOWS)
    assert predicted.windows[-1] == last


@pytest.mark.parametrize("header", [0, 20, 21])
def test_a_video_that_may_be_under_two_windows_converts_every_frame(header):
    """Guards the cases where frames_needed cannot tell which frames a
    window reads: no count in the header, or a count that 5% short is under
    two windows."""
    recorder = Recorder(reads=lambda count: [0, count - 1])
    predicted = predict_windows(20, recorder=recorder, header=header, **WINDOWS)
    converted = predicted.stream.converted
    if header in (0, 20):
        assert converted == list(range(20))
    else:  # at least 20 decode: the first window's middle frames are never read
        assert 1 not in converted


def test_a_window_that_reads_a_frame_not_kept_stops_the_prediction(monkeypatch):
    """Guards the check that every frame a window reads was kept."""
    monkeypatch.setattr(timeline, "frames_needed", lambda *args: lambda index: index % 2 == 0)
    recorder = Recorder(reads=lambda count: [0, count - 1])
    with pytest.raises(RuntimeError, match="video.mp4: window 0-10 reads frames that were not"):
        predict_windows(30, recorder=recorder, **WINDOWS)


def test_a_file_without_a_frame_rate_is_read_at_25_fps(tmp_path):
    """Guards the fallback frame rate and its note."""
    predicted = predict_windows(60, 0.0, out=str(tmp_path), write=True, **WINDOWS)
    # 1-second windows of 25 frames every 12.5 -> 12 frames (rounded half to even).
    assert predicted.windows == [(0, 25), (12, 37), (24, 49), (35, 60)]
    assert predicted.fps == 25.0 and predicted.result["fps"] == 25.0
    assert predicted.result["notes"] == ["the file gives no frame rate; 25 fps assumed"]


def test_times_are_rounded_to_milliseconds():
    """Guards `seconds`, which every start and end in a result goes through."""
    assert prediction.seconds(1, 3.0) == 0.333 and prediction.seconds(2, 3.0) == 0.667


@pytest.mark.parametrize("field, value", [
    ("ratio", 0.0), ("ratio", 1.0), ("window", 0.0), ("stride", -1.0),
    ("sample_rate", float("inf")), ("window", float("nan")), ("top_k", 0),
])
def test_options_out_of_range_are_refused(field, value):
    """Guards PredictOptions' checks and the flag each message names."""
    with pytest.raises(ValueError, match=f"--{field.replace('_', '-')} must be"):
        PredictOptions(**{field: value})


def test_options_at_the_edge_of_their_range_are_kept():
    """Guards the open ends of the ranges PredictOptions accepts."""
    options = PredictOptions(ratio=0.999, window=1e-3, stride=1e-3, sample_rate=1e-3, top_k=1)
    assert options.top_k == 1 and options.ratio == 0.999


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(n_frames=st.integers(1, 150), fps=st.sampled_from([1.0, 7.5, 10.0, 25.0, 29.97]),
       window=st.floats(0.05, 2.0), stride=st.floats(0.05, 2.0))
def test_windows_cover_the_video_once(n_frames, fps, window, stride):
    """Guards the window rules on any length, frame rate, window and stride:
    one window under two window lengths; otherwise windows of the same
    length every stride from 0, a last one ending at the video's end, no
    window read or kept twice, none starting within half a stride of the
    one before unless replacing that one would leave frames unread, and
    every frame read when windows overlap or touch."""
    predicted = predict_windows(n_frames, fps, window=window, stride=stride)
    spans = predicted.windows
    length = max(1, int(round(window * fps)))
    step = max(1, int(round(stride * fps)))
    assert len(set(predicted.encoded)) == len(predicted.encoded)
    if n_frames < 2 * length:
        assert spans == [(0, n_frames)]
        return
    assert all(stop - start == length for start, stop in spans)
    assert spans[-1][1] == n_frames
    starts = [start for start, _ in spans]
    assert all(start % step == 0 for start in starts[:-1])
    gaps = np.diff(starts)
    assert (gaps[:-1] == step).all()
    # A last window within half a stride of the one before stays beside it
    # only where replacing that one would leave frames unread.
    assert gaps[-1] >= step / 2 or (step <= length and (
        len(spans) < 3 or spans[-3][1] < spans[-1][0]))
    every_stride = list(range(0, n_frames - length + 1, step))
    assert starts[:-1] == every_stride[:len(starts) - 1]
    assert len(every_stride) - 1 <= len(starts) <= len(every_stride) + 1
    # A window every stride is left out only for a last one starting
    # within half a stride of it.
    for start in set(every_stride) - set(starts):
        assert starts[-1] - start < step / 2
    if step <= length:  # windows that overlap or touch read every frame
        covered = np.zeros(n_frames, bool)
        for start, stop in spans:
            covered[start:stop] = True
        assert covered.all()
