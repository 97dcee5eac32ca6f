"""Files are written under a temporary name and renamed into place.

A process killed mid-write leaves at most a `.tmp-*` file beside the
target, never a target that looks complete but is not. The data is flushed
to disk before the rename and the folder after it, so the rename survives
a power loss too, and the file gets the mode a plain `open()` would give.

Example:

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> path = os.path.join(folder, "result.json")
>>> write_json(path, {"accuracy": 0.5})
>>> read_json(path)
{'accuracy': 0.5}
>>> sorted(os.listdir(folder))
['result.json']
"""

import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a fresh temporary path beside `path`; renames it onto `path`
    when the block succeeds and removes it when the block fails.

    The temporary name keeps `path`'s file name as its ending, so writers
    that choose a format by extension (Keras, matplotlib, h5py) still do.
    Each call gets its own name, so concurrent writers never share one.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{os.path.basename(path)}",
                                         dir=directory)
    os.close(handle)
    try:
        yield temporary
        _fsync_file(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    fsync_directory(directory)


def write_atomic(path, text):
    """Writes `text` to `path` through `atomic_path`."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as file:
            file.write(text)


def write_json(path, value):
    """Writes `value` as indented, key-sorted JSON through `atomic_path`.

    NumPy arrays and scalars are written as lists and numbers.
    """
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True, default=_jsonable) + "\n")


def read_json(path, what="file"):
    """Reads a JSON file; a file that is not valid JSON is a `ValueError`
    naming it (`what` says what the file should be)."""
    with open(path) as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not a valid JSON {what} ({error})") from None


def save_figure(figure, path):
    """Writes a matplotlib figure as PNG through `atomic_path` and closes it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        try:
            figure.savefig(temporary, format="png", dpi=100)
        finally:
            plt.close(figure)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fsync_directory(directory):
    """Flushes a folder's entries (a rename in it) to disk, where supported."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_file(path):
    if os.path.isfile(path):
        with open(path, "rb+") as file:
            os.fsync(file.fileno())


def _umask():
    # Read without changing it where the kernel shows it: os.umask() can
    # only be read by setting it, which races with other threads.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def jsonable(value):
    """`value` as plain JSON data: tuples, sets and NumPy values become
    lists and numbers, as `write_json` writes them.

    Example:

    >>> import numpy as np
    >>> jsonable({"shape": (2, 3), "rate": np.float32(0.5)})
    {'shape': [2, 3], 'rate': 0.5}
    """
    return json.loads(json.dumps(value, default=_jsonable))


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
