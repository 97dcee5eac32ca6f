"""Untrusted video files are decoded in a separate process.

OpenCV's FFmpeg can take down the process that decodes a file: a plain
uncompressed 24-bit AVI of 32x24 frames corrupts the heap of OpenCV 4.13
(usually `malloc_consolidate(): invalid chunk size` and SIGABRT, now and
then SIGBUS), and other files make a decoder loop forever. Every file the
page (`train.app`), `train.predict` (one video or a folder) and
`data.extract` read is therefore decoded in a decoder process first
(`python -m data.decoder_process`, which imports OpenCV, PyAV and NumPy,
never TensorFlow). A crash of that process, or no answer within the time
limit, becomes a `VideoError` ("the decoder crashed on this file"), the
process is started again for the next file, and the caller goes on with
its other files.

Two requests:

- `check_video(path)` decodes every frame as `data.stream.FrameStream`
  does (OpenCV, frame by frame) and answers with what it found. Prediction
  asks this before it streams the video itself: it needs every frame, in
  order, often more than fit in memory at once.
- `read_frames(path, indices, size)` is `data.video.read_frames` run in the
  decoder process: the same decoder choice (OpenCV or PyAV) and the same
  frames, sent back as raw bytes. Extraction reads this way, so a file is
  decoded once, in the decoder process only. `indices` is a list of frame
  indices or a `functools.partial` of a module-level function of the frame
  count (the decoder process calls it by name).

The decoder process is started on first use and kept for the caller's
life (one start per command or page, not one per file); files are decoded
one at a time. Answers are JSON and raw pixel bytes, never pickles, so a
decoder process taken over by a crafted file cannot run code in the caller.

Also refused here, as not videos: a still image renamed to a video
extension (FFmpeg opens PNG, JPEG, WebP, TIFF and BMP files as one-frame
"videos" at an invented 25 fps) and any file of fewer than
`data.video.MIN_VIDEO_FRAMES` frames.

What this covers: opening the container, reading its header and packets,
and decoding the frames a caller needs with the decoder it uses, the
steps where a crafted file reaches FFmpeg's parsers and decoders. What it
does not cover: prediction decodes the file a second time in its own
process after `check_video`, so a file that is changed between the check
and that decode, or a decoder that fails only on a second decode, still
reaches it; resizing and colour conversion of decoded frames run in the
caller (they work on arrays, not on the file). Training pipelines
(`data.video.video_clip_dataset`) decode in process without this check:
their files are the user's own data set, read every epoch.

Example:

>>> import os, tempfile
>>> import numpy as np
>>> from data.video import write_video
>>> path = write_video(os.path.join(tempfile.mkdtemp(), "clip.avi"),
...                    np.zeros((6, 24, 32, 3), np.uint8), fps=6)
>>> check_video(path).frame_count
6
>>> frames, chosen, info = read_frames(path, [0, 5], (12, 16))
>>> frames.shape, chosen.tolist(), info.frame_count
((2, 12, 16, 3), [0, 5], 6)
"""

import atexit
import functools
import importlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time

import numpy as np

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
        answer, _ = self._request(path, {"op": "check", "path": path}, timeout)
        return _info(path, answer)

    def read_frames(self, path, indices, size, decoder=None, timeout=None):
        """`data.video.read_frames(path, indices, size, decoder)` run in the
        decoder process; same arguments and result, the same errors, and
        those of `check` for a crash or a hang. `indices` is a list of
        frame indices or a `functools.partial` of a module-level function
        of the frame count."""
        from data.video import normalize_size

        path = os.path.abspath(os.fspath(path))
        request = {"op": "read", "path": path, "size": list(normalize_size(size)),
                   "decoder": decoder, "indices": _describe_indices(indices)}
        answer, payload = self._request(path, request, timeout)
        frames = np.frombuffer(payload, np.uint8).reshape(answer["shape"])
        return frames, np.asarray(answer["chosen"], np.int64), _info(path, answer)

    def _request(self, path, request, timeout):
        """(JSON answer, raw bytes that follow it) of one request."""
        if timeout is None:
            size = os.path.getsize(path) if os.path.isfile(path) else 0
            timeout = TIMEOUT_SECONDS + TIMEOUT_SECONDS_PER_MB * size / 2**20
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            process = self._process
            try:
                process.stdin.write((json.dumps(request) + "\n").encode())
                process.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # it died on the way: the answer's end says so
            reader = _Reader(process.stdout, time.monotonic() + timeout)
            answer = reader.line()
            payload = b""
            if isinstance(answer, dict) and answer.get("bytes"):
                payload = reader.exactly(int(answer["bytes"]))
                if payload in (_ENDED, _TIMED_OUT):
                    answer = payload
            if answer in (_ENDED, _TIMED_OUT):
                problem = self._stopped(process, timeout, answer is _TIMED_OUT)
                raise VideoError(path, f"could not be decoded: {problem}")
        if not answer.get("ok"):
            if answer.get("user_error"):
                raise ValueError(answer["problem"])
            raise VideoError(path, answer["problem"])
        return answer, payload

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


