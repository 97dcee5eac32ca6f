"""Opening every video in a process of its own, with a time limit.

A decoder that crashes (a segmentation fault, an abort inside FFmpeg) or
hangs on one file must cost that file only. `probe_videos` therefore runs
`inspect_video` for each file in a separate child process and reports a
child that dies or outlives `timeout` as a broken file.

The children come from the "forkserver" start method (a fresh interpreter
that has imported this module, cv2 and NumPy once, forked for each file;
"spawn" where there is no forkserver), never from a fork of the caller:
they hold no TensorFlow, no open HDF5 files and no threads of the caller.

Why not `multiprocessing.Pool`: when one of its workers dies, the task that
worker held is lost without a word and its result never arrives (the
caller waits out its timeout), and `concurrent.futures.ProcessPoolExecutor`
marks every pending task broken. Here a slot runs one file per child,
`jobs` slots at a time, and each child's end is seen at once: a result, a
death by signal, or the deadline.

`DATA_CHECK_ABORT_ON`: when this environment variable names a file (its
base name or full path), the child that opens it calls `os.abort()` before
decoding, as a crashing decoder would; the tests use it to plant a crash.

Example:

>>> import tempfile
>>> from data.video import write_video
>>> folder = tempfile.mkdtemp()
>>> path = write_video(os.path.join(folder, "a.avi"), np.zeros((6, 16, 16, 3), np.uint8), fps=6)
>>> empty = os.path.join(folder, "b.mp4"); open(empty, "w").close()
>>> results = probe_videos([path, empty], full=False, jobs=1)
>>> results[0]["frame_count"], results[0]["duration"], results[1]["problem"]
(6, 1.0, 'empty file (0 bytes)')
"""

import hashlib
import multiprocessing
import multiprocessing.connection
import os
import time

import cv2
import numpy as np

from data import video

ABORT_ENV = "DATA_CHECK_ABORT_ON"
# Frames whose 8x8 average hash makes a video's fingerprint.
HASH_FRAMES = 4
HASH_SIZE = 8
DEFAULT_TIMEOUT = 120.0


def average_hash(frame_bgr, size=HASH_SIZE):
    """A frame's `size` x `size` average hash and grey level: the frame in
    grey, shrunk by area averaging, each cell compared with the mean.

    Returns:
        (bool [size * size], mean grey level in 0..255).

    Example:

    >>> frame = np.zeros((16, 16, 3), np.uint8); frame[:, 8:] = 255
    >>> bits, grey = average_hash(frame, 2)
    >>> bits.tolist(), grey
    ([False, True, False, True], 127.5)
    """
    grey = cv2.cvtColor(np.ascontiguousarray(frame_bgr), cv2.COLOR_BGR2GRAY)
    cells = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    mean = float(cells.mean())
    return (cells > mean).reshape(-1), mean


