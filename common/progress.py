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
