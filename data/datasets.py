"""Finding labelled videos on disk: class folders, official splits, manifests.

Two layouts are understood:

(a) A class-per-folder tree, the layout of HMDB51 and UCF101:

        root/<class name>/<video file>

    optionally with the data set's official split lists from `split_dir`:

    - HMDB51: `<class>_test_split{1,2,3}.txt`, lines `<video file> <0|1|2>`
      with 1 = train, 2 = test, 0 = unused in that split;
    - UCF101: `trainlist0N.txt` (lines `<class>/<video file> [<class index>]`)
      and `testlist0N.txt` (lines `<class>/<video file>`).

    Videos that a split's lists do not name are "unused" in it. A list that
    names a file that is not on disk is an error (a silently smaller test
    set would change every number reported on it).

(b) A CSV manifest, one video per row: `path,label[,split]`. A header row
    is optional (`path,label[,split]`, or common spellings such as
    `video,class`; see `read_manifest`); relative paths are relative to the
    manifest's folder; `split` is one of train, val, test, unused. Each
    video is listed once: a repeated row, or the same video in two splits
    or under two labels, is refused with both lines named.

Class ids. Class names are sorted and numbered from 0, so the mapping is
the same on every machine and every run. In a manifest whose labels are all
integers, they are sorted as numbers ("2" before "10"), so labels 0..K-1
keep their values as ids. The mapping goes with every run folder and
feature file (`VideoDataset.category_mapping`).

Example:

>>> import tempfile
>>> import numpy as np
>>> from data.video import write_video
>>> root = tempfile.mkdtemp()
>>> for name in ("run/r1.mp4", "run/r2.mp4", "jump/j1.avi"):
...     _ = write_video(os.path.join(root, name), np.zeros((4, 16, 16, 3), np.uint8))
>>> dataset = scan_video_folder(root)
>>> dataset.class_names, dataset.labels
(('jump', 'run'), (0, 1, 1))
"""

import csv
import dataclasses
import errno
import glob
import logging
import os
import re

from data.video import VIDEO_EXTENSIONS, is_video_file

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test", "unused")
_HMDB_CODES = {"0": "unused", "1": "train", "2": "test"}


@dataclasses.dataclass(frozen=True)
class VideoDataset:
    """Labelled video files.

    Args:
        paths: video file paths (absolute), sorted by class then file name
            for a folder tree, in file order for a manifest.
        labels: integer class id per path.
        class_names: class name per id (sorted, see the module docstring).
        splits: per path "train", "val", "test" or "unused", or None when
            no split information was given.
    """

    paths: tuple
    labels: tuple
    class_names: tuple
    splits: tuple | None = None

    def __len__(self):
        return len(self.paths)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def category_mapping(self):
        """{class name: id}, what feature files and run folders store."""
        return {name: index for index, name in enumerate(self.class_names)}

    def subset(self, split):
        """The videos of one split ("train", "val", "test", "unused")."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {list(SPLIT_NAMES)}, got {split!r}")
        if self.splits is None:
            raise ValueError("this dataset has no split information")
        keep = [index for index, name in enumerate(self.splits) if name == split]
        return VideoDataset(
            tuple(self.paths[i] for i in keep),
            tuple(self.labels[i] for i in keep),
            self.class_names,
            tuple(split for _ in keep),
        )


def scan_dataset(source, split_dir=None, split=1):
    """A folder tree or a manifest, whichever `source` is.

    Args:
        source: a class-per-folder directory or a `.csv` manifest.
        split_dir: folder with HMDB51 or UCF101 split lists (folder trees
            only); None for none.
        split: which official split (1, 2 or 3).

    Raises:
        ValueError: the source does not exist or holds no usable videos, or
            any of the problems listed in `scan_video_folder` and
            `read_manifest`.
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        return scan_video_folder(source, split_dir=split_dir, split=split)
    if os.path.isfile(source):
        if split_dir is not None:
            raise ValueError(
                f"{source}: split lists (split_dir) apply to folder trees; "
                "a manifest carries its split in its third column"
            )
        return read_manifest(source)
    raise ValueError(f"{source}: no such folder or manifest file")