class _Reader:
    """Reads a JSON line and raw bytes from the decoder's output, giving up
    at `deadline` (`time.monotonic()`): `_ENDED` at the end of the output,
    `_TIMED_OUT` after the deadline."""

    def __init__(self, stream, deadline):
        self.stream = stream
        self.deadline = deadline
        self.buffer = b""

    def _more(self):
        with selectors.DefaultSelector() as selector:
            selector.register(self.stream, selectors.EVENT_READ)
            left = self.deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return _TIMED_OUT
        chunk = os.read(self.stream.fileno(), 1 << 20)
        if not chunk:
            return _ENDED
        self.buffer += chunk
        return None

    def line(self):
        while b"\n" not in self.buffer:
            stopped = self._more()
            if stopped is not None:
                return stopped
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def exactly(self, count):
        parts, have = [self.buffer], len(self.buffer)
        self.buffer = b""
        while have < count:
            stopped = self._more()
            if stopped is not None:
                return stopped
            parts.append(self.buffer)
            have += len(self.buffer)
            self.buffer = b""
        data = b"".join(parts)
        self.buffer = data[count:]
        return data[:count]


def _info(path, answer):
    return VideoInfo(path, int(answer["frame_count"]), float(answer["fps"]),
                     int(answer["width"]), int(answer["height"]))


def _describe_indices(indices):
    """`indices` as the decoder process can rebuild them: a list, or the
    module, name and keyword arguments of a `functools.partial`."""
    if isinstance(indices, functools.partial):
        function = indices.func
        if indices.args or "<" in function.__qualname__:
            raise TypeError("indices: a partial of a module-level function, with keyword "
                            "arguments only")
        return {"module": function.__module__, "function": function.__qualname__,
                "kwargs": {key: _plain(value) for key, value in indices.keywords.items()}}
    if callable(indices):
        raise TypeError("indices: a list of frame indices, or a functools.partial of a "
                        "module-level function of the frame count")
    return [int(index) for index in np.asarray(indices).reshape(-1)]


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else value


def _rebuild_indices(described):
    if isinstance(described, list):
        return described
    if not described["module"].startswith("data."):
        raise ValueError(f"indices from {described['module']}: only data.* functions are called")
    function = getattr(importlib.import_module(described["module"]), described["function"])
    return functools.partial(function, **described["kwargs"])


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


def read_frames(path, indices, size, decoder=None, timeout=None):
    """`data.video.read_frames` in the shared decoder process
    (`DecoderProcess.read_frames`)."""
    return shared_decoder().read_frames(path, indices, size, decoder, timeout)


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


def read_file(request):
    """(answer, raw frame bytes) of a "read" request: `data.video.read_frames`
    on a file that is not a still image, with at least two frames."""
    from data import video

    path = request["path"]
    try:
        capture = video._open(path)
    except VideoError as error:
        return {"ok": False, "problem": error.problem}, b""
    try:
        problem = video.still_image_problem(capture)
    finally:
        capture.release()
    if problem is None:
        try:
            frames, chosen, info = video.read_frames(
                path, _rebuild_indices(request["indices"]), tuple(request["size"]),
                request.get("decoder"))
        except VideoError as error:
            return {"ok": False, "problem": error.problem}, b""
        except ValueError as error:  # bad indices: the caller's error
            return {"ok": False, "problem": str(error), "user_error": True}, b""
        problem = video.too_few_frames_problem(info.frame_count)
    if problem:
        return {"ok": False, "problem": problem}, b""
    data = np.ascontiguousarray(frames, np.uint8).tobytes()
    return {"ok": True, "shape": list(frames.shape), "chosen": chosen.tolist(),
            "frame_count": info.frame_count, "fps": info.fps, "width": info.width,
            "height": info.height, "bytes": len(data)}, data


def serve(decode=decode_file, lines=None, out=None, read=read_file):
    """Answers each request (one JSON line) until its input ends: a JSON
    line, and for a "read" the frames' raw bytes after it."""
    lines = lines if lines is not None else sys.stdin.buffer
    out = out if out is not None else sys.stdout.buffer
    for line in lines:
        request = json.loads(line)
        data = b""
        try:
            if request.get("op") == "read":
                answer, data = read(request)
            else:
                answer = decode(request["path"])
        except Exception as error:  # a decoder error is an answer, not the end
            answer = {"ok": False, "problem": f"could not be decoded ({type(error).__name__}: {error})"}
            data = b""
        out.write((json.dumps(answer) + "\n").encode())
        if data:
            out.write(data)
        out.flush()


if __name__ == "__main__":
    # Answers go out on a copy of stdout; anything a library prints to
    # stdout goes to stderr instead, where it cannot garble an answer.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(out=answers)
