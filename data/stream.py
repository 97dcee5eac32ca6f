"""Every frame of a video, decoded once, in order.

Prediction needs several views of one video (the model's input, colour
histograms for shots, the frames of a rendered summary); a `FrameStream`
decodes the file once and hands every frame to whoever needs it, instead of
each consumer opening the file again. Frames come out as OpenCV gives them
(BGR, the file's size); `rgb(frame, size)` converts and resizes one the way
`data.video.read_frames` does, so a model sees the same pixels as in
training.

A stream decodes every frame, so it reads with OpenCV: `data.video`'s
PyAV decoder only pays where frames can be left out (see
`data.video.pyav_pays_off`), and for every frame OpenCV converts them a
little faster.

Errors follow `data.video`: a file that is missing, not a video (a still
image, or a file of fewer than `data.video.MIN_VIDEO_FRAMES` frames) or has no
decodable frame raises `VideoError` when the stream is made or iterated;
a stream that ends more than `MAX_SHORTFALL_FRACTION` short of the frame
count in its header is a truncated file and raises `VideoError` at its end.

Example:

>>> import os, tempfile
>>> from data.video import write_video
>>> path = write_video(os.path.join(tempfile.mkdtemp(), "clip.avi"),
...                    np.zeros((12, 24, 32, 3), np.uint8), fps=6)
>>> stream = FrameStream(path)
>>> [index for index, frame in stream][-1], stream.info.frame_count, stream.info.duration
(11, 12, 2.0)
>>> rgb(np.zeros((24, 32, 3), np.uint8), (12, 16)).shape
(12, 16, 3)
"""

import dataclasses

import cv2
import numpy as np  # noqa: F401  (the examples use it)

from data import video


class FrameStream:
    """An iterator of `(frame index, BGR uint8 frame)` over one video file.

    Args:
        path: the video file.

    Attributes:
        info: the `VideoInfo` of the header; once iteration has ended, its
            `frame_count` is the number of frames that decoded.

    Raises:
        VideoError: the file cannot be opened as a video (here), or decodes
            no frame or is truncated (at the end of iteration).
    """

    def __init__(self, path):
        self.path = str(path)
        self._capture = video._open(self.path)
        self.info = video._header(self._capture, self.path)
        problem = video.still_image_problem(self._capture)
        if problem:
            self._capture.release()
            raise video.VideoError(self.path, problem)
        self._header_count = self.info.frame_count
        self._started = False

    @property
    def fps(self):
        """Frames per second from the header, 0.0 when the file gives none."""
        return self.info.fps

    def __iter__(self):
        if self._started:
            raise RuntimeError(f"{self.path}: a FrameStream can be iterated once")
        self._started = True
        read = 0
        try:
            while True:
                ok, frame = self._capture.read()
                if not ok or frame is None:
                    break
                yield read, frame
                read += 1
        finally:
            self._capture.release()
        if read == 0:
            raise video.VideoError(self.path, "no frame could be decoded (corrupt or zero-frame video)")
        problem = video.too_few_frames_problem(read)
        if problem:
            raise video.VideoError(self.path, problem)
        reported = self._header_count
        if reported and reported - read > max(1, int(video.MAX_SHORTFALL_FRACTION * reported)):
            raise video.VideoError(
                self.path,
                f"truncated or corrupt: the header reports {reported} frames but decoding "
                f"stops after {read}",
            )
        self.info = dataclasses.replace(self.info, frame_count=read)

    def close(self):
        self._capture.release()


_END = object()


def decode_ahead(stream, depth=8, prepare=None):
    """The `(index, frame)` pairs of `stream`, decoded in a background
    thread up to `depth` frames ahead of the consumer; with `prepare`,
    `(index, frame, prepare(index, frame))`, the preparation done in a
    second thread, between the two.

    OpenCV releases the interpreter lock while it decodes and while it
    resizes or encodes, so on two cores the consumer's work on one frame
    runs while the next ones decode and are prepared (work on every frame
    that the consumer need not wait for): whichever of the three has work
    keeps a core busy. An error of the stream (a truncated file) or of
    `prepare` is raised to the consumer where it would have been; a
    consumer that stops early stops the threads. Memory: `depth` decoded
    frames per thread.

    Example:

    >>> import os, tempfile
    >>> from data.video import write_video
    >>> path = write_video(os.path.join(tempfile.mkdtemp(), "clip.avi"),
    ...                    np.zeros((12, 24, 32, 3), np.uint8), fps=6)
    >>> stream = FrameStream(path)
    >>> [index for index, _ in decode_ahead(stream, depth=2)] == list(range(12))
    True
    >>> stream.info.frame_count
    12
    >>> [size for _, _, size in decode_ahead(FrameStream(path), prepare=lambda i, f: f.size)][:2]
    [2304, 2304]
    """
    frames = _in_thread(iter(stream), depth)
    if prepare is None:
        return frames

    def prepared():
        try:
            for index, frame in frames:
                yield index, frame, prepare(index, frame)
        finally:
            frames.close()

    return _in_thread(prepared(), depth)


def _in_thread(items, depth):
    """Iterates the generator `items` in a thread of its own, `depth` items
    ahead of the consumer; its errors are raised to the consumer; a
    consumer that stops (closes it) ends the thread and closes `items`."""
    import queue
    import threading

    waiting = queue.Queue(maxsize=max(1, int(depth)))
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run():
        try:
            for item in items:
                if not put((None, item)):
                    return
            put((_END, None))
        except BaseException as error:  # raised again in the consumer
            put((_END, error))
        finally:
            items.close()

    thread = threading.Thread(target=run, name="decode-ahead", daemon=True)
    thread.start()

    def consume():
        try:
            while True:
                kind, item = waiting.get()
                if kind is _END:
                    if item is not None:
                        raise item
                    return
                yield item
        finally:
            stop.set()
            thread.join()

    return consume()


def rgb(frame, size):
    """One decoded frame as RGB uint8 at `size` (height, width)."""
    return video.convert_frame(frame, video.normalize_size(size))


def bgr(frame, size):
    """One decoded frame as BGR uint8 at `size` (height, width), resized as
    `rgb` resizes it: for frames that go back to OpenCV (JPEG, video),
    which would otherwise convert to RGB and back.

    Example:

    >>> frame = np.zeros((24, 32, 3), np.uint8); frame[..., 0] = 200   # blue in BGR
    >>> small = bgr(frame, (12, 16))
    >>> small.shape, int(small[0, 0, 0]), bool((rgb(frame, (12, 16)) == small[..., ::-1]).all())
    ((12, 16, 3), 200, True)
    """
    height, width = video.normalize_size(size)
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.shape[:2] == (height, width):
        return frame
    shrinking = height * width < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def short_side_size(height, width, short_side):
    """(height, width) scaled so the short side is at most `short_side`,
    both even (what video encoders need), never upscaled.

    Example:

    >>> short_side_size(720, 1280, 360), short_side_size(101, 75, 360)
    ((360, 640), (100, 74))
    """
    scale = min(1.0, short_side / max(1, min(height, width)))
    return (max(2, int(round(height * scale)) // 2 * 2), max(2, int(round(width * scale)) // 2 * 2))


__all__ = ["FrameStream", "bgr", "decode_ahead", "rgb", "short_side_size"]
