"""Videos that browsers play, written for results.

VP9 in MP4 plays in every current browser. Where PyAV is installed it
writes the VP9 (libvpx's real-time mode, speed 8, rows in parallel,
constant quality 32): about 7 ms a 640x360 frame on one core, where
OpenCV's writer, whose encoder settings cannot be set, takes 25 to 30 ms,
which for the summary of an hour-long video (15% of it) was longer than
decoding the hour. Without PyAV, OpenCV's VP9 encoder writes it; when this
OpenCV build has none either, MPEG-4 Part 2 is written instead (it plays
in desktop players, not in browsers) and the result says so.
"""

import os

import numpy as np

from common.files import atomic_path
from data.video import write_video

BROWSER_FOURCC = "vp09"
FALLBACK_FOURCC = "mp4v"
VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "32", "b": "0"}


def write_browser_video(path, frames, fps, what="video"):
    """Writes RGB uint8 frames (a sequence, or a callable returning an
    iterator so that they can be produced twice) to `path`; returns
    `(codec, note)`, the note saying why the file may not play in a
    browser (None when it does)."""
    produce = frames if callable(frames) else (lambda: iter(frames))
    try:
        if _write_vp9_with_pyav(path, produce(), fps):
            return BROWSER_FOURCC, None
    except ImportError:
        pass
    try:
        write_video(path, produce(), fps=fps, fourcc=BROWSER_FOURCC)
        return BROWSER_FOURCC, None
    except RuntimeError:
        write_video(path, produce(), fps=fps, fourcc=FALLBACK_FOURCC)
        return FALLBACK_FOURCC, (f"this OpenCV has no VP9 encoder; the {what} is MPEG-4 "
                                 "Part 2, which browsers do not play")


def _write_vp9_with_pyav(path, frames, fps):
    """VP9 in MP4 through PyAV, one frame at a time, atomically; False
    (nothing written) when its FFmpeg has no libvpx, or for frames of an
    odd side, which 4:2:0 cannot hold.

    Raises:
        ImportError: PyAV is not installed.
    """
    import av  # optional: the faster encoder (see the module docstring)

    if "libvpx-vp9" not in av.codecs_available:
        return False
    frames = iter(frames)
    first = next(frames, None)
    if first is None or np.ndim(first) != 3 or np.shape(first)[-1] != 3:
        raise ValueError(f"{path}: expected RGB frames [T, H, W, 3], got {np.shape(first)}")
    height, width = np.shape(first)[:2]
    if height % 2 or width % 2:
        return False
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as temporary:
        with av.open(temporary, "w", format="mp4") as container:
            stream = container.add_stream("libvpx-vp9", rate=_rate(fps), options=VP9_OPTIONS)
            stream.width, stream.height, stream.pix_fmt = int(width), int(height), "yuv420p"
            stream.thread_count = min(4, os.cpu_count() or 1)
            for frame in _chain(first, frames):
                image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, np.uint8),
                                                   format="rgb24")
                container.mux(stream.encode(image))
            container.mux(stream.encode())
    return True


def _chain(first, rest):
    yield first
    yield from rest


def _rate(fps):
    """The frame rate as a fraction PyAV takes (29.97 -> 30000/1001)."""
    from fractions import Fraction

    return Fraction(float(fps)).limit_denominator(1001)
