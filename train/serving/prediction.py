"""What every task's prediction shares: options, result folders, frame spools.

A task's `predictor(model, record, options)` prepares everything that does
not depend on the video once (encoders, backbones, traced functions) and
returns a callable `(video, out) -> result`; `train.predict` calls it for
every video of a folder and `train.app` for every upload, so both produce
the same files and the same JSON.

Result folders never replace earlier results: `result_folder(root, video)`
claims `root/<video name>` with an atomic `mkdir`, or `<video name>-2`,
`-3`, ... when that is taken (a second prediction of the same video, or two
videos of the same name from different folders).

Example:

>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> [os.path.basename(result_folder(root, f"/videos/{side}/clip.mp4")) for side in ("a", "b")]
['clip', 'clip-2']
"""

import contextlib
import contextvars
import dataclasses
import os
import re
import shutil
import tempfile

import cv2
import numpy as np

from common.files import atomic_path
from common.progress import VideoProgress
from data.stream import decode_ahead
from data.video import is_video_file

# When a file gives no frame rate, this one is assumed (and said so in the result).
FALLBACK_FPS = 25.0

# Top-two probabilities closer than this make an answer a coin toss, and
# keyframe scores spread over less than this rank nothing.
LOW_MARGIN = 0.1
FLAT_SCORES = 0.05


def trained_on(record):
    """What a run was trained on, for results: its data (said plainly for
    the embedded synthetic sets), classes and preset; and a note when the
    data was the embedded synthetic set, whose labels mean nothing for a
    real video.

    Example:

    >>> described, note = trained_on({"data": {"data": "synthetic", "synthetic_task": "motion"},
    ...                                "class_names": ["up", "down"], "preset": "demo"})
    >>> described["data"], note.startswith("this run learned from")
    ('the embedded synthetic set (motion)', True)
    """
    data = record.get("data") or {}
    source = str(data.get("data", "unknown"))
    synthetic = source.startswith("synthetic")
    if source == "features":
        source = str(data.get("features"))
    if synthetic:
        detail = data.get("synthetic_task") or data.get("features")
        source = "the embedded synthetic set" + (f" ({detail})" if detail else "")
    described = {"data": source, "classes": list(record.get("class_names") or []),
                 "preset": record.get("preset")}
    note = None
    if synthetic:
        note = ("this run learned from the embedded synthetic set, made by the suite's "
                "generator rather than filmed; on a real video its answer means nothing")
    return described, note


def margin_note(probabilities, labels):
    """A note when the best two classes are within `LOW_MARGIN`, else None.

    Example:

    >>> margin_note([0.504, 0.496], ["vertical", "horizontal"])
    'low confidence: vertical 0.504 and horizontal 0.496 are within 0.1 of each other'
    """
    order = np.argsort(-np.asarray(probabilities, np.float64), kind="stable")
    if len(order) < 2:
        return None
    first, second = float(probabilities[order[0]]), float(probabilities[order[1]])
    if first - second >= LOW_MARGIN:
        return None
    return (f"low confidence: {labels[order[0]]} {first:.3f} and {labels[order[1]]} "
            f"{second:.3f} are within {LOW_MARGIN:g} of each other")


def flat_scores_note(scores):
    """A note when scores spread over less than `FLAT_SCORES`, else None."""
    scores = np.asarray(scores, np.float64)
    if not len(scores) or scores.max() - scores.min() >= FLAT_SCORES:
        return None
    return (f"low confidence: every frame scores between {scores.min():.3f} and "
            f"{scores.max():.3f}; the model prefers no part of this video, so the summary "
            "is close to arbitrary")


def _describe_labels(result):
    return "labels: " + ", ".join(
        f"{entry['label']} {entry['probability']:.3f}" for entry in result["top"])


def _describe_timeline(result):
    return (f"timeline: {len(result['timeline'])} windows of {result['window']:g} s "
            f"-> {result['files']['timeline_plot']}")


def _describe_summary(result):
    return (f"summary: {result['summary_seconds']:g} s of {result['duration']:g} s in "
            f"{len(result['shots'])} shot{'' if len(result['shots']) == 1 else 's'} -> "
            f"{result['files']['summary_video']}")


def _describe_keyframes(result):
    return f"keyframes: {len(result['keyframes'])} -> {result['files']['contact_sheet']}"


def _describe_curve(result):
    return f"scores: {result['frames_scored']} frames -> {result['files']['score_plot']}"


def _describe_explanation(result):
    return f"explanation: {result['explanation']['method']} -> {result['files']['explanation_strip']}"


# The sections a result may declare (its "sections" list), in the order the
# page shows them, and the line the command prints for each: the summary
# played as a video, one frame per chosen shot, a score per sampled frame
# over time, the top labels with probabilities, the label of every window
# over time, and what the model looked at.
DESCRIBE_SECTION = {
    "summary_video": _describe_summary,
    "keyframes": _describe_keyframes,
    "curve": _describe_curve,
    "labels": _describe_labels,
    "timeline": _describe_timeline,
    "explanation": _describe_explanation,
}