def scan_video_folder(root, split_dir=None, split=1):
    """Scans `root/<class>/<video>`, with optional HMDB51/UCF101 split lists.

    Args:
        root: the folder of class folders. Hidden entries are ignored, as
            are files that are not videos (by extension, `VIDEO_EXTENSIONS`)
            and files directly in `root`. A symbolic link that leads nowhere
            (broken, or a loop, including a class folder that leads back to
            `root` or above it) is skipped with a logged warning naming it.
        split_dir: folder holding the split lists; None for no splits.
            Which data set's lists they are is told by their names.
        split: 1, 2 or 3.

    Returns:
        A `VideoDataset`.

    Raises:
        ValueError: `root` missing or without class folders; a class folder
            without videos (named); split lists missing for `split`, with a
            bad line, or naming files that are not on disk (the first few
            are named).
    """
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise ValueError(f"{root}: not a folder of class folders")
    classes = sorted(
        entry for entry in os.listdir(root)
        if not entry.startswith(".") and _is_class_folder(root, os.path.join(root, entry))
    )
    if not classes:
        raise ValueError(f"{root}: no class folders found (expected root/<class>/<video>)")

    paths, labels = [], []
    for label, class_name in enumerate(classes):
        folder = os.path.join(root, class_name)
        videos = sorted(
            name for name in os.listdir(folder)
            if not name.startswith(".") and is_video_file(name)
            and _is_reachable_file(os.path.join(folder, name))
        )
        if not videos:
            raise ValueError(
                f"{folder}: class folder {class_name!r} holds no videos "
                f"(expected files ending in {', '.join(VIDEO_EXTENSIONS)})"
            )
        paths.extend(os.path.join(folder, name) for name in videos)
        labels.extend(label for _ in videos)

    splits = None
    if split_dir is not None:
        splits = _read_split_lists(os.fspath(split_dir), split, root, classes, paths)
    return VideoDataset(tuple(paths), tuple(labels), tuple(classes), splits)


def _is_class_folder(root, path):
    """Whether `path` is a class folder; warns about links that lead nowhere."""
    if not os.path.isdir(path):
        _warn_if_dead_link(path)
        return False
    if os.path.islink(path):
        # A class folder that leads back to root (or above it) would make
        # root's own entries a class; a walk that descended would not end.
        target = os.path.realpath(path)
        if os.path.realpath(root) == target or os.path.realpath(root).startswith(
            target.rstrip(os.sep) + os.sep
        ):
            logger.warning("skipping %s: a symbolic link loop (it leads back to %s)", path, target)
            return False
    return True


def _is_reachable_file(path):
    """Whether `path` is a file; warns about links that lead nowhere."""
    if os.path.isfile(path):
        return True
    _warn_if_dead_link(path)
    return False


def _warn_if_dead_link(path):
    if not os.path.islink(path):
        return
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            logger.warning("skipping %s: a symbolic link loop", path)
        else:
            logger.warning("skipping %s: a broken symbolic link (to %s)", path, os.readlink(path))


def _read_split_lists(split_dir, split, root, classes, paths):
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split!r}")
    if not os.path.isdir(split_dir):
        raise ValueError(f"{split_dir}: split list folder does not exist")
    hmdb = sorted(glob.glob(os.path.join(glob.escape(split_dir), f"*_test_split{split}.txt")))
    ucf_train = os.path.join(split_dir, f"trainlist{split:02d}.txt")
    ucf_test = os.path.join(split_dir, f"testlist{split:02d}.txt")
    if hmdb:
        assigned = _hmdb_assignments(hmdb, split, classes)
    elif os.path.isfile(ucf_train) or os.path.isfile(ucf_test):
        assigned = _ucf_assignments(ucf_train, ucf_test)
    else:
        raise ValueError(
            f"{split_dir}: no split lists for split {split} (expected HMDB51 "
            f"'<class>_test_split{split}.txt' or UCF101 'trainlist{split:02d}.txt' "
            f"and 'testlist{split:02d}.txt')"
        )

    on_disk = {os.path.relpath(path, root).replace(os.sep, "/"): path for path in paths}
    missing = sorted(
        f"{name} (listed in {os.path.basename(source)})"
        for name, (_, source) in assigned.items() if name not in on_disk
    )
    if missing:
        shown = "; ".join(missing[:5]) + ("; ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{split_dir}: split {split} names {len(missing)} video(s) not found "
            f"under {root}: {shown}"
        )
    return tuple(
        assigned.get(key, ("unused", None))[0] for key in on_disk
    )