def file_digest(path, chunk=1 << 20):
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _channel_statistics(frame_bgr):
    """Per-channel mean and standard deviation (R, G, B) of a frame, and its
    colourfulness: the mean over pixels of max - min channel (0 for a grey
    frame, where every pixel has R = G = B; equal channel means alone do not
    make a frame grey)."""
    small = cv2.resize(frame_bgr, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    rgb = small[..., ::-1].reshape(-1, 3)
    return rgb.mean(axis=0), rgb.std(axis=0), float(np.ptp(rgb, axis=1).mean())


def inspect_video(path, full=True):
    """What one video file holds, as plain data; runs in a child process.

    Args:
        path: the video file.
        full: decode every frame (to count them and find truncation), hash
            the file's bytes and fingerprint `HASH_FRAMES` frames spread
            over the video; False reads the header and the first frame only.

    Returns:
        A dict: "ok" (bool), "problem" (why not ok, else None),
        "frame_count" (the header's count), "fps", "width", "height",
        "duration" (seconds, 0 when the rate is unknown), "channels" (of
        the first decoded frame); with `full` also "decoded" (frames that
        decode), "sha256", "hash" (hex of the fingerprint's bits), "grey"
        (mean grey level of each fingerprint frame) and "channel_mean" /
        "channel_std" (R, G, B over the fingerprint frames) and
        "colourfulness" (mean max - min channel of their pixels).
    """
    path = os.fspath(path)
    target = os.environ.get(ABORT_ENV)
    if target and target in (path, os.path.basename(path)):
        os.abort()
    try:
        capture = video._open(path)
    except video.VideoError as error:
        return {"ok": False, "problem": error.problem}
    still = video.still_image_problem(capture)
    if still is not None:
        capture.release()
        return {"ok": False, "problem": still}
    try:
        info = video._header(capture, path)
        result = {
            "ok": True, "problem": None, "frame_count": info.frame_count,
            "fps": round(info.fps, 3), "width": info.width, "height": info.height,
            "duration": round(info.duration, 3),
        }
        if full:
            _decode_all(capture, info, result)
        else:
            ok, frame = capture.read()
            if not ok or frame is None:
                result.update(ok=False, problem="no frame could be decoded")
            else:
                result["channels"] = 1 if frame.ndim == 2 else int(frame.shape[2])
    finally:
        capture.release()
    if full and result["ok"]:
        result["sha256"] = file_digest(path)
    return result


def _decode_all(capture, info, result):
    """Decodes every frame; fills in the counts, the fingerprint and the
    channel statistics, and marks a truncated file as not ok (the rule of
    `data.video`: more than `MAX_SHORTFALL_FRACTION` short of the header)."""
    known = info.frame_count > 0
    wanted = None
    if known:
        wanted = set(video.sample_frame_indices(info.frame_count, HASH_FRAMES).tolist())
    samples = {}
    decoded = 0
    while capture.grab():
        if wanted is None or decoded in wanted:
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                break
            if decoded == 0:
                result["channels"] = 1 if frame.ndim == 2 else int(frame.shape[2])
            frame = video.convert_frame(frame, frame.shape[:2])[..., ::-1]  # BGR, 3 channels
            bits, grey = average_hash(frame)
            samples[decoded] = (bits, grey, *_channel_statistics(frame))
        decoded += 1
    result["decoded"] = decoded
    if decoded == 0:
        result.update(ok=False, problem="no frame could be decoded (corrupt or zero-frame video)")
        return
    too_few = video.too_few_frames_problem(decoded)
    if too_few is not None:  # what every reader of the project refuses
        result.update(ok=False, problem=too_few)
        return
    allowed = max(1, int(video.MAX_SHORTFALL_FRACTION * info.frame_count))
    if known and info.frame_count - decoded > allowed:
        result.update(
            ok=False,
            problem=f"truncated or corrupt: the header reports {info.frame_count} frames but "
                    f"decoding stops after {decoded}",
        )
    if not known:
        result["duration"] = round(decoded / info.fps, 3) if info.fps > 0 else 0.0
        positions = video.sample_frame_indices(decoded, HASH_FRAMES).tolist()
    else:
        positions = [i for i in sorted(wanted) if i in samples]
        # The fingerprint keeps HASH_FRAMES frames; a short video repeats some.
        positions = [positions[min(int(k), len(positions) - 1)]
                     for k in np.linspace(0, len(positions) - 1, HASH_FRAMES)] if positions else []
    chosen = [samples[i] for i in positions if i in samples]
    if len(chosen) == HASH_FRAMES:
        result["hash"] = np.packbits(np.concatenate([c[0] for c in chosen])).tobytes().hex()
        result["grey"] = [round(c[1], 2) for c in chosen]
    if chosen:
        result["channel_mean"] = np.round(np.mean([c[2] for c in chosen], axis=0), 2).tolist()
        result["channel_std"] = np.round(np.mean([c[3] for c in chosen], axis=0), 2).tolist()
        result["colourfulness"] = round(float(np.mean([c[4] for c in chosen])), 2)


def _child(path, full, connection):
    try:
        result = inspect_video(path, full)
    except Exception as error:  # a bug or an odd file: reported, never raised across
        result = {"ok": False, "problem": f"{type(error).__name__}: {error}"}
    connection.send(result)
    connection.close()


def _context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def probe_videos(paths, full=True, jobs=2, timeout=DEFAULT_TIMEOUT, on_result=None):
    """`inspect_video` of every path, each in its own child process.

    Args:
        paths: video files.
        full: see `inspect_video`.
        jobs: children running at once.
        timeout: seconds a child may take for its file before it is killed
            and the file reported as hanging the decoder.
        on_result: called as `on_result(path, result)` as each file ends
            (progress).

    Returns:
        One result dict per path, in order (see `inspect_video`); a child
        that died gives `{"ok": False, "crashed": True, "problem": ...}`,
        one that ran out of time `{"ok": False, "timed_out": True, ...}`.
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    if not timeout > 0:
        raise ValueError(f"--timeout must be > 0, got {timeout}")
    paths = [os.fspath(path) for path in paths]
    results = [None] * len(paths)
    waiting = list(range(len(paths)))[::-1]
    running = {}  # index -> (process, receiving end, deadline)
    context = _context() if paths else None

    def finish(index, result):
        process, receiving, _ = running.pop(index)
        receiving.close()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
        results[index] = result
        if on_result is not None:
            on_result(paths[index], result)

    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                index = waiting.pop()
                receiving, sending = context.Pipe(duplex=False)
                process = context.Process(target=_child, args=(paths[index], full, sending),
                                          daemon=True)
                process.start()
                sending.close()
                running[index] = (process, receiving, time.monotonic() + timeout)
            soonest = min(deadline for _, _, deadline in running.values())
            handles = [h for process, receiving, _ in running.values()
                       for h in (receiving, process.sentinel)]
            multiprocessing.connection.wait(handles, timeout=max(0.0, soonest - time.monotonic()))
            now = time.monotonic()
            for index, (process, receiving, deadline) in list(running.items()):
                result = _received(receiving)
                if result is not None:
                    finish(index, result)
                elif not process.is_alive():
                    process.join()
                    finish(index, _crashed(process.exitcode))
                elif now >= deadline:
                    process.kill()
                    finish(index, {"ok": False, "timed_out": True,
                                   "problem": f"the decoder took more than {timeout:g} s (killed)"})
    finally:
        for process, receiving, _ in running.values():
            process.kill()
            receiving.close()
    return results


def _received(receiving):
    """The child's result if it has sent one, else None."""
    try:
        if receiving.poll():
            return receiving.recv()
    except (EOFError, OSError):
        return None
    return None


def _crashed(exitcode):
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        how = f"killed by {name}"
    else:
        how = f"exit code {exitcode}"
    return {"ok": False, "crashed": True,
            "problem": f"the decoder crashed on this file ({how})"}


__all__ = ["ABORT_ENV", "average_hash", "file_digest", "inspect_video", "probe_videos"]