SECTIONS = tuple(DESCRIBE_SECTION)


def describe_result(result):
    """Lines a person reads about a result: one per declared section, then
    its notes."""
    lines = [DESCRIBE_SECTION[section](result) for section in result.get("sections", [])
             if section in DESCRIBE_SECTION]
    return lines + [f"note: {note}" for note in result.get("notes", [])]


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """Options of one prediction; each task reads those it needs.

    Args:
        ratio: keyframe runs: the summary's share of the video's duration,
            in (0, 1); the knapsack's budget is floor(ratio * frames).
        sample_rate: keyframe runs: frames scored per second (the design
            notes' 2).
        window: classifier runs: seconds of video per prediction; a longer
            video is covered by windows every `stride` seconds.
        stride: classifier runs: seconds between the starts of windows.
        top_k: classifier runs: labels reported per video.
        backbone: runs on a feature file: the backbone that made the
            features (default: the one the run recorded).
        backbone_weights: weights of that backbone: "imagenet", a local
            file or "none" (default: what the features were extracted with).
        run: the run folder, for messages.
        explain: also write what the model looked at
            (`train.serving.explain`): `explanation.mp4`, `explanation.png`
            and `explanation.json`.
        progress: show the position in the video and the time left on
            stderr while it decodes (`common.progress.VideoProgress`).
    """

    ratio: float = 0.15
    sample_rate: float = 2.0
    window: float = 5.0
    stride: float = 2.5
    top_k: int = 5
    backbone: str | None = None
    backbone_weights: str | None = None
    run: str = ""
    explain: bool = False
    progress: bool = False

    def __post_init__(self):
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"--ratio must be in (0, 1), got {self.ratio}")
        for name in ("sample_rate", "window", "stride"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {value}")
        if self.top_k < 1:
            raise ValueError(f"--top-k must be >= 1, got {self.top_k}")

    @classmethod
    def from_dict(cls, values):
        """The options from a dict (e.g. parsed flags); other keys are ignored."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names and value is not None})


def list_videos(folder, exclude=None):
    """The video files under `folder`, sorted; hidden files and the folder
    `exclude` (e.g. where results are written) left out."""
    found = []
    excluded = os.path.realpath(exclude) if exclude else None
    if excluded and os.path.commonpath([os.path.realpath(folder), excluded]) == excluded:
        return found
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(
            name for name in subfolders if not name.startswith(".")
            and os.path.realpath(os.path.join(directory, name)) != excluded
        )
        found.extend(
            os.path.join(directory, name) for name in sorted(names)
            if is_video_file(name) and not name.startswith(".")
        )
    return found


# Where the prediction running in this thread reports its stages (see
# `report_progress`); None when nobody listens.
_progress_listener = contextvars.ContextVar("progress_listener", default=None)


def report_progress(stage, done=None, total=None):
    """Tells whoever runs the current prediction where it is: `stage` (a
    short phrase, e.g. "decoding and scoring frames") and, for a stage that
    counts, `done` of `total` items. Costs nothing when nobody listens, so
    a task's predictor may call it for every frame.

    Example:

    >>> seen = []
    >>> with progress_to(lambda *args: seen.append(args)):
    ...     report_progress("writing the summary video", 3, 10)
    >>> report_progress("not heard")
    >>> seen
    [('writing the summary video', 3, 10)]
    """
    listener = _progress_listener.get()
    if listener is not None:
        listener(stage, done, total)


@contextlib.contextmanager
def progress_to(listener):
    """Within the block, `report_progress(stage, done, total)` calls
    `listener(stage, done, total)` (in this thread; None: nobody listens)."""
    token = _progress_listener.set(listener)
    try:
        yield
    finally:
        _progress_listener.reset(token)


def predict_one(predictor, video, root, progress=None):
    """Runs `predictor` on one video in a new result folder under `root`;
    the folder is removed again when the prediction fails.

    Args:
        predictor: a task's `(video, out) -> result` callable.
        video: the video file.
        root: the folder of result folders.
        progress: called as `progress(stage, done, total)` as the
            prediction goes through its stages (`report_progress`); `done`
            and `total` are None for a stage that does not count.
    """
    out = result_folder(root, video)
    try:
        with progress_to(progress):
            return predictor(video, out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


def result_folder(root, video):
    """Claims a new folder for the results of `video` under `root`.

    `root/<name>` where name is the video's file name without extension,
    else `<name>-2`, `<name>-3`, ...: an existing folder is never reused.
    """
    os.makedirs(root, exist_ok=True)
    name = safe_name(os.path.splitext(os.path.basename(os.fspath(video)))[0]) or "video"
    for number in range(1, 100_000):
        path = os.path.join(root, name if number == 1 else f"{name}-{number}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{root}: no free result folder name for {name}")


def safe_name(name):
    """A file name without path separators or characters a URL must escape."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")