def _hmdb_assignments(files, split, classes):
    """{"<class>/<video>": (split name, list file)} from HMDB51 lists."""
    pattern = re.compile(rf"^(.*)_test_split{split}\.txt$")
    assigned = {}
    for path in files:
        class_name = pattern.match(os.path.basename(path)).group(1)
        if class_name not in classes:
            raise ValueError(
                f"{path}: split list for class {class_name!r}, which has no folder"
            )
        for number, line in _lines(path):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in _HMDB_CODES:
                raise ValueError(
                    f"{path}, line {number}: expected '<video file> <0|1|2>', got {line!r}"
                )
            assigned[f"{class_name}/{fields[0]}"] = (_HMDB_CODES[fields[1]], path)
    return assigned


def _ucf_assignments(train_list, test_list):
    """{"<class>/<video>": (split name, list file)} from UCF101 lists."""
    assigned = {}
    for path, split_name in ((train_list, "train"), (test_list, "test")):
        if not os.path.isfile(path):
            raise ValueError(f"{path}: UCF101 split list is missing")
        for number, line in _lines(path):
            name = line.split()[0].replace("\\", "/")
            if "/" not in name:
                raise ValueError(
                    f"{path}, line {number}: expected '<class>/<video file>', got {line!r}"
                )
            if name in assigned and assigned[name][0] != split_name:
                raise ValueError(f"{path}, line {number}: {name} is in both train and test lists")
            assigned[name] = (split_name, path)
    return assigned


def _lines(path):
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            line = line.strip()
            if line:
                yield number, line


def read_manifest(path):
    """Reads a CSV manifest `path,label[,split]`.

    Args:
        path: the CSV file, UTF-8 with or without a byte order mark (as
            spreadsheet programs save "CSV UTF-8"). An optional header row
            names the columns: the video as `path`, `video`, `file`,
            `filename` or `filepath`, its class as `label`, `class` or
            `category`, and optionally `split` (any case, any order).
            Without a header the columns are `path,label[,split]`. Relative
            video paths are relative to the manifest's folder.

    Returns:
        A `VideoDataset` in file order; `splits` is None when no row has a
        split column.

    Raises:
        ValueError: an empty manifest, a row with missing fields, a header
            with a column of another name, a video path that does not
            exist, a split other than train, val, test or unused (each names
            the manifest, the line and the value); a video listed twice
            (both lines named): as a duplicate row, in two splits (a leak
            between them) or under two labels. Two paths are the same video
            when they resolve to the same file (symbolic links followed).
    """
    path = os.path.abspath(os.fspath(path))
    base = os.path.dirname(path)
    rows = []
    columns = _DEFAULT_COLUMNS
    first_line = {}  # the resolved video -> (line number, label, split) of its first row
    # "utf-8-sig" drops a byte order mark; without one it reads plain UTF-8.
    with open(path, newline="", encoding="utf-8-sig") as file:
        for number, row in enumerate(csv.reader(file), start=1):
            row = [field.strip() for field in row]
            if not any(row) or row[0].startswith("#"):
                continue
            if not rows and columns is _DEFAULT_COLUMNS:
                header = _header_columns(path, number, row)
                if header is not None:
                    columns = header
                    continue
            fields = row + [""] * (len(columns) - len(row))
            if len(row) > len(columns) or not fields[columns[0]] or not fields[columns[1]]:
                raise ValueError(
                    f"{path}, line {number}: expected '{_columns_text(columns)}', "
                    f"got {','.join(row)!r}"
                )
            video_field, label = fields[columns[0]], fields[columns[1]]
            split_field = fields[columns[2]] if len(columns) == 3 else ""
            video = video_field if os.path.isabs(video_field) else os.path.join(base, video_field)
            video = os.path.normpath(video)
            if not os.path.isfile(video):
                raise ValueError(
                    f"{path}, line {number}: video {video_field!r} does not exist ({video})"
                )
            split = split_field.lower() or None
            if split is not None and split not in SPLIT_NAMES:
                raise ValueError(
                    f"{path}, line {number}: split must be one of {list(SPLIT_NAMES)}, "
                    f"got {split_field!r}"
                )
            _check_listed_once(path, number, video, label, split, first_line)
            rows.append((video, label, split))
    if not rows:
        raise ValueError(f"{path}: the manifest lists no videos (expected rows 'path,label[,split]')")

    names = sorted({label for _, label, _ in rows}, key=_class_sort_key([label for _, label, _ in rows]))
    ids = {name: index for index, name in enumerate(names)}
    has_splits = any(split is not None for _, _, split in rows)
    if has_splits and any(split is None for _, _, split in rows):
        number = next(i for i, (_, _, split) in enumerate(rows) if split is None)
        raise ValueError(
            f"{path}: some rows give a split and some do not (first without: {rows[number][0]})"
        )
    return VideoDataset(
        tuple(video for video, _, _ in rows),
        tuple(ids[label] for _, label, _ in rows),
        tuple(names),
        tuple(split for _, _, split in rows) if has_splits else None,
    )


