"""Reading real videos: decoding, uniform frame sampling, tf.data.

A clip is `num_frames` frames sampled uniformly over the whole video,
resized and in RGB order:

    read_clip(path, num_frames=64, size=(256, 256))  ->  uint8 [64, 256, 256, 3]

Frame indices come from `np.linspace(0, n - 1, num_frames)` rounded down
(`sample_frame_indices`), so the first and the last frame are always in the
clip; a video shorter than `num_frames` repeats frames instead of failing.

Decoders. `read_frames`, which every reader here goes through, has two:
OpenCV, which decodes every frame up to the last index needed, and
FFmpeg's library through PyAV (`data.av_decoder`), which first reads the
packet index and then decodes only what the wanted frames depend on: from
the keyframe before each, skipping frames nothing refers to, with FFmpeg's
frame threads. Both number frames in presentation order and give the same
pixels up to the decoders' rounding (tests/test_av_decoder.py). By default
("auto") PyAV decodes where it leaves enough frames out
(`pyav_pays_off`: sparse samples, keyframe-only codecs, B-frames), OpenCV
where every frame has to be decoded anyway (it converts frames a little
faster) and for files PyAV cannot index exactly; `decoder=` or the
`VIDEO_DECODER` environment variable ("pyav", "opencv") choose one.

Frame counts. Containers report a frame count in their header, exact for
MP4/MOV/AVI and estimated from the duration for MKV/WebM. PyAV counts the
packets of the file. OpenCV reads frames sequentially up to the last index
needed; when fewer frames decode than the header reports, the shortfall
decides: up to `max(1, 5%)` of the reported count is taken as an inexact
header and the clip is sampled again over the frames that do decode; more
than that is a truncated or corrupt file and raises `VideoError` (PyAV
applies the same limit to the packets it counts). A header without a frame
count is handled by counting the frames first.

Errors. Every problem with a file (missing, unreadable, not a video, no
frames, truncated) raises `VideoError`, a `ValueError` whose message starts
with the path. In `video_clip_dataset`, `on_error="skip"` (the default)
drops such a file from the stream with a logged warning naming it, and
`on_error="fail"` stops the pipeline with that message.

Example:

>>> import tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "clip.avi")
>>> _ = write_video(path, np.zeros((90, 120, 160, 3), np.uint8), fps=30)
>>> info = probe_video(path)
>>> info.frame_count, info.fps, info.duration
(90, 30.0, 3.0)
>>> read_clip(path, num_frames=16, size=(112, 112)).shape
(16, 112, 112, 3)
"""

import dataclasses
import itertools
import logging
import os

# OpenCV and FFmpeg print their own lines about broken files; our errors name
# the file already. A user's own setting of these variables wins.
os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from common.files import atomic_path  # noqa: E402
from data import av_decoder  # noqa: E402

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
DEFAULT_NUM_FRAMES = 64
DEFAULT_SIZE = (256, 256)

# What `read_frames` decodes with: "auto" chooses per call (`pyav_pays_off`).
DECODERS = ("auto", "pyav", "opencv")
# "auto" takes PyAV when its plan sends at most this share of the packets
# OpenCV would decode (see `pyav_pays_off`).
PYAV_MAX_SHARE = 0.9

# Fewer decodable frames than the header reports by more than this is a
# truncated file rather than an inexact header (see the module docstring).
MAX_SHORTFALL_FRACTION = 0.05
# What prediction takes for a video: at least this many frames, and not a
# still image, which FFmpeg opens as a one-frame "video" at an invented
# 25 fps (the codecs it gives image files, as cv2's CAP_PROP_FOURCC).
MIN_VIDEO_FRAMES = 2
IMAGE_CODECS = {"MPNG": "PNG", "webp": "WebP", "tiff": "TIFF", "gif ": "GIF"}

logger = logging.getLogger(__name__)


