"""`python -m data.check PATH`: what is wrong with a data set, before training.

PATH is a class-per-folder video tree (optionally with HMDB51/UCF101
split lists, `--split-dir`), a CSV manifest, a feature file or a
summarization HDF5 file. The checks are listed in `data.check.videos`
(videos) and `data.check.hdf5` (HDF5 files); every video is opened in a
child process of its own (`data.check.probe`), so a decoder that crashes
or hangs on one file is reported as a broken file and the check goes on.

The report is one folder (`report.md`, `report.json`, PNG plots; see
`data.check.report`). Exit codes: 1 when an error was found, 0 when only
warnings (or nothing), 2 for bad usage.

`check_path` is the whole check as a function; `check_before` runs the
quick check (`--quick`: headers and first frames, no hashing) in its own
process for `train.run --check` and `data.extract --check`.
"""

import json
import os
import subprocess
import sys

from data.check.hdf5 import check_hdf5
from data.check.videos import check_videos

HDF5_EXTENSIONS = (".h5", ".hdf5", ".he5")


def source_kind(path, split_dir=None):
    """"videos" for a folder or a manifest, "hdf5" for an HDF5 file.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `--split-dir` given with an HDF5 file, or a split list
            folder that does not exist.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such folder or file (expected a video folder, a CSV "
                                "manifest or an HDF5 file)")
    kind = "hdf5" if os.path.isfile(path) and path.lower().endswith(HDF5_EXTENSIONS) else "videos"
    if split_dir is not None:
        if kind == "hdf5" or os.path.isfile(path):
            raise ValueError(f"--split-dir {split_dir}: split lists apply to a folder of class "
                             f"folders, not to {path}")
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"--split-dir {split_dir}: no such folder")
    return kind


def check_path(path, split_dir=None, split=1, full=True, jobs=2, timeout=120.0, progress=None):
    """Checks PATH (see the module docstring); returns a `Report`.

    `progress`, when given, is called with the number of videos and
    returns a function called with `(path, result)` as each is done.
    """
    if source_kind(path, split_dir) == "hdf5":
        return check_hdf5(path)
    return check_videos(path, split_dir=split_dir, split=split, full=full, jobs=jobs,
                        timeout=timeout, progress=progress)


def check_before(sources, out=None, what="--check"):
    """Runs `python -m data.check SOURCE --quick` for every source, in a
    process of its own (the caller may hold TensorFlow; the check's
    children must not inherit it).

    Args:
        sources: (path, split_dir or None, split) triples.
        out: the report folder's root (default `data.check`'s).
        what: the flag that asked, for messages.

    Raises:
        ValueError: a check found errors (the report named), or could not
            run (its message).
    """
    for path, split_dir, split in sources:
        command = [sys.executable, "-m", "data.check", os.fspath(path), "--quick", "--no-progress"]
        if split_dir is not None:
            command += ["--split-dir", os.fspath(split_dir), "--split", str(split)]
        if out is not None:
            command += ["--out", os.path.join(out, _report_name(path))]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=_child_environment())
        if done.returncode == 2:
            raise ValueError(f"{what}: data.check could not check {path} (see the line above)")
        try:
            summary = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        except ValueError:
            summary = {}
        if done.returncode == 1 and "errors" not in summary:  # the check itself failed
            raise RuntimeError(f"{what}: data.check failed on {path} without a report (see the "
                               "lines above)")
        if done.returncode == 1:
            raise ValueError(
                f"{what}: {path} has {summary.get('errors', 'some')} error(s); see "
                f"{summary.get('report', 'the report')}, fix them or leave out {what}")
        if done.returncode != 0:
            raise RuntimeError(f"{what}: data.check ended with exit code {done.returncode}")


def _child_environment():
    """This environment, with the project's folder on the module path (the
    caller may run from another folder)."""
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [project] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _report_name(path):
    name = os.path.basename(os.path.normpath(os.fspath(path)))
    return os.path.splitext(name)[0] or "data"


__all__ = ["check_before", "check_hdf5", "check_path", "check_videos", "source_kind"]
