"""Untrusted video files are decoded once in a separate process first.

OpenCV's FFmpeg can take down the process that decodes a file: a plain
uncompressed 24-bit AVI of 32x24 frames corrupts the heap of OpenCV 4.13
(usually `malloc_consolidate(): invalid chunk size` and SIGABRT, now and
then SIGBUS), and other files make a decoder
loop forever. The page (`train.app`), `train.predict` (one video or a
folder) and `data.extract` therefore hand every file to `check_video`
before they decode it themselves: a decoder process (`python -m
data.decoder_process`, which imports OpenCV and NumPy, never TensorFlow)
opens the file, decodes every frame as `data.stream.FrameStream` does and
answers with what it found. A crash of that process, or no answer within
the time limit, becomes a `VideoError` ("the decoder crashed on this
file"), the process is started again for the next file, and the caller
goes on with its other files.

The decoder process is started on first use and kept for the caller's
life (one start per command or page, not one per file); files are checked
one at a time.

Also refused here, as not videos: a still image renamed to a video
extension (FFmpeg opens PNG, JPEG, WebP, TIFF and BMP files as one-frame
"videos" at an invented 25 fps) and any file of fewer than
`data.video.MIN_VIDEO_FRAMES` frames.

What this covers: opening the container, reading its header, demuxing and
decoding every frame and converting it to BGR, the steps where a crafted
file reaches FFmpeg's parsers and decoders. What it does not cover: the
caller decodes the file a second time in its own process, so a file that
is changed between the check and that decode, or a decoder that fails only
on a second decode, still reaches the caller; resizing and colour
conversion of decoded frames run in the caller only (they work on arrays,
not on the file). Training pipelines (`data.video.video_clip_dataset`)
decode in process without this check: their files are the user's own data
set, read many times, where a second decode per read would double the
cost of every epoch.

Example:

>>> import os, tempfile
>>> import numpy as np
>>> from data.video import write_video
>>> path = write_video(os.path.join(tempfile.mkdtemp(), "clip.avi"),
...                    np.zeros((6, 24, 32, 3), np.uint8), fps=6)
>>> check_video(path).frame_count
6
"""

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time

from data.video import VideoError, VideoInfo

# The time a check may take: a base plus a share per MB of file (decoding a
# 1080p H.264 file runs at a few hundred frames per second on one core).
TIMEOUT_SECONDS = 60.0
TIMEOUT_SECONDS_PER_MB = 2.0

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DecoderProcess:
    """A long-lived process that decodes files on request.

    Args:
        command: the command line of the decoder process (default: this
            module's `main` in a fresh Python, with the project on its path).
    """

    def __init__(self, command=None):
        self.command = list(command or [sys.executable, "-m", "data.decoder_process"])
        self._process = None
        self._lock = threading.Lock()

    def _start(self):
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [_ROOT] + [path for path in environment.get("PYTHONPATH", "").split(os.pathsep) if path]
        )
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=environment, cwd=_ROOT, bufsize=0,
        )

    def check(self, path, timeout=None):
        """Decodes every frame of `path` in the decoder process.

        Returns:
            The file's `VideoInfo` (its `frame_count` is the number of frames
            that decoded).

        Raises:
            VideoError: the file is not a video, could not be decoded, made
                the decoder crash, or took longer than `timeout` seconds
                (default: `TIMEOUT_SECONDS` plus `TIMEOUT_SECONDS_PER_MB`
                per MB of file).
        """
        path = os.path.abspath(os.fspath(path))
        if timeout is None:
            size = os.path.getsize(path) if os.path.isfile(path) else 0
            timeout = TIMEOUT_SECONDS + TIMEOUT_SECONDS_PER_MB * size / 2**20
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            process = self._process
            try:
                process.stdin.write((json.dumps({"path": path}) + "\n").encode())
                process.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # it died on the way: read_answer sees the end of its output
            answer = _read_line(process.stdout, timeout)
            if answer in (_ENDED, _TIMED_OUT):
                problem = self._stopped(process, timeout, answer is _TIMED_OUT)
                raise VideoError(path, f"could not be decoded: {problem}")
        if not answer.get("ok"):
            raise VideoError(path, answer["problem"])
        return VideoInfo(path, int(answer["frame_count"]), float(answer["fps"]),
                         int(answer["width"]), int(answer["height"]))

    def _stopped(self, process, timeout, timed_out):
        """Ends a decoder that gave no answer; says why it gave none."""
        self._process = None
        if timed_out:
            process.kill()
            process.wait()
            return f"the decoder took longer than {timeout:g} s and was stopped"
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its output but lives on
            process.kill()
            code = process.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the decoder crashed on this file ({name})"
        return f"the decoder crashed on this file (exit code {code})"

    def close(self):
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


_ENDED, _TIMED_OUT = object(), object()


def _read_line(stream, timeout):
    """One JSON line from `stream`; `_ENDED` at its end, `_TIMED_OUT` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return _TIMED_OUT
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return _ENDED
            data += chunk
    return json.loads(data)


_shared = None
_shared_lock = threading.Lock()


def shared_decoder():
    """The decoder process of this process, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DecoderProcess()
            atexit.register(_shared.close)
        return _shared


def check_video(path, timeout=None):
    """Decodes `path` in the shared decoder process (`DecoderProcess.check`)."""
    return shared_decoder().check(path, timeout)


# ---------------------------------------------------------------------------
# The decoder process itself.


def decode_file(path):
    """What the decoder process answers about one file (a JSON-able dict)."""
    from data import video

    try:
        capture = video._open(path)
    except VideoError as error:
        return {"ok": False, "problem": error.problem}
    try:
        header = video._header(capture, path)
        problem = video.still_image_problem(capture)
        if problem:
            return {"ok": False, "problem": problem}
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            count += 1
    finally:
        capture.release()
    if count == 0:
        return {"ok": False, "problem": "no frame could be decoded (corrupt or zero-frame video)"}
    problem = video.too_few_frames_problem(count)
    if problem:
        return {"ok": False, "problem": problem}
    reported = header.frame_count
    if reported and reported - count > max(1, int(video.MAX_SHORTFALL_FRACTION * reported)):
        return {"ok": False, "problem": f"truncated or corrupt: the header reports {reported} "
                                        f"frames but decoding stops after {count}"}
    return {"ok": True, "frame_count": count, "fps": header.fps, "width": header.width,
            "height": header.height}


def serve(decode=decode_file, lines=None, out=None):
    """Answers one JSON line per requested path until its input ends."""
    lines = lines if lines is not None else sys.stdin.buffer
    out = out if out is not None else sys.stdout.buffer
    for line in lines:
        request = json.loads(line)
        try:
            answer = decode(request["path"])
        except Exception as error:  # a decoder error is an answer, not the end
            answer = {"ok": False, "problem": f"could not be decoded ({type(error).__name__}: {error})"}
        out.write((json.dumps(answer) + "\n").encode())
        out.flush()


if __name__ == "__main__":
    # Answers go out on a copy of stdout; anything a library prints to
    # stdout goes to stderr instead, where it cannot garble an answer.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(out=answers)
