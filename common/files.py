"""Files and folders are written under a temporary name and renamed into place.

A process killed mid-write leaves at most a `.tmp-*` file or folder beside
the target, never a target that looks complete but is not. The data is
flushed to disk before the rename and the parent folder after it, so the
rename survives a power loss too, and the result gets the mode a plain
`open()` or `os.mkdir()` would give. `atomic_path` writes a file,
`atomic_folder` a folder, and `rename_into_place` is the step both end
with, for a writer that keeps its own temporary name (a resumable
`.partial` file).

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
import errno
import json
import os
import shutil
import tempfile
import time


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
        os.chmod(temporary, 0o666 & ~_umask())
        rename_into_place(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


@contextlib.contextmanager
def atomic_folder(path, replace=False, taken=None):
    """Yields a fresh, empty, hidden temporary folder beside `path`; renames
    it onto `path` when the block succeeds and removes it when it fails.

    Every file and folder inside is flushed to disk before the rename, and
    the parent folder after it, as `atomic_path` does for one file; the
    folder gets the mode a plain `os.mkdir` would give (the temporary one
    is private while it is written).

    Args:
        path: the folder to create. Its parent must exist.
        replace: an existing folder at `path` is refused (`FileExistsError`,
            before the block runs and again before the rename) unless this
            is set; then it is swapped out after the block succeeded and
            removed. Between the two renames `path` is briefly absent,
            never half written.
        taken: without `replace`, what to do when another writer created
            `path` while the block ran: a function of (path, temporary
            folder) that returns another path to rename onto (and may
            update what the folder holds to match), or None to refuse.

    The temporary folder is named `.tmp-p<process id>-*`, so that
    `remove_stale_folders` can tell the ones of a process that is gone.

    Example:

    >>> import tempfile
    >>> parent = tempfile.mkdtemp()
    >>> with atomic_folder(os.path.join(parent, "1")) as folder:
    ...     write_json(os.path.join(folder, "report.json"), {"passed": True})
    >>> os.listdir(parent), os.listdir(os.path.join(parent, "1"))
    (['1'], ['report.json'])
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if not replace:
        _refuse_existing(path)
    temporary = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", suffix=f"-{name}",
                                 dir=parent)
    try:
        yield temporary
        os.chmod(temporary, 0o777 & ~_umask())
        if replace and os.path.lexists(path):
            _swap_folder(temporary, path)
            return
        while True:
            try:
                _refuse_existing(path)
                rename_into_place(temporary, path)
                return
            except OSError as error:
                # A folder is never renamed onto one that has files (ENOTEMPTY).
                if taken is None or not os.path.lexists(path):
                    raise
                path = taken(path, temporary)
                if path is None:
                    raise FileExistsError(f"{error.filename or path}: exists; it is not "
                                          "replaced") from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def rename_into_place(temporary, path):
    """Flushes the file or folder `temporary` to disk, renames it onto
    `path` and flushes the folder that holds `path`.

    The last step of `atomic_path` and `atomic_folder`, for writers that
    keep their own temporary name (an extraction's resumable `.partial`
    file). A folder is flushed with everything inside it. The flushes come
    first so that after a power loss `path` is either the old entry or the
    complete new one.
    """
    temporary, path = os.fspath(temporary), os.fspath(path)
    if os.path.isdir(temporary):
        _fsync_tree(temporary)
    else:
        _fsync_file(temporary)
    os.replace(temporary, path)
    fsync_directory(os.path.dirname(os.path.abspath(path)))


# atomic_folder's temporary folders: `.tmp-p<process id>-*`.
STAGING_PREFIX = ".tmp-p"


def remove_stale_folders(parent, max_age=24 * 3600):
    """Removes the temporary folders `atomic_folder` left in `parent`: those
    of a process that is gone (a killed writer), and unnamed older `.tmp-*`
    folders once they are `max_age` seconds old. Returns the removed paths.

    Example:

    >>> import tempfile
    >>> parent = tempfile.mkdtemp()
    >>> mine = f".tmp-p{os.getpid()}-abc-1"  # this process's: kept
    >>> os.mkdir(os.path.join(parent, mine))
    >>> remove_stale_folders(parent), os.listdir(parent) == [mine]
    ([], True)
    """
    removed = []
    for name in os.listdir(parent) if os.path.isdir(parent) else []:
        path = os.path.join(parent, name)
        if not name.startswith(".tmp-") or not os.path.isdir(path):
            continue
        owner = name[len(STAGING_PREFIX):].split("-")[0] if name.startswith(STAGING_PREFIX) else ""
        if owner.isdigit():
            stale = not _process_exists(int(owner))
        else:
            stale = time.time() - os.path.getmtime(path) > max_age
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _refuse_existing(path):
    if os.path.lexists(path):
        raise FileExistsError(f"{path}: exists; it is not replaced")


def _swap_folder(temporary, path):
    """Puts the folder `temporary` at `path` in place of the folder there.

    A folder cannot be renamed onto a folder that has files, so the old one
    is first moved into a hidden sibling folder, which is removed last.
    """
    parent, name = os.path.split(path)
    aside = tempfile.mkdtemp(prefix=".old-", suffix=f"-{name}", dir=parent)
    old = os.path.join(aside, name)
    os.replace(path, old)
    try:
        rename_into_place(temporary, path)
    finally:
        if not os.path.lexists(path):  # the new one did not get there: the old one goes back
            os.replace(old, path)
        shutil.rmtree(aside, ignore_errors=True)


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


def _fsync_tree(folder):
    """Flushes every file under `folder`, then every folder, innermost
    first, `folder` itself last: a folder's entries are worth nothing on
    disk before the files they name."""
    for root, folders, names in os.walk(folder, topdown=False):
        for name in names:
            _fsync_file(os.path.join(root, name))
        for name in folders:
            fsync_directory(os.path.join(root, name))
    fsync_directory(folder)


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


def lock_file(path, busy):
    """Takes an exclusive `flock` on the file `path` (made when missing) at
    once, or refuses: returns the locked descriptor (None where the
    platform has no `flock`: no lock). A writer that opened the file just
    before another removed it would hold a lock on a file no longer there,
    so after locking, the path is checked to still be the locked file, and
    taken again otherwise.

    Args:
        path: the lock file.
        busy: `holder -> message` of the ValueError when another process
            holds the lock; `holder` is what the file says (e.g. a pid).

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.lock")
    >>> descriptor = lock_file(path, lambda holder: "busy")
    >>> lock_file(path, lambda holder: f"{path}: busy")
    Traceback (most recent call last):
    ValueError: ...: busy
    >>> os.close(descriptor)
    """
    try:
        import fcntl
    except ImportError:  # no flock on this platform
        return None
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.read(descriptor, 64).decode("ascii", "replace").strip()
            os.close(descriptor)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise ValueError(busy(holder)) from None
        try:
            same = os.path.samestat(os.fstat(descriptor), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return descriptor
        os.close(descriptor)
