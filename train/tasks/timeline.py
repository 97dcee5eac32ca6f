"""Labels of a video from a trained classifier run, over time.

`ClassifierPredictor(model, record, options, encoder)(video, out)` decodes
the video once (`data.stream.FrameStream`) and cuts it into windows of
`window` seconds starting every `stride` seconds; the task's `encoder`
turns the frames of one window into one model input the way the run's
training data was made (the clips task samples the model's frame count
uniformly over the window; the features task runs the recorded frame
encoder and builds the multi-scale sequence). So that the video is
decoded once, only the frames of the windows still open are kept, at the
encoder's frame size.

Which windows:

- a video shorter than two windows is one window over the whole video:
  frames sampled uniformly over it, exactly as a training video;
- a longer one gets windows at 0, stride, 2 * stride, ... that end inside
  the video, plus one window ending at the last frame when those leave a
  tail uncovered; that last window replaces the one before it when their
  starts are less than half a stride apart, so no window nearly repeats
  another, except where the replaced window holds frames no other window
  reads (a stride over two thirds of the window: window = stride = 1 s at
  10 fps and 32 frames keeps (10, 20) beside (22, 32), which would
  otherwise leave frames 20 and 21 unread).

The default window, 5 s with a 2.5 s stride, is our choice: the classifiers
train on whole videos sampled uniformly, and the videos of HMDB51 and
UCF101 (the notes' data) last 3 to 7 seconds on average.

The answer for the video averages the windows' class probabilities,
weighted so that every moment of the video counts once
(`moment_weights`: where windows overlap, each gets its share of the
shared frames); its `top_k` labels are printed. A video of several windows also gets
`timeline.json` (every window: start and end in seconds, its label and the
probability of every class) and `timeline.png` (the probability of the
video's top classes over time). `result.json` holds the printed result.

With `options.explain`, the run's `train.serving.explain` explainer runs on
the same batches, and once the video is predicted its explanation is
written for every window: the video is decoded a second time for the
frames the model read, at a size people can see, kept as JPEG on disk
until the explanation video is written from them.
"""

import collections
import os

import numpy as np

import models
from common.files import pyplot, save_figure, write_json
from data.stream import FrameStream, rgb
from data.video import MAX_SHORTFALL_FRACTION
from train.metrics.classification import two_columns
from train.serving import explain
from train.serving.prediction import (
    margin_note,
    report_progress,
    seconds,
    trained_on,
    video_fps,
    watch,
)

BATCH_SIZE = 8
# Batches of windows run eagerly before a traced function takes over.
EAGER_BATCHES = 4
PLOTTED_CLASSES = 5


class WindowEncoder:
    """The frames of one window -> one model input (no batch axis).

    Args:
        size: (height, width) frames are kept at while the video decodes.
        encode: `(frames uint8 [n, H, W, 3], frame indices [n]) -> {input
            name: array}`.
        positions: `frames in a window -> the window's frame index of every
            model step`, the frames an explanation is drawn on.
        adaptation: how a video's frames are made to fit a model trained on
            something else (e.g. other channels), said in every result; None
            when they fit as they are.
        reads: `frames in a window -> the window's frame indices `encode`
            reads`; the other frames of a window are passed as zeros and
            never converted (resizing a 720p frame to a model's size costs
            about as much as decoding it). None: `encode` may read any.
    """

    def __init__(self, size, encode, positions, adaptation=None, reads=None):
        self.size = tuple(int(s) for s in size)
        self.encode = encode
        self.positions = positions
        self.adaptation = adaptation
        self.reads = reads