# Header spellings of the manifest's columns, and the column positions of a
# manifest without a header: (video, label, split).
_HEADER_NAMES = {
    "video": ("path", "video", "file", "filename", "filepath"),
    "label": ("label", "class", "category"),
    "split": ("split",),
}
_DEFAULT_COLUMNS = (0, 1, 2)


def _header_columns(path, number, row):
    """(video, label[, split]) column positions if `row` is a header, else None.

    A row is a header when it names a video column and a label column;
    then every column must have a known name.
    """
    kinds = {}
    for kind, spellings in _HEADER_NAMES.items():
        for position, field in enumerate(row):
            if field.lower() in spellings:
                kinds.setdefault(kind, position)
    if "video" not in kinds or "label" not in kinds:
        return None
    known = set(kinds.values())
    for position, field in enumerate(row):
        if position not in known:
            expected = ", ".join(name for names in _HEADER_NAMES.values() for name in names)
            raise ValueError(
                f"{path}, line {number}: header column {field!r} is not one of {expected} "
                "(a header names the video, its label and optionally its split)"
            )
    if "split" in kinds:
        return kinds["video"], kinds["label"], kinds["split"]
    return kinds["video"], kinds["label"]


def _columns_text(columns):
    if columns is _DEFAULT_COLUMNS:
        return "path,label[,split]"
    names = {columns[0]: "path", columns[1]: "label"}
    if len(columns) == 3:
        names[columns[2]] = "split"
    return ",".join(names[position] for position in sorted(names))


def _check_listed_once(path, number, video, label, split, first_line):
    """Refuses a video a manifest lists twice, naming both lines.

    The same video in two splits would be trained on and tested on; under
    two labels it teaches both; listed twice it weighs double.
    """
    key = os.path.realpath(video)
    if key not in first_line:
        first_line[key] = (number, label, split)
        return
    first, first_label, first_split = first_line[key]
    lines = f"{path}: lines {first} and {number}"
    if first_label != label:
        raise ValueError(
            f"{lines} give {video} the labels {first_label!r} and {label!r}; "
            "a video has one label"
        )
    if first_split != split:
        raise ValueError(
            f"{lines} put {video} in splits {first_split!r} and {split!r} (a leak between "
            "splits); a video belongs to one split"
        )
    raise ValueError(f"{lines} both list {video} (duplicate rows); list each video once")


def _class_sort_key(labels):
    if all(re.fullmatch(r"-?\d+", label) for label in labels):
        return int
    return str


__all__ = [
    "SPLIT_NAMES",
    "VideoDataset",
    "read_manifest",
    "scan_dataset",
    "scan_video_folder",
]