class VideoError(ValueError):
    """A video file that cannot be read; the message starts with its path."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video file holds.

    Args:
        path: the file.
        frame_count: frames in the video: the header's count, or the number
            that decoded where the header was wrong or missing.
        fps: frames per second from the header (0.0 when the file gives none).
        width, height: frame size in pixels.
    """

    path: str
    frame_count: int
    fps: float
    width: int
    height: int

    @property
    def duration(self):
        """Length in seconds (0.0 when the frame rate is unknown)."""
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def is_video_file(path):
    """True for a name with one of `VIDEO_EXTENSIONS` (case-insensitive)."""
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def sample_frame_indices(frame_count, num_frames=DEFAULT_NUM_FRAMES):
    """`num_frames` indices spread uniformly over a video of `frame_count`.

    `np.linspace(0, frame_count - 1, num_frames)` rounded down: the first and
    last frame are always included, and a video with fewer frames than
    `num_frames` gets repeated indices.

    Example:

    >>> sample_frame_indices(10, 4)
    array([0, 3, 6, 9])
    >>> sample_frame_indices(3, 5)
    array([0, 0, 1, 1, 2])
    """
    frame_count, num_frames = int(frame_count), int(num_frames)
    if frame_count < 1:
        raise ValueError(f"frame_count must be >= 1, got {frame_count}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return np.linspace(0, frame_count - 1, num_frames).astype(np.int64)


def sample_view_indices(frame_count, num_frames, num_clips):
    """Frame indices of `num_clips` clips of `num_frames`, spread uniformly.

    The `num_clips * num_frames` positions of
    `np.linspace(0, frame_count - 1, num_clips * num_frames)` (rounded down)
    are dealt out in turn: clip `k` takes positions `k, k + num_clips, ...`.
    Every clip so spans the whole video at the frame spacing of
    `sample_frame_indices` (how a clip is read for training and for
    single-view testing), each shifted by a share of that spacing; one clip
    is exactly `sample_frame_indices(frame_count, num_frames)`.

    Returns:
        int64 [num_clips, num_frames].

    Example:

    >>> sample_view_indices(16, 4, 2).tolist()
    [[0, 4, 8, 12], [2, 6, 10, 15]]
    >>> sample_view_indices(10, 4, 1)[0].tolist() == sample_frame_indices(10, 4).tolist()
    True
    """
    num_clips = int(num_clips)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    positions = sample_frame_indices(frame_count, int(num_frames) * num_clips)
    return positions.reshape(int(num_frames), num_clips).T.copy()


def crop_corners(frame_size, crop_size, crops):
    """(top, left) of `crops` crops of `crop_size` from frames of `frame_size`.

    3 crops: the start, centre and end of the axis with room to spare (the
    longer side, once a frame is scaled to cover the crop), centred on the
    other axis, as MMAction2's `ThreeCrop`; 1 crop: the centre.

    Example:

    >>> crop_corners((112, 150), (112, 112), 3)
    [(0, 0), (0, 19), (0, 38)]
    >>> crop_corners((48, 64), (48, 64), 3)
    [(0, 0), (0, 0), (0, 0)]
    """
    (height, width), (crop_height, crop_width) = frame_size, crop_size
    spare_rows, spare_cols = height - crop_height, width - crop_width
    if spare_rows < 0 or spare_cols < 0:
        raise ValueError(f"a {crop_height}x{crop_width} crop does not fit a {height}x{width} frame")
    if crops == 1:
        return [(spare_rows // 2, spare_cols // 2)]
    if crops != 3:
        raise ValueError(f"crops must be 1 or 3, got {crops}")
    if spare_rows > spare_cols:
        return [(top, spare_cols // 2) for top in (0, spare_rows // 2, spare_rows)]
    return [(spare_rows // 2, left) for left in (0, spare_cols // 2, spare_cols)]


def read_views(path, num_frames, size, clips=1, crops=1, decoder=None):
    """The test views of a video: `clips` clips x `crops` spatial crops.

    Clips come from `sample_view_indices`. With one crop a frame is resized
    to `size` whole, as `read_clip` reads it for training, so `read_views(path,
    T, size)` is `read_clip(path, T, size)`; with three, the frame is scaled
    (aspect kept) until it covers `size` (for a square `size`: its short
    side matches) and three crops of `size` are cut (`crop_corners`).
    All views come from one pass over the file.

    Returns:
        uint8 [clips * crops, num_frames, H, W, 3], clip-major (view
        `k * crops + c` is clip k, crop c).
    """
    height, width = normalize_size(size)
    read_size = (height, width)
    if crops != 1:
        info = probe_video(path)
        scale = max(height / info.height, width / info.width)
        read_size = (
            max(height, int(round(info.height * scale))),
            max(width, int(round(info.width * scale))),
        )
    corners = crop_corners(read_size, (height, width), crops)
    frames, _, _ = read_frames(
        path, lambda count: sample_view_indices(count, num_frames, clips).reshape(-1), read_size,
        decoder,
    )
    frames = frames.reshape(clips, num_frames, *read_size, 3)
    views = [frames[:, :, top:top + height, left:left + width] for top, left in corners]
    return np.stack(views, axis=1).reshape(clips * crops, num_frames, height, width, 3)


def normalize_size(size):
    """(height, width) from an int or a pair; both must be positive."""
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    try:
        height, width = (int(value) for value in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {(height, width)}")
    return height, width


# A fourcc per container that the FFmpeg in opencv-python-headless writes.
WRITER_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".webm": "VP80"}


def write_video(path, frames, fps=25.0, fourcc=None):
    """Writes RGB uint8 frames [T, H, W, 3] as a video file; returns `path`.

    `frames` may be any iterable of frames (a generator): they are encoded
    one at a time and never held together.

    The container follows the extension and the codec `WRITER_FOURCC`
    unless `fourcc` is given. The file is written under a temporary name
    and renamed, so an interrupted write never leaves a playable-looking
    half file under `path`.

    Raises:
        ValueError: no frames, frames that are not [T, H, W, 3], or an
            extension with no known codec.
        RuntimeError: OpenCV cannot open a writer for this codec.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    fourcc = fourcc or WRITER_FOURCC.get(extension)
    if fourcc is None:
        raise ValueError(
            f"{path}: no video codec for {extension!r}; use one of {', '.join(WRITER_FOURCC)}"
        )
    frames = iter(frames)
    first = next(frames, None)
    if first is None or np.ndim(first) != 3 or np.shape(first)[-1] != 3:
        raise ValueError(f"{path}: expected RGB frames [T, H, W, 3], got {np.shape(first)}")
    height, width = np.shape(first)[:2]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as temporary:
        writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*fourcc), float(fps),
                                 (int(width), int(height)))
        if not writer.isOpened():
            raise RuntimeError(f"cv2.VideoWriter cannot write {fourcc} into {path}")
        try:
            for frame in itertools.chain([first], frames):  # one frame at a time
                writer.write(cv2.cvtColor(np.asarray(frame, np.uint8), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return path


def check_file(path):
    """Raises `VideoError` for a path that is no readable, non-empty
    regular file; returns the path as a string."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoError(path, "no such file")
    if os.path.isdir(path):
        raise VideoError(path, "is a directory, not a video file")
    if not os.path.isfile(path):
        raise VideoError(path, "not a regular file (a pipe, socket or device), not a video file")
    if not os.access(path, os.R_OK):
        raise VideoError(path, "not readable (permission denied)")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "empty file (0 bytes)")
    return path


def _open(path):
    path = check_file(path)
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise VideoError(
            path, "cannot be opened as a video (not a video, an unsupported codec, or a corrupt file)"
        )
    return capture


def _header(capture, path):
    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    if not np.isfinite(fps) or fps < 0:
        fps = 0.0
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    return VideoInfo(os.fspath(path), max(reported, 0), fps, width, height)


def still_image_problem(capture):
    """Why an opened file is a still image rather than a video, or None."""
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    codec = fourcc.to_bytes(4, "little").decode("latin-1")
    if codec in IMAGE_CODECS:
        return f"a still image ({IMAGE_CODECS[codec]}), not a video"
    return None


def too_few_frames_problem(count):
    """Why `count` decoded frames are not a video, or None."""
    if count < MIN_VIDEO_FRAMES:
        return (f"{count} frame only: a still image, not a video (a video has at least "
                f"{MIN_VIDEO_FRAMES} frames)")
    return None


def _count_frames(path):
    capture = _open(path)
    try:
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def probe_video(path, count_frames=False):
    """Reads a video's header: frame count, fps, size.

    Args:
        path: the video file.
        count_frames: decode the whole file to count its frames instead of
            trusting the header (slower; what `read_frames` does only when
            the header turns out wrong).

    Raises:
        VideoError: missing, unreadable or not a video, or no frames.
    """
    capture = _open(path)
    try:
        info = _header(capture, path)
    finally:
        capture.release()
    if count_frames or info.frame_count == 0:
        info = dataclasses.replace(info, frame_count=_count_frames(path))
    if info.frame_count == 0:
        raise VideoError(path, "the video has no frames")
    return info


def convert_frame(frame, size):
    """An OpenCV frame (grey, BGR or BGRA) as RGB uint8 of `size` (H, W),
    with area interpolation when shrinking, as every reader here does."""
    height, width = size
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.shape[:2] != (height, width):
        shrinking = height * width < frame.shape[0] * frame.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (width, height), interpolation=interpolation)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _decode_at(path, wanted, size):
    """Decodes the frames at the sorted unique indices `wanted`.

    Returns (frames dict index -> RGB frame, number of frames read). Stops
    early when the stream ends, so fewer frames than asked may come back.
    """
    capture = _open(path)
    frames = {}
    position = 0
    try:
        last = int(wanted[-1])
        wanted_set = set(int(index) for index in wanted)
        while position <= last:
            if not capture.grab():
                break
            if position in wanted_set:
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    break
                frames[position] = convert_frame(frame, size)
            position += 1
    finally:
        capture.release()
    return frames, position


def read_frames(path, indices, size=DEFAULT_SIZE, decoder=None):
    """Decodes chosen frames of a video, resized, RGB, uint8.

    Args:
        path: the video file.
        indices: either frame indices, or a function `frame_count ->
            indices`, called once the real frame count is known (use this
            to sample relative to the video's length, as `read_clip` does).
            Repeated indices give repeated frames.
        size: (height, width) of the output frames, or one int for both.
        decoder: "auto" (PyAV where it decodes less, `pyav_pays_off`;
            OpenCV otherwise and for files PyAV cannot index exactly),
            "pyav" or "opencv"; None: the `VIDEO_DECODER` environment
            variable, else "auto". Both give the same frame indices and
            pixels up to the decoders' rounding.

    Returns:
        (frames uint8 [len(indices), H, W, 3], indices used as int64 array,
        VideoInfo).

    Raises:
        VideoError: the file is missing, unreadable, not a video, has no
            frames, is truncated, or an index lies past its end.
    """
    path = check_file(path)
    size = normalize_size(size)
    decoder = resolve_decoder(decoder)
    if decoder != "opencv":
        index = av_decoder.index_packets(path)
        if index is None and decoder == "pyav":
            raise VideoError(
                path, "PyAV cannot open it as a video or cannot index its frames exactly "
                      "(packets without timestamps); decode it with OpenCV"
            )
        if index is not None:
            chosen, info = _pyav_indices(path, index, indices)
            wanted_pts = index.presentation_pts[np.unique(chosen)]
            needed = av_decoder.decode_plan(index, wanted_pts)
            if decoder == "pyav" or pyav_pays_off(index, wanted_pts, needed):
                frames = _read_frames_pyav(path, index, chosen, wanted_pts, needed, info, size)
                return frames, chosen, info
    return _read_frames_opencv(path, indices, size)


def resolve_decoder(decoder=None):
    """The decoder `read_frames` uses: `decoder`, else the `VIDEO_DECODER`
    environment variable, else "auto"."""
    decoder = decoder or os.environ.get("VIDEO_DECODER") or "auto"
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    return decoder


def pyav_pays_off(index, wanted_pts, needed):
    """Whether PyAV is the faster reader for these frames of this file.

    OpenCV decodes every packet up to the last wanted frame and converts
    each frame a little faster (measured in docs/exports.md, Latency), so
    PyAV is chosen when it leaves enough of those packets out: when its
    plan `needed` (`data.av_decoder.decode_plan`) sends at most
    `PYAV_MAX_SHARE` of them, or when the file has B-frames (packets out of
    presentation order), of which the non-reference ones are skipped, and
    at most half of the frames up to the last wanted one are wanted.
    """
    opencv_decodes = int(np.flatnonzero(np.isin(index.pts, wanted_pts))[-1]) + 1
    if needed.sum() <= PYAV_MAX_SHARE * opencv_decodes:
        return True
    reordered = bool(np.any(np.diff(index.pts[:opencv_decodes]) < 0))
    return reordered and len(wanted_pts) <= opencv_decodes / 2


def _pyav_indices(path, index, indices):
    """(frame indices, VideoInfo) of a `read_frames` call on a file's
    packet index, after the checks `read_frames` promises."""
    shown = int(index.shown.sum())
    if shown == 0:
        raise VideoError(path, "the video has no frames")
    reported = index.header_frames
    if reported and reported - shown > max(1, int(MAX_SHORTFALL_FRACTION * reported)):
        raise VideoError(
            path, f"truncated or corrupt: the header reports {reported} frames "
                  f"but the file holds {shown}"
        )
    chosen = np.asarray(indices(shown) if callable(indices) else indices, np.int64).reshape(-1)
    _check_indices(path, chosen)
    if chosen.max() >= shown:
        raise VideoError(path, f"frame index {int(chosen.max())} is past the end ({shown} frames decode)")
    return chosen, VideoInfo(path, shown, index.fps, index.width, index.height)


def _read_frames_pyav(path, index, chosen, wanted_pts, needed, info, size):
    """The frames at `chosen` (timestamps `wanted_pts`, decode plan
    `needed`) through `data.av_decoder`."""
    presentation = index.presentation_pts
    frames = av_decoder.decode_frames(
        path, index, wanted_pts, lambda frame: convert_frame(av_decoder.bgr(frame), size),
        needed=needed,
    )
    missing = [int(np.searchsorted(presentation, pts)) for pts in wanted_pts
               if int(pts) not in frames]
    if missing:
        raise VideoError(
            path, f"truncated or corrupt: frame {missing[0]} of {info.frame_count} does not decode"
        )
    return np.stack([frames[int(presentation[i])] for i in chosen])


def _check_indices(path, chosen):
    if chosen.size == 0:
        raise ValueError(f"{path}: no frame indices to read")
    if chosen.min() < 0:
        raise ValueError(f"{path}: negative frame index {int(chosen.min())}")


def _read_frames_opencv(path, indices, size):
    """`read_frames` through OpenCV: every frame up to the last wanted one
    is decoded, the wanted ones converted."""
    info = probe_video(path)
    make_indices = indices if callable(indices) else (lambda _count: indices)

    for attempt in range(2):
        chosen = np.asarray(make_indices(info.frame_count), dtype=np.int64).reshape(-1)
        _check_indices(path, chosen)
        wanted = np.unique(chosen)
        frames, read = _decode_at(path, wanted, size)
        if len(frames) == len(wanted):
            clip = np.stack([frames[int(index)] for index in chosen])
            return clip, chosen, info
        # The stream ended before the last index asked for.
        if read == 0:
            raise VideoError(path, "no frame could be decoded (corrupt or zero-frame video)")
        shortfall = info.frame_count - read
        if shortfall > max(1, int(MAX_SHORTFALL_FRACTION * info.frame_count)) or attempt == 1:
            raise VideoError(
                path,
                f"truncated or corrupt: the header reports {info.frame_count} frames "
                f"but decoding stops after {read}",
            )
        if not callable(indices):
            raise VideoError(
                path, f"frame index {int(wanted[-1])} is past the end ({read} frames decode)"
            )
        # An inexact header: sample again over the frames that do decode.
        info = dataclasses.replace(info, frame_count=read)


def read_clip(path, num_frames=DEFAULT_NUM_FRAMES, size=DEFAULT_SIZE, return_info=False,
              decoder=None):
    """`num_frames` frames sampled uniformly over the video, resized, RGB.

    Args:
        path: the video file (.mp4, .avi, .mov, .mkv, .webm or anything else
            FFmpeg can read).
        num_frames: frames in the clip (default 64); a shorter video
            repeats frames (see `sample_frame_indices`).
        size: (height, width) of the output, default 256x256, or one int.
        return_info: also return the `VideoInfo`.
        decoder: see `read_frames`.

    Returns:
        uint8 [num_frames, H, W, 3], or (clip, info) with `return_info`.

    Raises:
        VideoError: a file that cannot be read as a video (see module doc).

    Example:

    >>> import tempfile
    >>> path = write_video(os.path.join(tempfile.mkdtemp(), "clip.mp4"),
    ...                    np.zeros((20, 48, 64, 3), np.uint8))
    >>> read_clip(path, num_frames=8, size=(64, 80)).shape
    (8, 64, 80, 3)
    """
    clip, _, info = read_frames(
        path, lambda count: sample_frame_indices(count, num_frames), size, decoder
    )
    return (clip, info) if return_info else clip


def video_clip_dataset(
    paths,
    labels,
    num_frames=DEFAULT_NUM_FRAMES,
    size=DEFAULT_SIZE,
    num_parallel_calls=None,
    on_error="skip",
    deterministic=None,
    order=None,
):
    """A tf.data pipeline of decoded clips: files in, (clip, label) out.

    Only the paths are held in memory; each video is decoded when the
    pipeline reaches it, by `read_clip` run through `tf.numpy_function` in
    `num_parallel_calls` parallel calls (OpenCV releases the GIL while it
    decodes). Elements are unbatched; batching, shuffling and augmentation
    are the caller's.

    Args:
        paths: video file paths.
        labels: integer class ids, one per path.
        num_frames: frames per clip (T).
        size: (height, width) of the frames, or one int.
        num_parallel_calls: parallel decodes; `None` means
            `tf.data.AUTOTUNE`.
        on_error: what a file that cannot be decoded does to the stream:
            "skip" (default) leaves it out and logs a warning naming the
            file and the problem; "fail" ends the stream there, and
            `check_decoding()` then raises the file's `VideoError`.
        deterministic: passed to `Dataset.map`; `None` follows the
            dataset options (deterministic by default).
        order: optional int64 tensor, the order in which to read the files
            (e.g. `data.pipeline.epoch_order`); default as given.

    Returns:
        A `tf.data.Dataset` of (uint8 [T, H, W, 3], int64 scalar).

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> paths = [write_video(os.path.join(folder, name), np.zeros((10, 32, 32, 3), np.uint8))
    ...          for name in ("a.mp4", "b.avi")]
    >>> dataset = video_clip_dataset(paths, [0, 1], num_frames=8, size=64)
    >>> clip, label = next(iter(dataset))
    >>> clip.shape, clip.dtype, label.dtype
    (TensorShape([8, 64, 64, 3]), tf.uint8, tf.int64)
    """
    import tensorflow as tf

    from data.pipeline import traced_as_written  # TensorFlow: decoding alone needs none

    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    height, width = normalize_size(size)
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    paths = [os.fspath(path) for path in paths]
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(paths) != len(labels):
        raise ValueError(f"got {len(paths)} paths but {len(labels)} labels")
    if num_parallel_calls is None:
        num_parallel_calls = tf.data.AUTOTUNE

    load = _guarded_loader(
        lambda path: read_clip(path, num_frames, (height, width)),
        (num_frames, height, width, 3), on_error,
    )

    all_paths, all_labels = tf.constant(paths, tf.string), tf.constant(labels, tf.int64)
    if order is None:
        dataset = tf.data.Dataset.from_tensor_slices((all_paths, all_labels))
    else:
        dataset = tf.data.Dataset.from_tensor_slices(order).map(traced_as_written(
            lambda index: (tf.gather(all_paths, index), tf.gather(all_labels, index))
        ))
    dataset = dataset.map(load, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    return _decoded(dataset, on_error)


def _decoded(dataset, on_error):
    """`(array, label, ok)` elements -> `(array, label)` of the decoded
    files: an undecodable one is dropped (`"skip"`) or ends the stream
    (`"fail"`, for `check_decoding()` to raise)."""
    from data.pipeline import traced_as_written  # TensorFlow: decoding alone needs none

    decoded = traced_as_written(lambda array, label, ok: ok)
    dataset = dataset.filter(decoded) if on_error == "skip" else dataset.take_while(decoded)
    return dataset.map(traced_as_written(lambda array, label, ok: (array, label)))


def _guarded_loader(read, shape, on_error):
    """A tf.data map function `(path, label) -> (array, label, ok)` that
    runs `read(path)` in Python; an undecodable file gives zeros and
    ok=False, logged as skipped or, with `on_error="fail"`, kept for
    `check_decoding()` to raise."""
    import tensorflow as tf

    from data.pipeline import traced_as_written  # TensorFlow: decoding alone needs none

    empty = np.zeros(shape, np.uint8)

    def decode(path):
        path = path.decode("utf-8") if isinstance(path, bytes) else str(path)
        try:
            return read(path), np.bool_(True)
        except VideoError as error:
            if on_error == "fail":
                _failed_decodes.append(error)
            else:
                logger.warning("skipping %s", error)
            return empty, np.bool_(False)

    def load(path, label):
        array, ok = tf.numpy_function(decode, [path], [tf.uint8, tf.bool], stateful=False)
        array.set_shape(shape)
        ok.set_shape(())
        return array, label, ok

    return traced_as_written(load)

def video_views_dataset(paths, labels, num_frames, size, clips=1, crops=1, on_error="skip"):
    """A tf.data pipeline of test views: files in, (views, label) out.

    Like `video_clip_dataset`, one element per video, decoded when the
    pipeline reaches it, but each element holds the video's `read_views`:
    uint8 [clips * crops, T, H, W, 3]. An undecodable file is skipped with
    a warning, or with `on_error="fail"` ends the stream for
    `check_decoding()` to raise.
    """
    import tensorflow as tf

    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    height, width = normalize_size(size)
    shape = (clips * crops, int(num_frames), height, width, 3)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)

    load = _guarded_loader(
        lambda path: read_views(path, num_frames, (height, width), clips, crops), shape, on_error
    )

    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant([os.fspath(path) for path in paths], tf.string), tf.constant(labels))
    ).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return _decoded(dataset, on_error)


# VideoErrors of `on_error="fail"` streams, raised by `check_decoding`.
_failed_decodes = []


def check_decoding():
    """Raises the first `VideoError` of a `video_clip_dataset(on_error="fail")`
    stream since the last call.

    An error raised inside a tf.data function reaches the caller wrapped in
    a TensorFlow error, after TensorFlow has logged its whole traceback; so
    a failing video instead ends the stream where it stands, and whoever
    consumes the stream (the training engine after every batch, evaluation
    after its loop) calls this to raise the video's own one-line error.
    """
    if _failed_decodes:
        error = _failed_decodes[0]
        _failed_decodes.clear()
        raise error


def forget_decoding_errors():
    """Drops errors recorded by streams no longer read (a stream decodes
    ahead in parallel, so a failed file may be recorded again after its
    error was raised); consumers call this before reading a new stream."""
    _failed_decodes.clear()


__all__ = [
    "DEFAULT_NUM_FRAMES",
    "DEFAULT_SIZE",
    "VIDEO_EXTENSIONS",
    "VideoError",
    "VideoInfo",
    "DECODERS",
    "check_decoding",
    "check_file",
    "crop_corners",
    "forget_decoding_errors",
    "is_video_file",
    "normalize_size",
    "probe_video",
    "pyav_pays_off",
    "read_clip",
    "read_frames",
    "read_views",
    "resolve_decoder",
    "sample_frame_indices",
    "sample_view_indices",
    "video_clip_dataset",
    "video_views_dataset",
    "write_video",
]