def frames_needed(reads, window_frames, stride_frames, header_count):
    """A function of the frame index: whether a window may read that frame.

    A window every `stride_frames` reads `reads(window_frames)` of its
    frames. Which frames the last window (ending at the video's end) and a
    video shorter than two windows read depends on the real frame count,
    known only at the end; a stream stops with an error when it is more
    than `MAX_SHORTFALL_FRACTION` short of its header's count, so every
    frame from that shortest length less a window on is needed, and every
    frame when that length is under two windows (or the header gives no
    count, or `reads` is None).

    Example:

    >>> needed = frames_needed(lambda count: [0, count - 1], 10, 5, 400)
    >>> [i for i in range(30) if needed(i)]
    [0, 5, 9, 10, 14, 15, 19, 20, 24, 25, 29]
    >>> needed(368), needed(370)   # 400 in the header, 380 at least: the last window
    (False, True)
    """
    if reads is None or header_count <= 0:
        return lambda index: True
    shortest = header_count - max(1, int(MAX_SHORTFALL_FRACTION * header_count))
    if shortest < 2 * window_frames:
        return lambda index: True
    tail = shortest - window_frames
    read = np.zeros(window_frames, bool)
    read[np.asarray(reads(window_frames), np.int64)] = True

    def needed(index):
        if index >= tail:
            return True
        first = max(0, index - window_frames + 1)
        start = -(-first // stride_frames) * stride_frames  # the first window holding it
        while start <= index:
            if read[index - start]:
                return True
            start += stride_frames
        return False

    return needed


def window_bounds(window_frames, stride_frames):
    """A function of the frame index that says which window ends there.

    Exposed for tests; `ClassifierPredictor` follows the same rule.

    Example:

    >>> ends = window_bounds(4, 3)
    >>> [ends(i) for i in range(10)]
    [None, None, None, 0, None, None, 3, None, None, 6]
    """
    def started_window_ending_at(index):
        start = index + 1 - window_frames
        if start >= 0 and start % stride_frames == 0:
            return start
        return None

    return started_window_ending_at


class ClassifierPredictor:
    """Labels videos with one classifier run.

    Args:
        model: the run's Keras model.
        record: the run's `config.json` (with `class_names`).
        options: `train.serving.prediction.PredictOptions`.
        encoder: the task's `WindowEncoder`.
    """

    def __init__(self, model, record, options, encoder):
        self.model = model
        self.record = record
        self.options = options
        self.encoder = encoder
        self.family = models.get_family(record["model"])
        self.explainer = None
        if options.explain:
            self.explainer = explain.explainer_for(model, record)

    def _probabilities(self, batch):
        inputs = {name: np.stack([example[name] for example in batch]) for name in batch[0]}
        if self._batches < EAGER_BATCHES:
            outputs = self.model(inputs, training=False)
        else:
            # A long video: one traced function (a batch of BATCH_SIZE, the
            # last one padded) serves the rest; eager calls cost ~0.2 s a
            # batch in Keras' layer bookkeeping, tracing once ~1 s.
            padded = {name: _pad(value, BATCH_SIZE) for name, value in inputs.items()}
            outputs = self.model.predict_on_batch(padded)
        self._batches += 1
        probabilities = self.family.name_outputs(self.model, outputs)["probabilities"]
        if self.explainer is not None:
            self._explained.extend(self.explainer(inputs))
        return two_columns(np.asarray(probabilities, dtype=np.float64)[:len(batch)])

    def __call__(self, video, out):
        options = self.options
        stream = FrameStream(video)
        fps, fps_note = video_fps(stream)
        window_frames = max(1, int(round(options.window * fps)))
        stride_frames = max(1, int(round(options.stride * fps)))
        ends_window = window_bounds(window_frames, stride_frames)
        kept = collections.deque()
        windows, pending, probabilities = [], [], []
        self._explained = []
        self._batches = 0

        needed = frames_needed(self.encoder.reads, window_frames, stride_frames,
                               stream.info.frame_count)
        height, width = self.encoder.size

        def add_window(start, stop):
            frames = np.zeros((stop - start, height, width, 3), np.uint8)
            converted = np.zeros(stop - start, bool)
            for index, frame in kept:
                if start <= index < stop and frame is not None:
                    frames[index - start] = frame
                    converted[index - start] = True
            reads = (np.arange(stop - start) if self.encoder.reads is None
                     else self.encoder.reads(stop - start))
            if not converted[reads].all():
                raise RuntimeError(f"{video}: window {start}-{stop} reads frames that were "
                                   "not kept")
            windows.append((start, stop))
            pending.append(self.encoder.encode(frames, np.arange(start, stop)))
            if len(pending) == BATCH_SIZE:
                probabilities.append(self._probabilities(pending))
                pending.clear()

        # Until the video is known to span two windows, every frame is kept
        # and no window is final: a shorter video is one window over all
        # of it, as training reads a video.
        long_enough = 2 * window_frames
        planned = []
        next_start = 0
        for index, frame in watch(stream, fps, options, video):
            kept.append((index, rgb(frame, self.encoder.size) if needed(index) else None))
            start = ends_window(index)
            if start is not None:
                planned.append((start, index + 1))
                next_start = start + stride_frames
            if index + 1 < long_enough:
                continue
            for window in planned:
                add_window(*window)
            planned.clear()
            # Keep what the next window, or a last window ending at the
            # video's end, may need.
            keep_from = min(next_start, index + 1 - window_frames)
            while kept and kept[0][0] < keep_from:
                kept.popleft()
        n_frames = stream.info.frame_count
        replaces_last = False
        if n_frames < long_enough:
            add_window(0, n_frames)
        elif windows[-1][1] < n_frames:
            # A last window ends at the video's end; when it starts within
            # half a stride of the one before, it takes that one's place,
            # unless that would leave frames no window reads (a stride of
            # more than two thirds of the window, where the window before
            # ends before the last one starts).
            last_start = n_frames - window_frames
            near = last_start - windows[-1][0] < stride_frames / 2
            gap = stride_frames <= window_frames and (
                len(windows) < 2 or windows[-2][1] < last_start)
            replaces_last = near and not gap
            add_window(last_start, n_frames)
        if pending:
            probabilities.append(self._probabilities(pending))
        probabilities = np.concatenate(probabilities)
        if replaces_last:
            del windows[-2]
            probabilities = np.delete(probabilities, -2, axis=0)
            if self._explained:
                del self._explained[-2]
        report_progress("writing the timeline")
        result = self._write(video, out, fps, fps_note, n_frames, windows, probabilities)
        if self.explainer is not None:
            report_progress("writing the explanation")
            self._explain(video, out, fps, windows, probabilities, result)
        return result

    def _explain(self, video, out, fps, windows, probabilities, result):
        """Writes the explanation of every window, in order, and adds it to
        the result (and `result.json`)."""
        steps = [start + self.encoder.positions(stop - start) for start, stop in windows]
        label = int(np.argmax(probabilities.mean(axis=0)))
        best = int(np.argmax(probabilities[:, label]))
        # The display frames wait on disk: a long video has many windows.
        with explain.read_display_frames(video, np.unique(np.concatenate(steps))) as display:
            shown, times, values, captions = [], [], [], []
            for window, (indices, explained) in enumerate(zip(steps, self._explained)):
                if self.explainer.kind == "curve":
                    explained = explained[:len(indices)]
                else:
                    explained = explain.resample(explained, len(indices), *explained.shape[1:])
                if window == best:
                    strip = ([display[int(i)] for i in indices],
                             [seconds(i, fps) for i in indices], explained)
                shown.extend(int(i) for i in indices)
                times.extend(seconds(i, fps) for i in indices)
                values.extend(explained)
                # Windows overlap, so time may step back between them: every
                # frame names its window.
                span = summary_window(windows[window], fps)
                captions.extend(f"window {window + 1}/{len(windows)} ({span}): "
                                f"{seconds(i, fps):.2f} s" for i in indices)
            files, summary, notes = explain.write_explanation(
                out, self.explainer, display.sequence(shown), times, values, strip=strip,
                captions=captions,
                title=f"{os.path.basename(video)}: what the model looked at for "
                      f"'{result['label']}' in {summary_window(windows[best], fps)} "
                      f"- {self.explainer.method}",
                extra={"label": result["label"], "strip_window": best,
                       "windows": [[seconds(a, fps), seconds(b, fps)] for a, b in windows]},
            )
        result["files"].update(files)
        result["explanation"] = summary
        result["sections"].append("explanation")
        result["notes"].extend(notes)
        write_json(result["files"]["result"], result)

    def _write(self, video, out, fps, fps_note, n_frames, windows, probabilities):
        class_names = list(self.record.get("class_names") or [])
        if len(class_names) != probabilities.shape[1]:
            class_names = [str(i) for i in range(probabilities.shape[1])]
        mean = moment_weights(windows, n_frames) @ probabilities
        order = np.argsort(-mean, kind="stable")
        top = [
            {"label": class_names[i], "probability": round(float(mean[i]), 4)}
            for i in order[:self.options.top_k]
        ]
        files = {"result": os.path.join(out, "result.json")}
        timeline = None
        if len(windows) > 1:
            files["timeline"] = os.path.join(out, "timeline.json")
            files["timeline_plot"] = os.path.join(out, "timeline.png")
            timeline = [
                {
                    "start": seconds(start, fps), "end": seconds(stop, fps),
                    "frames": [int(start), int(stop - 1)],
                    "label": class_names[int(np.argmax(p))],
                    "probability": round(float(np.max(p)), 4),
                }
                for (start, stop), p in zip(windows, probabilities)
            ]
            write_json(files["timeline"], {
                "video": os.path.abspath(video),
                "class_names": class_names,
                "window": self.options.window,
                "stride": self.options.stride,
                "windows": [
                    {**entry, "probabilities": np.round(p, 4).tolist()}
                    for entry, p in zip(timeline, probabilities)
                ],
            })
            write_timeline_plot(windows, probabilities, class_names, order, fps, n_frames,
                                files["timeline_plot"], title=os.path.basename(video))
        described, trained_note = trained_on(self.record)
        notes = [note for note in (fps_note, trained_note, self.encoder.adaptation,
                                   margin_note(mean, class_names)) if note]
        result = {
            "video": os.path.abspath(video),
            "run": os.path.abspath(self.options.run) if self.options.run else None,
            "model": self.record["model"],
            "trained_on": described,
            "fps": fps,
            "frame_count": n_frames,
            "duration": round(n_frames / fps, 3),
            "window": self.options.window,
            "stride": self.options.stride,
            "windows": len(windows),
            "label": top[0]["label"],
            "top": top,
            "timeline": timeline,
            "files": files,
            "notes": notes,
            "sections": ["labels"] + (["timeline"] if timeline else []),
        }
        write_json(files["result"], result)
        return result


def _pad(values, size):
    """[b, ...] -> [size, ...], the last example repeated."""
    if len(values) == size:
        return values
    return np.concatenate([values, np.repeat(values[-1:], size - len(values), axis=0)])


def moment_weights(windows, n_frames):
    """Each window's weight in the video's answer, so that every frame counts
    once: a frame covered by k windows gives 1/k to each; the weights sum
    to 1.

    Example:

    >>> moment_weights([(0, 4), (2, 6)], 6).tolist()
    [0.5, 0.5]
    >>> moment_weights([(0, 4), (2, 6), (3, 6)], 6).round(3).tolist()
    [0.472, 0.306, 0.222]
    """
    coverage = np.zeros(max(n_frames, max(stop for _, stop in windows)))
    for start, stop in windows:
        coverage[start:stop] += 1
    share = np.divide(1.0, coverage, out=np.zeros_like(coverage), where=coverage > 0)
    weights = np.array([share[start:stop].sum() for start, stop in windows])
    return weights / weights.sum()


def summary_window(window, fps):
    start, stop = window
    return f"{seconds(start, fps):.1f}-{seconds(stop, fps):.1f} s"


def write_timeline_plot(windows, probabilities, class_names, order, fps, n_frames, path,
                        title=None):
    """The probability of the video's top classes at every window's middle;
    `title` (e.g. the video's name) above it."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 3))
    middles = np.asarray([(start + stop) / 2 for start, stop in windows]) / fps
    for i in order[:PLOTTED_CLASSES]:
        axis.plot(middles, probabilities[:, i], marker="o", markersize=3, linewidth=1.2,
                  label=class_names[i])
    axis.set_xlim(0, n_frames / fps)
    axis.set_ylim(0, 1)
    axis.set_xlabel("time (s), window middles")
    axis.set_ylabel("probability")
    axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, fontsize=8, frameon=False)
    if title:
        axis.set_title(title, fontsize=9, pad=22)
    figure.tight_layout()
    save_figure(figure, path)
