"""`train.run --check`: the quick data check (`python -m data.check --quick`)
of the files a task's options name, before any training starts.

Example:

>>> from train.tasks.clips import ClipOptions
>>> data_sources(ClipOptions(data="videos/", split_dir="splits/", split=2))
[('videos/', 'splits/', 2)]
>>> data_sources(ClipOptions())
[]
"""

import sys

from data.check import check_before

# Option fields that name data files, in the tasks' options: a video tree or
# manifest (with its split lists), feature files, a summarization file.
SOURCE_FIELDS = ("data", "features", "val_features", "test_features", "dataset")


def data_sources(options):
    """(path, split_dir, split) of every data file the options name."""
    sources = []
    for field in SOURCE_FIELDS:
        path = getattr(options, field, None)
        if path:
            split_dir = getattr(options, "split_dir", None) if field == "data" else None
            sources.append((path, split_dir, getattr(options, "split", 1) if split_dir else 1))
    return sources


def check_options(options, what="--check"):
    """Runs the quick check on the options' data files.

    Raises:
        ValueError: the check found errors (its report named).
    """
    sources = data_sources(options)
    if not sources:
        print(f"{what}: no data files given (the embedded synthetic data); nothing to check",
              file=sys.stderr)
        return
    check_before(sources, what=what)
