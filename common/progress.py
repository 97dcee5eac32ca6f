"""A one-line progress bar on stderr, for long work in the commands.

Example:

>>> import io
>>> stream = io.StringIO()
>>> progress = Progress(2, stream)
>>> progress.step("a.mp4", "done")
>>> "1/2" in stream.getvalue()
True
"""

import sys
import time


class Progress:
    """A one-line progress bar on stderr (a line per step when not a terminal)."""

    def __init__(self, total, stream=None):
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.started = time.time()
        self.tty = self.stream.isatty()

    def step(self, name, status):
        self.done += 1
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{time.time() - self.started:.0f}s {status} {name}")
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(160))
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def clock(seconds):
    """Seconds as m:ss, or h:mm:ss from an hour on.

    Example:

    >>> clock(75.4), clock(3725)
    ('1:15', '1:02:05')
    """
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class VideoProgress:
    """Where in a video the work is, and the time left, on stderr.

    On a terminal one line is redrawn (at most every `every` seconds);
    otherwise a line is written at every tenth of the video once the work
    has taken `quiet` seconds, so logs stay short and quick work prints
    nothing. The time left assumes the rest goes at the speed so far.

    Args:
        frame_count: frames in the video (the header's count; a position
            past it counts as the end).
        fps: frames per second.
        name: what is being processed (e.g. the file name).
        stream: where to write (default stderr).
        every: seconds between redraws on a terminal.
        quiet: seconds without a line, off a terminal.

    Example:

    >>> import io
    >>> stream = io.StringIO()
    >>> progress = VideoProgress(100, 10.0, "talk.mp4", stream, quiet=0)
    >>> for index in range(100):
    ...     progress.update(index)
    >>> progress.close()
    >>> stream.getvalue().splitlines()[4].split("]")[1].split(",")[0]
    ' 0:05 / 0:10 of talk.mp4 (50%)'
    """

    def __init__(self, frame_count, fps, name="", stream=None, every=0.5, quiet=10.0):
        self.frame_count = max(1, int(frame_count))
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.name = name
        self.stream = stream or sys.stderr
        self.every = every
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.started = time.time()
        self._drawn = 0.0
        self._tenth = 0
        self._position = 0

    def update(self, index):
        """Frame `index` (0-based) is done."""
        self._position = min(int(index) + 1, self.frame_count)
        if self.tty:
            now = time.time()
            if now - self._drawn >= self.every:
                self._drawn = now
                self.stream.write("\r" + self.line()[:160].ljust(160))
                self.stream.flush()
        else:
            tenth = 10 * self._position // self.frame_count
            if tenth > self._tenth and time.time() - self.started >= self.quiet:
                self._tenth = tenth
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def line(self):
        done = self._position / self.frame_count
        width = 24
        filled = int(width * done)
        elapsed = time.time() - self.started
        video_seconds = self._position / self.fps
        speed = video_seconds / elapsed if elapsed > 0 else 0.0
        left = elapsed * (1 - done) / done if done > 0 else 0.0
        return (f"[{'#' * filled}{'.' * (width - filled)}] {clock(video_seconds)} / "
                f"{clock(self.frame_count / self.fps)} of {self.name} ({100 * done:.0f}%), "
                f"{speed:.1f}x real time, {clock(left)} left")

    def close(self):
        """Ends the line on a terminal."""
        if self.tty:
            self.stream.write("\r" + self.line()[:160].ljust(160) + "\n")
            self.stream.flush()
