"""TensorFlow's native start-up lines, kept off a command's stderr.

Importing TensorFlow 2.21 prints lines from its C++ libraries (oneDNN,
CUDA, CPU features, absl) straight to file descriptor 2, which
`TF_CPP_MIN_LOG_LEVEL` no longer silences; a command's stderr is for its
own messages. `hide_tensorflow_start()` makes the first `import tensorflow`
of the process, and its first look for devices (where CUDA logs a failed
cuInit on a machine without a GPU), run with descriptor 2 pointed at
/dev/null, then restores it: Python's own errors and everything after the
import are unchanged.
It leaves them on when the user asks for them: `TF_CPP_MIN_LOG_LEVEL=0`
(TensorFlow's "log everything") or a command run with `--verbose 2`. Any
other level (the common `TF_CPP_MIN_LOG_LEVEL=3` habit included) hides
them too, since that variable no longer filters these lines.

Example:

>>> hide_tensorflow_start(argv=["--verbose", "2"])
False
"""

import contextlib
import importlib.abc
import os
import sys


@contextlib.contextmanager
def native_stderr_hidden():
    """Points file descriptor 2 at /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on the first `import tensorflow` it imports
    TensorFlow with native stderr hidden, then leaves the import system."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        with native_stderr_hidden():
            import tensorflow  # the import whose output is hidden

            # Looking for devices loads the CUDA platform, which logs its
            # failed cuInit on a machine without a GPU; done here, once.
            tensorflow.config.list_physical_devices()
        return None  # already in sys.modules: the normal import finds it


def hide_tensorflow_start(argv=None):
    """Hides the native lines of the first TensorFlow import of this
    process (see the module doc); returns whether it will."""
    argv = sys.argv[1:] if argv is None else argv
    verbose = any(a == "--verbose=2" for a in argv) or any(
        a == "--verbose" and b == "2" for a, b in zip(argv, argv[1:]))
    asked = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0"
    if asked or verbose or "tensorflow" in sys.modules:
        return False
    if not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    return True