def video_fps(stream):
    """(fps, note): the header's rate, or `FALLBACK_FPS` with a note saying so."""
    if stream.fps > 0:
        return stream.fps, None
    return FALLBACK_FPS, f"the file gives no frame rate; {FALLBACK_FPS:g} fps assumed"


class FrameSpool:
    """Frames kept as JPEG in a temporary file, for reading back by index.

    A rendered summary needs frames chosen only after the whole video has
    been scored; keeping them compressed on disk lets the video be decoded
    once without holding every frame in memory (a 360p frame is about
    20-40 KB as JPEG, 690 KB raw).

    Args:
        quality: JPEG quality, 0-100.

    Example:

    >>> spool = FrameSpool()
    >>> spool.append(np.full((4, 6, 3), 200, np.uint8))
    0
    >>> spool[0].shape, len(spool)
    ((4, 6, 3), 1)
    """

    def __init__(self, quality=90):
        self._file = tempfile.TemporaryFile()
        self._offsets = []
        self._quality = int(quality)

    def encode(self, frame):
        """A BGR uint8 frame as the JPEG bytes `append_encoded` stores (may
        run in another thread)."""
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:
            raise RuntimeError("cv2 cannot encode a frame as JPEG")
        return data.tobytes()

    def append(self, frame):
        """Stores a BGR uint8 frame; returns its index."""
        return self.append_encoded(self.encode(frame))

    def append_encoded(self, data):
        """Stores a frame `encode` made; returns its index."""
        offset = self._file.seek(0, os.SEEK_END)
        self._file.write(data)
        self._offsets.append((offset, len(data)))
        return len(self._offsets) - 1

    def __getitem__(self, index):
        offset, size = self._offsets[index]
        self._file.seek(offset)
        data = np.frombuffer(self._file.read(size), np.uint8)
        return cv2.imdecode(data, cv2.IMREAD_COLOR)

    def __len__(self):
        return len(self._offsets)

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SpooledFrames:
    """Frames of a `FrameSpool` at chosen indices, as a sequence of RGB
    frames read back from disk only when used (a sequence can be iterated
    again, e.g. to write a video twice).

    Example:

    >>> spool = FrameSpool()
    >>> _ = [spool.append(np.full((2, 2, 3), value, np.uint8)) for value in (10, 20, 30)]
    >>> frames = SpooledFrames(spool, [2, 0])
    >>> len(frames), [int(frame[0, 0, 0]) for frame in frames]
    (2, [30, 10])
    """

    def __init__(self, spool, indices):
        self.spool = spool
        self.indices = [int(i) for i in indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, position):
        return cv2.cvtColor(self.spool[self.indices[position]], cv2.COLOR_BGR2RGB)

    def __iter__(self):
        for index in self.indices:
            yield cv2.cvtColor(self.spool[index], cv2.COLOR_BGR2RGB)


def watch(stream, fps, options, video, prepare=None):
    """The `(index, frame)` pairs of a `FrameStream`, decoded ahead in a
    thread while the caller works on the frames before
    (`data.stream.decode_ahead`; with `prepare`, triples with what it made
    of each frame in that thread); with `options.progress`, the position
    in the video and the time left are shown on stderr as they go by, and
    every frame is reported as a stage of the prediction (`report_progress`)."""
    frames = decode_ahead(stream, prepare=prepare)
    total = stream.info.frame_count
    progress = None
    if options.progress:
        progress = VideoProgress(total, fps, os.path.basename(os.fspath(video)))
    for item in frames:
        report_progress("decoding and scoring frames", item[0] + 1, total)
        yield item
        if progress is not None:
            progress.update(item[0])
    if progress is not None:
        progress.close()


def write_image(path, frame_bgr):
    """Writes a BGR frame as JPEG or PNG (by extension), atomically."""
    with atomic_path(path) as temporary:
        extension = os.path.splitext(path)[1]
        ok, data = cv2.imencode(extension, frame_bgr)
        if not ok:
            raise RuntimeError(f"{path}: cv2 cannot encode the image")
        with open(temporary, "wb") as file:
            file.write(data.tobytes())
    return path


def seconds(frame, fps):
    """A frame's start time in seconds, rounded to milliseconds."""
    return round(float(frame) / fps, 3)


__all__ = [
    "FALLBACK_FPS",
    "FrameSpool",
    "PredictOptions",
    "SpooledFrames",
    "list_videos",
    "predict_one",
    "progress_to",
    "report_progress",
    "result_folder",
    "safe_name",
    "seconds",
    "video_fps",
    "watch",
    "write_image",
]
