"""Frozen-backbone frame features, streamed into HDF5, and their reader.

Each video becomes one row: frames sampled uniformly over the video go
through a frozen keras.applications backbone (`models.backbones`) and give
one feature vector per frame.

Multi-scale temporal extraction (the design notes' recipe). `num_frames`
frames are sampled uniformly over the video; that tensor is scale 1.0, taken
as it is. The scales 0.85 and 1.15 are resampled from it:
`scale_lengths(num_frames)` gives their lengths, `max(int(num_frames * s),
5)` (truncation: 64 frames give 64, 54 and 73), and
`np.linspace(0, n - 1, length).astype(int)` picks the frames, so 0.85x drops
frames and 1.15x repeats some. The three feature sequences are zero-padded
at the end to the longest and averaged (the mean over scales counts the
padding as zeros). A row therefore holds the 1.15 scale's length (73 steps
for 64 frames), of which all are real: `num_frames` of the row is the
longest scale's length. `multi_scale=False` gives plain `num_frames` steps.

`scale_source="video"` instead samples every scale's frames over the whole
source video (`sample_frame_indices(frame_count, length)`), so 1.15x sees
frames between the 64 and repeats none in a long video; frames shared by
several scales go through the backbone once. The lengths are the same.

The file (the notes' schema, so their files and ours are interchangeable):

    features    [N, T_max, D] float32, gzip level 4, zero after num_frames[i]
    labels      [N] int64
    num_frames  [N] int32
    attrs: num_videos, max_frames, feature_dim, category_mapping (JSON
           {"class name": id}), multi_scale

plus our own additions, which readers of the notes' files ignore:

    sources     [N] UTF-8 string: the absolute path of each row's video
    splits      [N] UTF-8 string: "train"/"val"/"test"/"unused", "" if none
    attrs: backbone, weights, frames, size, scales, scale_source, complete,
           skipped (JSON list of {"path", "error"}), num_skipped, format,
           format_version, seed, backbone_id (the backbone and its weights:
           "imagenet", a weights file's SHA-256, or the seed of random ones)

Streaming and crash safety. Rows are appended to `<out>.partial` one video
at a time (resizable datasets, flushed after each row, so memory stays
flat); `num_videos` is written after the row's data and is the count of
rows that count. Only when every video is done is the file marked
`complete` and renamed onto `<out>` (an atomic rename). A run killed at any
moment therefore leaves either the previous complete `<out>` untouched or a
`.partial` file marked incomplete: the reader refuses it, and the next run
resumes from it (rows past `num_videos` are dropped). A partial file that
HDF5 cannot read any more is named as damaged and kept; the run stops and
asks for it to be deleted. Re-running on a complete file skips the videos
it already holds; new ones are appended to a copy that replaces it when
done. The run's settings (backbone, weights, frames, size, multi-scale,
scale source, classes) must match the file's, or the run stops with the
differing field named; only a partial file that holds no row yet (its
first attempt failed before the first video, e.g. on a bad weights file)
is started again with the new settings, with a log line saying so.

One extraction at a time writes to `<out>`: a run holds an exclusive lock
(`flock`) on `<out>.lock` from opening to closing and removes the lock file
when it is done. A second run finds the lock taken and stops; a partial
file that another program holds open (HDF5's own file lock) is named as
such, not as damaged.

Across machines (`num_shards` > 1). Share I of N takes the videos at
positions I, I + N, ... of the list (`shard_indices`) into its own part file
`<root>.part-0000I-of-0000N<ext>` (`part_path`), written, resumed and locked
as above; its settings also hold `num_shards`, `shard_index` and
`shard_list` (a SHA-256 of the whole list's paths and labels, so a part is
never resumed or merged with another list), and its rows a `video_index`
(the position in the whole list). `merge_feature_parts` writes the rows of
all parts in that order into one file of the schema above, equal to what a
single process writes. Parts of another backbone identity (another seed of
a random backbone, another weights file) are never merged, and an
interrupted merge is resumed only from parts of the video list it began
with.

T_max. All rows of one run have the same length, but the writer does not
rely on it: a longer row widens `features` along its (resizable) time axis,
whose new cells are zero (the fill value), and `max_frames` follows; on
completion the time axis is cut to the longest row.

Example:

>>> import tempfile
>>> from data.datasets import scan_dataset
>>> from data.video import write_video
>>> root = tempfile.mkdtemp()
>>> for name in ("run/r1.mp4", "jump/j1.mp4"):
...     _ = write_video(os.path.join(root, "videos", name), np.zeros((8, 32, 32, 3), np.uint8))
>>> dataset = scan_dataset(os.path.join(root, "videos"))
>>> out = os.path.join(root, "features.h5")
>>> _ = extract_features(dataset, out, backbone="efficientnet_b0", weights=None, num_frames=8,
...                      size=(32, 32), progress=False)
>>> data = read_feature_file(out, expected_dim=1280)
>>> data.features.shape, data.class_names
((2, 9, 1280), ('jump', 'run'))
"""

import dataclasses
import functools
import glob
import hashlib
import json
import os
import shutil
import sys
import time

import h5py
import numpy as np

from common.files import atomic_path, lock_file, rename_into_place
from data import decoder_process
from data.video import VideoError, normalize_size, sample_frame_indices

SCALES = (1.0, 0.85, 1.15)
MIN_SCALE_FRAMES = 5
# Where the 0.85x and 1.15x frames come from: the already sampled
# `num_frames` tensor (the notes' recipe) or the whole source video.
SCALE_SOURCES = ("sampled", "video")
DEFAULT_SCALE_SOURCE = "sampled"
FORMAT = "video_suite.features"
FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".partial"
# OUT.h5 -> OUT.part-00001-of-00002.h5: one worker's share of a sharded run.
PART_PATTERN = "{root}.part-{index:05d}-of-{count:05d}{ext}"
LOCK_SUFFIX = ".lock"
DEFAULT_BACKBONE = "efficientnet_v2_s"
# The notes preprocess frames at 256 x 256.
DEFAULT_EXTRACT_SIZE = (256, 256)
REQUIRED_DATASETS = ("features", "labels", "num_frames")
REQUIRED_ATTRS = ("num_videos", "max_frames", "feature_dim", "category_mapping")

# Rows read (and checked for NaN/Inf) at a time by the reader.
_READ_ROWS = 256


def scale_lengths(num_frames, multi_scale=True):
    """Frames of each temporal scale in `SCALES`: the design notes' rule.

    Scale 1.0 is the sampled video as it is (`num_frames`); every other
    scale s has `max(int(num_frames * s), 5)` frames. `int` truncates the
    floating-point product exactly as the notes' Python does, so 64 frames
    give 73 at 1.15 (73.6), and 100 frames give 114 (100 * 1.15 is
    114.99999999999999 in binary floating point).

    Args:
        num_frames: frames sampled per video, >= 1.
        multi_scale: False gives the one scale 1.0.

    Returns:
        A list of ints, one per scale, in the order of `SCALES`.

    Example:

    >>> scale_lengths(64)
    [64, 54, 73]
    >>> scale_lengths(4)
    [4, 5, 5]
    >>> scale_lengths(64, multi_scale=False)
    [64]
    """
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not multi_scale:
        return [num_frames]
    return [
        num_frames if scale == 1.0 else max(int(num_frames * scale), MIN_SCALE_FRAMES)
        for scale in SCALES
    ]


def rescale_indices(num_frames, length):
    """Rows of an `num_frames`-frame tensor that make a `length`-frame scale.

    The notes' `np.linspace(0, n - 1, length).astype(int)`: a shorter scale
    skips frames, a longer one repeats some.

    Example:

    >>> rescale_indices(4, 6).tolist()
    [0, 0, 1, 1, 2, 3]
    """
    return np.linspace(0, num_frames - 1, length).astype(int)


def check_scale_source(scale_source):
    if scale_source not in SCALE_SOURCES:
        raise ValueError(
            f"scale_source must be one of {', '.join(SCALE_SOURCES)}, got {scale_source!r}"
        )
    return scale_source


class FrameFeatureExtractor:
    """A frozen backbone that turns a video into a feature sequence.

    Args:
        backbone: a name from `models.backbones.BACKBONES`.
        weights: None, "imagenet" or a local weights file.
        size: (height, width) frames are resized to (the backbone's input).
        batch_size: frames per backbone call (the last call of a video
            takes the rest; the compiled function has an open batch axis,
            so it is traced once).
        seed: seeds the random initialisation (matters for `weights=None`,
            so that a resumed extraction uses the same random backbone).
    """

    def __init__(self, backbone=DEFAULT_BACKBONE, weights=None, size=DEFAULT_EXTRACT_SIZE,
                 batch_size=32, seed=0):
        import keras
        import tensorflow as tf

        from models.backbones import build_frame_backbone  # Keras, for a backbone only

        self.size = normalize_size(size)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        keras.utils.set_random_seed(int(seed))
        self.model = build_frame_backbone(backbone, weights=weights, input_shape=(*self.size, 3))
        self.feature_dim = int(self.model.output_shape[-1])
        model = self.model
        self._predict = tf.function(
            lambda frames: model(frames, training=False),
            input_signature=[tf.TensorSpec((None, *self.size, 3), tf.float32)],
        )

    def frame_features(self, frames):
        """uint8 frames [n, H, W, 3] -> float32 features [n, D]."""
        frames = np.asarray(frames)
        outputs = []
        for start in range(0, len(frames), self.batch_size):
            batch = frames[start:start + self.batch_size].astype(np.float32)
            outputs.append(np.asarray(self._predict(batch)))
        if not outputs:
            return np.zeros((0, self.feature_dim), np.float32)
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def video_features(self, path, num_frames=64, multi_scale=True,
                       scale_source=DEFAULT_SCALE_SOURCE):
        """One video's feature sequence, float32 [T, D], and its VideoInfo.

        Args:
            path: the video file.
            num_frames: frames sampled uniformly over the video (scale 1.0).
            multi_scale: average the scales of `scale_lengths`.
            scale_source: `"sampled"` (the notes') resamples 0.85x and 1.15x
                from the `num_frames` sampled frames; `"video"` samples
                each scale over the whole video.

        Raises:
            VideoError: the file cannot be read as a video.
        """
        check_scale_source(scale_source)
        lengths = scale_lengths(num_frames, multi_scale)
        if scale_source == "sampled":
            frames_of = [lambda frame_count: sample_frame_indices(frame_count, num_frames)]
        else:
            frames_of = [
                lambda frame_count, length=length: sample_frame_indices(frame_count, length)
                for length in lengths
            ]
        # Decoded in the decoder process (`data.decoder_process`): a file
        # that crashes or hangs the decoder is a VideoError, not the end.
        counts = [num_frames] if scale_source == "sampled" else lengths
        frames, unique, info = decoder_process.read_frames(
            path, functools.partial(frame_indices, counts=[int(count) for count in counts]),
            self.size)
        features = self.frame_features(frames)
        sequence = np.zeros((max(lengths), self.feature_dim), np.float32)
        if scale_source == "sampled":
            # Each frame is encoded on its own, so picking rows of the
            # features is picking frames of the sampled clip.
            sampled = features[np.searchsorted(unique, frames_of[0](info.frame_count))]
            for length in lengths:
                sequence[:length] += sampled[rescale_indices(num_frames, length)]
        else:
            for length, wanted in zip(lengths, frames_of):
                sequence[:length] += features[np.searchsorted(unique, wanted(info.frame_count))]
        sequence /= len(lengths)
        return sequence, info


def frame_indices(frame_count, counts):
    """The frames `video_features` decodes: those of
    `sample_frame_indices(frame_count, count)` for every count, each once,
    sorted (a module-level function, so that the decoder process can call
    it by name).

    Example:

    >>> frame_indices(10, [4, 3]).tolist()
    [0, 3, 4, 6, 9]
    """
    return np.unique(np.concatenate(
        [sample_frame_indices(frame_count, count) for count in counts]))


def partial_path(out):
    """Where an unfinished extraction into `out` lives."""
    return os.fspath(out) + PARTIAL_SUFFIX


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _attr(file, name, default=None):
    return _decode(file.attrs[name]) if name in file.attrs else default


class FeatureWriter:
    """Appends feature rows to `<out>.partial`; `finish` renames it to `out`.

    Args:
        out: the final .h5 path.
        settings: dict of what the rows depend on (backbone, weights,
            frames, size, multi_scale, scale_source (default
            `DEFAULT_SCALE_SOURCE`), steps); compared with an existing
            file's.
        class_names: class name per id.
        feature_dim: D.
        log: function taking one line of text (progress notes, warnings).

    From `open` until `finish` or `close` the writer holds the exclusive lock
    `<out>.lock` (see the module docstring); a second writer to the same
    `out` is refused with a `ValueError`.
    """

    _SETTING_ATTRS = (
        "backbone", "weights", "frames", "size", "multi_scale", "scale_source", "feature_dim",
        "backbone_id",
    )
    # A part file's share of the video list (absent from a one-process file).
    _SHARD_ATTRS = ("num_shards", "shard_index", "shard_list")

    def __init__(self, out, settings, class_names, feature_dim, log=None):
        self.out = os.path.abspath(os.fspath(out))
        self.partial = partial_path(self.out)
        self.settings = {"scale_source": DEFAULT_SCALE_SOURCE, **settings}
        self.sharded = "num_shards" in self.settings
        self.row_datasets = ("features", "labels", "num_frames", "sources", "splits") + (
            ("video_index",) if self.sharded else ()
        )
        self.class_names = tuple(class_names)
        self.feature_dim = int(feature_dim)
        self.log = log or (lambda line: print(line, file=sys.stderr))
        self.file = None
        self.done = set()
        self.skipped = {}
        self.source_state = None  # "new", "partial" or "complete"
        self._lock = None

    # -- opening ----------------------------------------------------------

    def open(self):
        """Finds where to continue; returns (sources done, {path: error} skipped).

        Takes the output's lock first; on any error the lock is let go.
        """
        directory = os.path.dirname(self.out)
        if not os.path.isdir(directory):
            raise ValueError(f"{self.out}: output folder {directory} does not exist")
        self._lock = _OutputLock(self.out)
        try:
            return self._open_locked()
        except BaseException:
            self.close()
            raise

    def _open_locked(self):
        if os.path.exists(self.partial):
            try:
                self._open_partial()
                return self.done, self.skipped
            except _EmptyPartialOfOtherSettings as difference:
                self.log(
                    f"{self.partial} holds no videos yet and was begun with {difference}; "
                    "starting it again with this run's settings"
                )
                os.remove(self.partial)
        if os.path.exists(self.out):
            with _open_h5(self.out, "r") as file:
                self._check_ours(file, self.out)
                if not bool(_attr(file, "complete", False)):
                    raise ValueError(f"{self.out}: marked incomplete; delete it to start again")
                self._check_settings(file, self.out)
                self._load_progress(file, int(file.attrs["num_videos"]))
            self.source_state = "complete"
            return self.done, self.skipped
        self._create()
        return self.done, self.skipped

    def _open_partial(self):
        try:
            file = h5py.File(self.partial, "r+")
        except OSError as error:
            raise self._partial_open_error(error) from None
        try:
            self._check_ours(file, self.partial)
            rows = int(file.attrs["num_videos"])
            difference = self._settings_difference(file)
            if difference is not None:
                if rows == 0:
                    raise _EmptyPartialOfOtherSettings(difference)
                self._check_settings(file, self.partial)
            names = self.row_datasets
            if any(file[name].shape[0] < rows for name in names):
                raise _DamagedPartial("fewer rows than num_videos")
            for name in names:
                if file[name].shape[0] > rows:  # a row begun but never committed
                    file[name].resize(rows, axis=0)
                if rows:
                    file[name][rows - 1]  # the last committed row must read back
            self._load_progress(file, rows)
            file.attrs["complete"] = False
            file.flush()
        except json.JSONDecodeError as error:
            file.close()
            raise self._damaged(f"bad JSON attribute: {error}") from None
        except _DamagedPartial as error:
            file.close()
            raise self._damaged(str(error)) from None
        except (ValueError, _EmptyPartialOfOtherSettings):
            file.close()
            raise
        except (OSError, KeyError, TypeError, RuntimeError) as error:
            file.close()
            raise self._damaged(_first_line(error)) from None
        self.file = file
        self.source_state = "partial"

    def _partial_open_error(self, error):
        """Why HDF5 would not open the partial file: a lock, or damage.

        Told apart by trying, not by HDF5's wording (whose "sblock" for a
        truncated file contains "lock"): a file that opens without HDF5's
        file locking was only locked by another program.
        """
        try:
            h5py.File(self.partial, "r", locking=False).close()
        except OSError:
            return self._damaged(_first_line(error))
        return ValueError(
            f"{self.partial}: open in another program (HDF5 holds a lock on it); close that "
            "program and run again"
        )

    def _damaged(self, reason):
        return ValueError(
            f"{self.partial}: damaged, cannot be resumed ({reason}); delete it to start the "
            "extraction again"
        )

    def _check_ours(self, file, path):
        if _attr(file, "format") != FORMAT:
            raise ValueError(
                f"{path}: exists and was not written by data.extract (no format={FORMAT!r} "
                "attribute); choose another --out"
            )

    def _settings_differences(self, file):
        """[(name, stored, wanted), ...] of the settings `file` differs in."""
        expected = dict(self.settings, feature_dim=self.feature_dim)
        differences = []
        for name in self._SETTING_ATTRS + self._SHARD_ATTRS:
            stored = _attr(file, name)
            stored = stored.tolist() if isinstance(stored, np.ndarray) else stored
            wanted = expected.get(name)
            wanted = list(wanted) if isinstance(wanted, tuple) else wanted
            if isinstance(stored, (np.bool_, np.integer)):
                stored = stored.item()
            if name == "backbone_id" and stored is None:
                continue  # a file written before the identity was recorded
            if stored != wanted:
                differences.append((name, stored, wanted))
        stored_mapping = json.loads(_attr(file, "category_mapping"))
        mapping = {name: index for index, name in enumerate(self.class_names)}
        if stored_mapping != mapping:
            differences.append((
                "classes", sorted(stored_mapping, key=stored_mapping.get), list(self.class_names)
            ))
        return differences

    def _settings_difference(self, file):
        """The settings `file` differs in, as text, or None."""
        differences = self._settings_differences(file)
        if not differences:
            return None
        return ", ".join(
            f"{name}={stored!r} (this run: {wanted!r})" for name, stored, wanted in differences
        )

    def _check_settings(self, file, path):
        for name, stored, wanted in self._settings_differences(file):
            if name == "shard_list":
                raise ValueError(
                    f"{path}: holds a share of another video list (its paths or labels differ "
                    "from this run's); use the same videos to resume, or another --out"
                )
            if name == "classes":
                raise ValueError(
                    f"{path}: holds classes {stored} but the videos have classes {wanted}; "
                    "use another --out"
                )
            raise ValueError(
                f"{path}: was written with {name}={stored!r} but this run asks for "
                f"{name}={wanted!r}; use the same settings to resume, or another --out"
            )

    def _load_progress(self, file, rows):
        self.done = {_decode(value) for value in file["sources"][:rows]}
        # A video skipped once and written on a later try is no longer skipped.
        self.skipped = {
            entry["path"]: entry["error"]
            for entry in json.loads(_attr(file, "skipped", "[]"))
            if entry["path"] not in self.done
        }

    def _create(self):
        # Created under a temporary name: a `.partial` file always holds the
        # whole schema, so a resumed run never meets a half-made one.
        with atomic_path(self.partial) as temporary:
            self._write_empty_file(temporary)
        self.file = h5py.File(self.partial, "r+")
        self.source_state = "new"

    def _write_empty_file(self, path):
        """Writes a file of the schema with no rows yet and this run's
        settings as attributes."""
        with h5py.File(path, "w", libver=("v108", "latest")) as file:
            steps = int(self.settings["steps"])
            d = self.feature_dim
            file.create_dataset(
                "features", shape=(0, steps, d), maxshape=(None, None, d), dtype="float32",
                chunks=(1, steps, d), compression="gzip", compression_opts=4, fillvalue=0.0,
            )
            strings = h5py.string_dtype("utf-8")
            for name, dtype, chunk in (("labels", "int64", 1024), ("num_frames", "int32", 1024),
                                       ("sources", strings, 256), ("splits", strings, 256)):
                file.create_dataset(
                    name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk,)
                )
            if self.sharded:
                # Each row's position in the whole video list: the merge's order.
                file.create_dataset(
                    "video_index", shape=(0,), maxshape=(None,), dtype="int64", chunks=(1024,)
                )
            attrs = file.attrs
            attrs["format"] = FORMAT
            attrs["format_version"] = FORMAT_VERSION
            attrs["num_videos"] = 0
            attrs["max_frames"] = steps
            attrs["feature_dim"] = d
            attrs["category_mapping"] = json.dumps(
                {name: index for index, name in enumerate(self.class_names)}
            )
            attrs["multi_scale"] = bool(self.settings["multi_scale"])
            attrs["backbone"] = self.settings["backbone"]
            attrs["weights"] = self.settings["weights"]
            attrs["frames"] = int(self.settings["frames"])
            attrs["size"] = np.asarray(self.settings["size"], np.int32)
            attrs["scales"] = json.dumps(list(SCALES) if self.settings["multi_scale"] else [1.0])
            attrs["scale_source"] = self.settings["scale_source"]
            for name in ("backbone_id", "seed"):  # absent from merges of older parts
                if self.settings.get(name) is not None:
                    attrs[name] = self.settings[name]
            attrs["complete"] = False
            attrs["skipped"] = "[]"
            attrs["num_skipped"] = 0
            if self.sharded:
                attrs["num_shards"] = int(self.settings["num_shards"])
                attrs["shard_index"] = int(self.settings["shard_index"])
                attrs["shard_list"] = self.settings["shard_list"]

    def _ensure_writable(self):
        """A complete `out` is copied to `.partial` before its first new row."""
        if self.file is not None:
            return
        with atomic_path(self.partial) as temporary:
            shutil.copyfile(self.out, temporary)
        self.file = h5py.File(self.partial, "r+")
        self.file.attrs["complete"] = False
        self.file.flush()

    # -- writing ----------------------------------------------------------

    def append(self, features, label, source, split=None, video_index=None):
        """Writes one video's row [T, D] and commits it (flush).

        A part file's writer also takes `video_index`, the video's position
        in the whole (unsharded) video list.
        """
        self._ensure_writable()
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(
                f"row for {source} has shape {features.shape}, expected (T, {self.feature_dim})"
            )
        file = self.file
        rows = int(file.attrs["num_videos"])
        steps = features.shape[0]
        width = file["features"].shape[1]
        if steps > width:
            file["features"].resize(steps, axis=1)
            file.attrs["max_frames"] = steps
            width = steps
        if self.sharded and video_index is None:
            raise ValueError(f"row for {source}: a part file's row needs its video_index")
        for name in self.row_datasets:
            file[name].resize(rows + 1, axis=0)
        row = np.zeros((width, self.feature_dim), np.float32)
        row[:steps] = features
        file["features"][rows] = row
        file["labels"][rows] = int(label)
        file["num_frames"][rows] = steps
        file["sources"][rows] = source
        file["splits"][rows] = split or ""
        if self.sharded:
            file["video_index"][rows] = int(video_index)
        file.attrs["num_videos"] = rows + 1  # the commit mark: after the data
        self.skipped.pop(source, None)
        self.done.add(source)
        file.flush()

    def skip(self, source, error):
        """Records a video that could not be read."""
        self._ensure_writable()
        self.skipped[source] = str(error)
        self._write_skipped()
        self.file.flush()

    def _write_skipped(self):
        entries = [{"path": path, "error": error} for path, error in sorted(self.skipped.items())]
        self.file.attrs["skipped"] = json.dumps(entries)
        self.file.attrs["num_skipped"] = len(entries)

    def finish(self):
        """Marks the file complete and renames it onto `out` (atomically).

        Lets go of the output's lock once `out` is in place.
        """
        if self.file is None and self.source_state == "complete":
            self.close()
            return self.out
        file = self.file
        rows = int(file.attrs["num_videos"])
        if rows == 0:
            self._write_skipped()
            file.flush()
            first = next(iter(sorted(self.skipped.items())), None)
            raise ValueError(
                f"no video could be read ({len(self.skipped)} skipped, first: {first}); "
                f"{self.partial} is kept; fix the files or re-run with --retry-skipped"
            )
        if rows:
            longest = int(np.max(file["num_frames"][:rows]))
            if longest < file["features"].shape[1]:
                file["features"].resize(longest, axis=1)
            file.attrs["max_frames"] = longest
        self._write_skipped()
        file.attrs["complete"] = True
        file.flush()
        file.close()
        self.file = None
        rename_into_place(self.partial, self.out)
        self.close()
        return self.out

    def close(self):
        """Closes without finishing: the .partial file stays, resumable.

        Lets go of the output's lock too.
        """
        if self.file is not None:
            self.file.close()
            self.file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class _DamagedPartial(Exception):
    pass


class _EmptyPartialOfOtherSettings(Exception):
    """A partial file without rows, begun with other settings (the text)."""


def _first_line(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class _OutputLock:
    """An exclusive `flock` on `<out>.lock`, taken at once or refused.

    The lock file is removed on release. A run that opened the file just
    before another removed it holds a lock on a file no longer there, so
    after locking the path is checked to still be the locked file, and
    taken again otherwise.

    Raises:
        ValueError: another process (or another writer in this one) holds
            the lock.
    """

    def __init__(self, out):
        self.out = out
        self.path = out + LOCK_SUFFIX
        self.descriptor = None
        self.descriptor = lock_file(self.path, lambda holder: (
            f"{out}: in use by another extraction (it holds the lock {self.path}); "
            "wait for it to finish, or choose another --out"))

    def release(self):
        if self.descriptor is None:
            return
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        os.close(self.descriptor)
        self.descriptor = None


def _open_h5(path, mode):
    try:
        return h5py.File(path, mode)
    except OSError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path}: cannot be read as an HDF5 file ({first})") from None


def _weights_setting(weights):
    if weights is None or str(weights).lower() == "none":
        return "none"
    if weights == "imagenet":
        return "imagenet"
    return os.path.abspath(os.fspath(weights))


def backbone_identity(backbone, weights_setting, seed):
    """What makes a backbone's features the same from run to run: its name
    and its weights (ImageNet's, a weights file's content, or a random
    initialisation's seed).

    Example:

    >>> backbone_identity("resnet50", "none", 3), backbone_identity("resnet50", "imagenet", 3)
    ('resnet50 random seed 3', 'resnet50 imagenet')
    """
    if weights_setting == "none":
        return f"{backbone} random seed {int(seed)}"
    if weights_setting == "imagenet":
        return f"{backbone} imagenet"
    digest = hashlib.sha256()
    with open(weights_setting, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return f"{backbone} weights sha256 {digest.hexdigest()}"


RANDOM_WEIGHTS_WARNING = """\
################################################################################
# WARNING: extracting with --weights none: the backbone is RANDOMLY initialised.
# Such features carry little meaning; use them for tests and plumbing only.
# Use --weights imagenet (needs internet once) or a local weights file.
################################################################################"""


@dataclasses.dataclass(frozen=True)
class ExtractionSummary:
    """What one extraction run did.

    Args:
        out: the feature file.
        written: rows added by this run.
        already_done: rows the file held before.
        skipped: {path: error} of the videos the file lists as skipped.
        seconds: time spent on videos.
    """

    out: str
    written: int
    already_done: int
    skipped: dict
    seconds: float


def extract_features(dataset, out, backbone=DEFAULT_BACKBONE, weights="imagenet", num_frames=64,
                     size=DEFAULT_EXTRACT_SIZE, batch_size=32, multi_scale=True,
                     scale_source=DEFAULT_SCALE_SOURCE, on_error="skip", retry_skipped=False,
                     seed=0, progress=True, log=None, extractor=None, num_shards=1, shard_index=0):
    """Extracts one feature row per video of `dataset` into the HDF5 `out`.

    With `num_shards` > 1 this process extracts only its share of the
    videos (`shard_indices`) into its own part file (`part_path`), which
    resumes and is checked like a one-process file; `merge_feature_parts`
    joins the parts into `out`.

    Args:
        dataset: a `data.datasets.VideoDataset`.
        out: the .h5 file to write (see the module docstring for the schema,
            resuming and crash safety).
        backbone: a name from `models.backbones.BACKBONES`.
        weights: "imagenet", a local weights file, or None / "none" (random
            weights, with a loud warning).
        num_frames: frames sampled per video at scale 1.0.
        size: (height, width) frames are resized to before the backbone.
        batch_size: frames per backbone call.
        multi_scale: average the three temporal scales (`SCALES`).
        scale_source: where the 0.85x / 1.15x frames come from: `"sampled"`
            (the notes': resampled from the `num_frames` sampled frames) or
            `"video"` (sampled over the whole video).
        on_error: "skip" (default) records an unreadable video in the file's
            `skipped` attribute and in the log and goes on; "fail" stops
            with that error, leaving a resumable `.partial` file.
        retry_skipped: also try the videos an earlier run skipped (by
            default a re-run leaves them skipped).
        seed: seeds the backbone's random initialisation.
        progress: show a progress bar (videos/s and ETA).
        log: function taking one line (default: print to stderr).
        extractor: an already built `FrameFeatureExtractor` of this backbone
            and size to use instead of building one (benchmarks, tests).
        num_shards: how many processes split the videos (1: no split).
        shard_index: this process's share, 0..num_shards - 1.

    Returns:
        An `ExtractionSummary` (its `out` is the part file when sharded).

    Raises:
        ValueError: bad arguments, a file of other settings or another
            format at `out`, no video readable at all, or (with
            on_error="fail") the first unreadable video.
    """
    from models.backbones import BACKBONES  # Keras, for a backbone only

    log = log or (lambda line: print(line, file=sys.stderr))
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; expected one of {sorted(BACKBONES)}")
    size = _check_extraction_arguments(
        dataset, on_error, size, num_frames, scale_source, batch_size, num_shards, shard_index
    )
    weights_setting = _checked_weights_setting(weights)
    settings = {
        "backbone": backbone,
        "weights": weights_setting,
        "frames": int(num_frames),
        "size": list(size),
        "multi_scale": bool(multi_scale),
        "scale_source": scale_source,
        "steps": max(scale_lengths(num_frames, multi_scale)),
        "seed": int(seed),
        "backbone_id": backbone_identity(backbone, weights_setting, seed),
    }
    sources = [os.path.abspath(path) for path in dataset.paths]
    share, out, settings = _share_of_videos(
        dataset, sources, out, settings, int(num_shards), int(shard_index)
    )
    writer = FeatureWriter(out, settings, dataset.class_names, BACKBONES[backbone], log=log)
    already_done, todo = _videos_to_do(writer, share, sources, retry_skipped, log)
    if not todo:
        try:
            writer.finish()
        finally:
            writer.close()
        log(f"{writer.out} is up to date ({already_done} videos)")
        return ExtractionSummary(writer.out, 0, already_done, dict(writer.skipped), 0.0)

    try:
        if weights_setting == "none":
            log(RANDOM_WEIGHTS_WARNING)
        extractor = _extractor_for(
            extractor, backbone, BACKBONES[backbone], weights_setting, size, batch_size, seed
        )
        written, seconds = _extract_videos(
            writer, extractor, dataset, sources, todo, (num_frames, multi_scale, scale_source),
            on_error, progress, log,
        )
        writer.finish()
    finally:
        writer.close()
    if writer.skipped:
        log(f"{len(writer.skipped)} video(s) skipped; listed in the 'skipped' attribute of {writer.out}")
    return ExtractionSummary(writer.out, written, already_done, dict(writer.skipped), seconds)


def _check_extraction_arguments(dataset, on_error, size, num_frames, scale_source, batch_size,
                                num_shards, shard_index):
    """Refuses bad arguments of `extract_features` before anything is
    opened; returns the frame size as (height, width).

    Raises:
        ValueError: naming the argument (as its command-line flag where the
            user gives it as one) and what was expected.
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    size = normalize_size(size)
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames!r}")
    check_scale_source(scale_source)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if len(dataset.paths) == 0:
        raise ValueError("the dataset holds no videos")
    num_shards, shard_index = int(num_shards), int(shard_index)
    if num_shards < 1:
        raise ValueError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    if num_shards > len(dataset.paths):
        raise ValueError(
            f"--num-shards {num_shards} is more than the {len(dataset.paths)} videos; "
            "every share needs at least one"
        )
    return size


def _checked_weights_setting(weights):
    """The weights as the file records them (`_weights_setting`); a local
    weights file must exist.

    Raises:
        ValueError: `weights` names a file that does not exist.
    """
    setting = _weights_setting(weights)
    if setting not in ("none", "imagenet") and not os.path.isfile(setting):
        raise ValueError(f"weights file {weights!r} does not exist")
    return setting


def _share_of_videos(dataset, sources, out, settings, num_shards, shard_index):
    """(positions of the videos this process extracts, the file it writes,
    its settings): every video into `out`, or with `num_shards` > 1 share
    `shard_index` into its part file, whose settings also identify the
    share and the whole list (so parts of other lists never mix)."""
    if num_shards == 1:
        return range(len(sources)), out, settings
    settings = dict(
        settings, num_shards=num_shards, shard_index=shard_index,
        shard_list=_video_list_digest(sources, dataset.labels),
    )
    share = shard_indices(len(sources), shard_index, num_shards)
    return share, part_path(out, shard_index, num_shards), settings


def _videos_to_do(writer, share, sources, retry_skipped, log):
    """Opens the writer and says where it resumes; returns (rows the file
    already holds, positions of the share's videos still to extract).

    A video an earlier run skipped stays skipped unless `retry_skipped`.
    """
    done, skipped_before = writer.open()
    todo = [
        index for index in share
        if sources[index] not in done and (retry_skipped or sources[index] not in skipped_before)
    ]
    if done or skipped_before:
        log(
            f"resuming {writer.partial if writer.source_state == 'partial' else writer.out}: "
            f"{len(done)} videos done, {len(skipped_before)} skipped before, {len(todo)} to go"
        )
    return len(done), todo


def _extractor_for(extractor, backbone, feature_dim, weights_setting, size, batch_size, seed):
    """The extractor given (checked against the run's backbone and size),
    or a new `FrameFeatureExtractor`.

    Raises:
        ValueError: the extractor given takes another frame size or gives
            another feature size than the backbone asked for.
    """
    if extractor is None:
        return FrameFeatureExtractor(
            backbone, None if weights_setting == "none" else weights_setting, size, batch_size,
            seed,
        )
    if extractor.size != size or extractor.feature_dim != feature_dim:
        raise ValueError(
            f"the extractor given takes {extractor.size} frames with {extractor.feature_dim} "
            f"features; this run asks for {size} and backbone {backbone!r}"
        )
    return extractor


def _extract_videos(writer, extractor, dataset, sources, todo, sampling, on_error, progress,
                    log):
    """Appends one row per video of `todo` (positions in the list) to the
    writer, each committed as soon as it is written, so a killed run
    resumes after the last one; an unreadable video is skipped (recorded)
    or, with `on_error="fail"`, stops the run.

    Args:
        sampling: (num_frames, multi_scale, scale_source), as
            `FrameFeatureExtractor.video_features` takes them.

    Returns:
        (rows written, seconds spent).
    """
    started = time.perf_counter()
    bar = _progress_bar(len(todo)) if progress else None
    written = 0
    for step, index in enumerate(todo, start=1):
        source = sources[index]
        try:
            features, _ = extractor.video_features(source, *sampling)
        except VideoError as error:
            if on_error == "fail":
                raise
            writer.skip(source, error.problem)
            log(f"skipped {error}")
        else:
            split = dataset.splits[index] if dataset.splits is not None else None
            writer.append(features, dataset.labels[index], source, split, video_index=index)
            written += 1
        if bar is not None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.update(step, values=[("videos/s", step / elapsed)])
    return written, time.perf_counter() - started


def part_path(out, shard_index, num_shards):
    """The part file of share `shard_index` of `num_shards` of `out`.

    Example:

    >>> part_path("features.h5", 1, 2)
    'features.part-00001-of-00002.h5'
    """
    root, ext = os.path.splitext(os.fspath(out))
    return PART_PATTERN.format(root=root, index=int(shard_index), count=int(num_shards), ext=ext)


def shard_indices(count, shard_index, num_shards):
    """Positions in a `count`-video list that share `shard_index` takes.

    Every `num_shards`-th video, starting at `shard_index`: shares differ
    by at most one video, and each share draws from the whole list (every
    class of a class-sorted list) rather than from one block of it.

    Example:

    >>> list(shard_indices(5, 1, 2))
    [1, 3]
    """
    return range(int(shard_index), int(count), int(num_shards))


def _video_list_digest(sources, labels):
    """Identifies the whole video list (paths and labels) that was split:
    parts of different lists are never resumed into or merged together."""
    digest = hashlib.sha256()
    for source, label in zip(sources, labels):
        digest.update(f"{source}\t{int(label)}\n".encode("utf-8"))
    return digest.hexdigest()


# What every part of one sharded extraction shares; checked before a merge.
_MERGE_ATTRS = FeatureWriter._SETTING_ATTRS + (
    "category_mapping", "format_version", "num_shards", "shard_list",
)


def find_parts(out):
    """The part files of `out` on disk (`part_path` names), sorted."""
    root, ext = os.path.splitext(os.fspath(out))
    pattern = f"{glob.escape(root)}.part-[0-9]*-of-[0-9]*{glob.escape(ext)}"
    return sorted(glob.glob(pattern))


def merge_feature_parts(out, parts=None, log=None):
    """Joins the part files of a sharded extraction into the one file `out`.

    The rows come in the order of the whole video list, as a one-process
    extraction writes them; the attributes are a one-process file's (the
    `skipped` lists of the parts joined). `out` is written through
    `<out>.partial` like an extraction's (an interrupted merge resumes) and
    is never overwritten.

    Args:
        out: the .h5 file to write.
        parts: the part files; None or empty finds them beside `out`
            (`find_parts`).
        log: function taking one line (default: print to stderr).

    Returns:
        An `ExtractionSummary` (`written`: rows merged by this call).

    Raises:
        FileExistsError: `out` exists.
        ValueError: no parts, a part missing, incomplete (still being
            extracted: only its `.partial` exists) or not a part file,
            parts of different settings or video lists, or two parts
            holding the same share or the same video.
    """
    log = log or (lambda line: print(line, file=sys.stderr))
    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out):
        raise FileExistsError(
            f"{out}: exists; a merge never overwrites it (remove it or merge into another file)"
        )
    parts = [os.path.abspath(os.fspath(part)) for part in (parts or find_parts(out))]
    if not parts:
        root, ext = os.path.splitext(out)
        raise ValueError(f"{out}: no part files {root}.part-*-of-*{ext} found to merge")
    started = time.perf_counter()
    files = {}
    try:
        for part in parts:
            files[part] = _open_part(part)
        _check_parts_belong_together(parts, files)
        _check_every_share_is_there(out, parts, files)
        rows, skipped, seen = _rows_in_list_order(parts, files)
        written, already_done, skipped = _write_merged_rows(
            out, files, parts[0], rows, skipped, seen, log
        )
    finally:
        for file in files.values():
            file.close()
    log(f"merged {len(parts)} parts into {out}: {len(rows)} videos, {len(skipped)} skipped")
    return ExtractionSummary(out, written, already_done, skipped, time.perf_counter() - started)


def _open_part(part):
    """Opens a part file for reading, checked to be a complete part file.

    Raises:
        ValueError: the part is missing, still being extracted (only its
            `.partial` exists), not a part file or marked incomplete.
    """
    if not os.path.isfile(part):
        if os.path.exists(partial_path(part)):
            raise ValueError(
                f"{part}: incomplete (only {partial_path(part)} exists: its extraction "
                "is running or was interrupted; re-run it to finish)"
            )
        raise ValueError(f"{part}: no such part file")
    file = _open_h5(part, "r")
    try:
        if _attr(file, "format") != FORMAT or "num_shards" not in file.attrs:
            raise ValueError(
                f"{part}: not a part file of data.extract --num-shards (no num_shards attribute)"
            )
        if not bool(_attr(file, "complete", False)):
            raise ValueError(f"{part}: marked incomplete; re-run its extraction to finish it")
    except ValueError:
        file.close()
        raise
    return file


def _check_parts_belong_together(parts, files):
    """Refuses parts of different settings or video lists (`_MERGE_ATTRS`),
    naming the first that differs from the first part."""
    reference = parts[0]
    for part in parts[1:]:
        for name in _MERGE_ATTRS:
            stored, wanted = (_attr_value(files[p], name) for p in (part, reference))
            if stored != wanted and name == "shard_list":
                raise ValueError(
                    f"{part}: was extracted from another video list than {reference} (the "
                    "paths or labels of the videos differ); merge the parts of one "
                    "extraction only"
                )
            if stored != wanted:
                raise ValueError(
                    f"{part}: was extracted with {name}={stored!r} but {reference} with "
                    f"{name}={wanted!r}; merge the parts of one extraction only"
                )


def _check_every_share_is_there(out, parts, files):
    """Refuses two parts of the same share, and a share without its part
    (named as missing, or as incomplete when only its `.partial` exists)."""
    num_shards = int(files[parts[0]].attrs["num_shards"])
    by_index = {}
    for part in parts:
        index = int(files[part].attrs["shard_index"])
        if index in by_index:
            raise ValueError(
                f"{part}: holds share {index} of {num_shards}, as {by_index[index]} does"
            )
        by_index[index] = part
    for index in range(num_shards):
        if index not in by_index:
            expected = part_path(out, index, num_shards)
            state = "incomplete (only its .partial exists)" if os.path.exists(
                partial_path(expected)) else "missing"
            raise ValueError(f"{expected}: share {index} of {num_shards} is {state}")


def _rows_in_list_order(parts, files):
    """Every row of every part, in the order of the whole video list.

    Returns:
        (rows, skipped, seen): rows as (position in the list, part, row in
        the part, source), sorted; {path: error} of the videos the parts
        skipped; {source: part} of the videos the parts hold.

    Raises:
        ValueError: two parts hold the same video.
    """
    rows, skipped, seen = [], {}, {}
    for part in parts:
        file = files[part]
        count = int(file.attrs["num_videos"])
        for row, (position, source) in enumerate(zip(
                file["video_index"][:count].tolist(), file["sources"][:count])):
            source = _decode(source)
            if source in seen:
                raise ValueError(f"{part}: holds {source}, which {seen[source]} holds too")
            seen[source] = part
            rows.append((int(position), part, row, source))
        skipped.update(
            (entry["path"], entry["error"])
            for entry in json.loads(_attr(file, "skipped", "[]"))
        )
    rows.sort()
    return rows, skipped, seen


def _one_process_settings(file):
    """The settings a one-process extraction with `file`'s would have had
    (without the share's)."""
    attrs = file.attrs
    frames, multi_scale = int(attrs["frames"]), bool(attrs["multi_scale"])
    return {
        "backbone": _attr(file, "backbone"),
        "weights": _attr(file, "weights"),
        "frames": frames,
        "size": [int(value) for value in attrs["size"]],
        "multi_scale": multi_scale,
        "scale_source": _attr(file, "scale_source", DEFAULT_SCALE_SOURCE),
        "steps": max(scale_lengths(frames, multi_scale)),
        "seed": _attr_value(file, "seed"),
        "backbone_id": _attr(file, "backbone_id"),
    }


def _write_merged_rows(out, files, reference, rows, skipped, seen, log):
    """Writes the rows into `out` through a `FeatureWriter`, so an
    interrupted merge resumes from `<out>.partial` like an extraction.

    A video some part skipped counts as skipped only when no part holds it.

    Returns:
        (rows written by this call, rows merged before, {path: error} of
        the merged file's skipped videos).

    Raises:
        FileExistsError: `out` appeared complete meanwhile.
    """
    reference_file = files[reference]
    class_names = _class_names(reference, _attr(reference_file, "category_mapping"))
    writer = FeatureWriter(
        out, _one_process_settings(reference_file), class_names,
        int(reference_file.attrs["feature_dim"]), log=log,
    )
    writer.open()
    try:
        if writer.source_state == "complete":
            raise FileExistsError(
                f"{out}: exists; a merge never overwrites it (remove it or merge into "
                "another file)"
            )
        _check_merge_resumes(writer, _attr(reference_file, "shard_list"), seen)
        already_done = len(writer.done)
        if already_done:
            log(f"resuming {writer.partial}: {already_done} rows merged before")
        written = 0
        for _, part, row, source in rows:
            if source in writer.done:
                continue
            file = files[part]
            steps = int(file["num_frames"][row])
            writer.append(
                file["features"][row][:steps], int(file["labels"][row]), source,
                _decode(file["splits"][row]),
            )
            written += 1
        writer.skipped.update(
            (path, error) for path, error in skipped.items()
            if path not in writer.done and path not in seen
        )
        if "merged_list" in writer.file.attrs:  # the merged file is a one-process file
            del writer.file.attrs["merged_list"]
        writer.finish()
    finally:
        writer.close()
    return written, already_done, dict(writer.skipped)


def _check_merge_resumes(writer, video_list, sources):
    """Records the parts' video list in a new merge (until it is finished),
    or refuses to resume a merge begun from parts of another list (another
    recorded list, or rows the parts do not hold)."""
    file = writer.file
    if writer.source_state == "new":
        file.attrs["merged_list"] = video_list
        file.flush()
        return
    stored = _attr(file, "merged_list")
    stale = sorted(writer.done - set(sources))
    if (stored is not None and stored != video_list) or stale:
        writer.close()
        raise ValueError(
            f"{writer.partial}: a merge begun from parts of another video list"
            + (f" (it holds {len(stale)} video(s) these parts do not, e.g. {stale[0]})"
               if stale else "")
            + "; delete it to merge these parts"
        )


def _attr_value(file, name):
    value = _attr(file, name)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def _progress_bar(total):
    import keras

    return keras.utils.Progbar(
        total, unit_name="video", stateful_metrics=["videos/s"]
    )


@dataclasses.dataclass(frozen=True)
class FeatureFile:
    """A feature file in memory, checked.

    Args:
        path: the file.
        features: float32 [N, T_max, D], zero after each row's num_frames.
        labels: int64 [N].
        num_frames: int32 [N], real steps per row.
        class_names: class name per id.
        backbone: the backbone's name (None in files without it).
        feature_dim: D.
        multi_scale: whether scales were averaged (None if not recorded).
        sources: the video of each row (None in files without them).
        splits: "train"/"val"/"test"/"unused" per row, or None.
        skipped: ((path, error), ...) of the videos extraction skipped.
    """

    path: str
    features: np.ndarray
    labels: np.ndarray
    num_frames: np.ndarray
    class_names: tuple
    backbone: str | None
    feature_dim: int
    multi_scale: bool | None = None
    sources: tuple | None = None
    splits: tuple | None = None
    skipped: tuple = ()

    @property
    def num_videos(self):
        return int(self.features.shape[0])

    @property
    def max_frames(self):
        return int(self.features.shape[1])

    @property
    def category_mapping(self):
        return {name: index for index, name in enumerate(self.class_names)}

    @property
    def mask(self):
        """bool [N, T_max]: True on each row's real steps."""
        return np.arange(self.max_frames)[None, :] < self.num_frames[:, None]


def read_feature_file(path, expected_dim=None):
    """Reads and checks a feature file (ours or the design notes').

    Args:
        path: the .h5 file.
        expected_dim: the feature size the model or checkpoint takes; a
            file with another `feature_dim` is refused.

    Returns:
        A `FeatureFile`.

    Raises:
        ValueError: the file is missing, not HDF5, marked incomplete (an
            interrupted extraction: re-run it), lacks a dataset or attribute
            of the schema or has one of the wrong shape or type (named), has
            a `feature_dim` other than `expected_dim` (both numbers named),
            labels outside the class mapping, or NaN / Inf (the row named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such feature file")
    with _open_h5(path, "r") as file:
        complete = file.attrs.get("complete")
        if complete is not None and not bool(complete):
            raise ValueError(
                f"{path}: marked incomplete (an interrupted extraction); re-run data.extract "
                "with the same arguments to finish it"
            )
        count, steps, feature_dim = _checked_schema(file, path, expected_dim)
        class_names = _class_names(path, _attr(file, "category_mapping"))
        labels, num_frames = _checked_labels_and_lengths(file, path, len(class_names), steps)
        sources, splits = _row_sources_and_splits(file, path, count)
        features = _finite_features(file["features"], path, sources)
        skipped = tuple(
            (entry["path"], entry["error"]) for entry in json.loads(_attr(file, "skipped", "[]"))
        )
        multi_scale = file.attrs.get("multi_scale")
        return FeatureFile(
            path=path,
            features=features,
            labels=labels,
            num_frames=num_frames,
            class_names=class_names,
            backbone=_attr(file, "backbone"),
            feature_dim=feature_dim,
            multi_scale=None if multi_scale is None else bool(multi_scale),
            sources=sources,
            splits=splits,
            skipped=skipped,
        )


def _checked_schema(file, path, expected_dim):
    """Checks the datasets and attributes of the schema, their shapes and
    types against one another, and the feature size against
    `expected_dim`; returns (N, T_max, D).

    Raises:
        ValueError: naming the dataset or attribute and what was expected.
    """
    for name in REQUIRED_DATASETS:
        if name not in file or not isinstance(file[name], h5py.Dataset):
            raise ValueError(f"{path}: not a feature file: dataset {name!r} is missing")
    for name in REQUIRED_ATTRS:
        if name not in file.attrs:
            raise ValueError(f"{path}: not a feature file: attribute {name!r} is missing")
    features = file["features"]
    if features.ndim != 3 or features.dtype.kind != "f":
        raise ValueError(
            f"{path}: dataset 'features' must be float [N, T, D], got {features.dtype} {features.shape}"
        )
    count, steps, dim = features.shape
    feature_dim = int(file.attrs["feature_dim"])
    if feature_dim != dim:
        raise ValueError(
            f"{path}: attribute feature_dim={feature_dim} but 'features' has D={dim}"
        )
    if expected_dim is not None and int(expected_dim) != feature_dim:
        raise ValueError(
            f"{path}: features have feature_dim {feature_dim} but the model expects "
            f"{int(expected_dim)}; extract with a backbone of dimension {int(expected_dim)}"
        )
    for name, value in (("num_videos", count), ("max_frames", steps)):
        if int(file.attrs[name]) != value:
            raise ValueError(
                f"{path}: attribute {name}={int(file.attrs[name])} but 'features' has {value}"
            )
    for name in ("labels", "num_frames"):
        dataset = file[name]
        if dataset.shape != (count,) or dataset.dtype.kind not in "iu":
            raise ValueError(
                f"{path}: dataset {name!r} must be integer [{count}], got {dataset.dtype} {dataset.shape}"
            )
    return count, steps, dim


def _checked_labels_and_lengths(file, path, num_classes, steps):
    """(labels int64 [N], num_frames int32 [N]), each label one of the
    `num_classes` classes and each row 1 to `steps` real steps long.

    Raises:
        ValueError: naming the first row out of range.
    """
    labels = file["labels"][()].astype(np.int64)
    num_frames = file["num_frames"][()].astype(np.int32)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(
            f"{path}: labels row {int(bad[0])} is {int(labels[bad[0]])}, outside the "
            f"{num_classes} classes of category_mapping"
        )
    bad = np.flatnonzero((num_frames < 1) | (num_frames > steps))
    if bad.size:
        raise ValueError(
            f"{path}: num_frames row {int(bad[0])} is {int(num_frames[bad[0]])}, "
            f"expected 1..{steps}"
        )
    return labels, num_frames


def _row_sources_and_splits(file, path, count):
    """(each row's video, each row's split): tuples of strings, or None in
    files without them (the notes'); splits that are all empty are None.

    Raises:
        ValueError: `sources` has another number of rows than `features`.
    """
    sources = None
    if "sources" in file:
        if file["sources"].shape != (count,):
            raise ValueError(f"{path}: dataset 'sources' must have {count} rows")
        sources = tuple(_decode(value) for value in file["sources"][()])
    splits = None
    if "splits" in file and file["splits"].shape == (count,):
        splits = tuple(_decode(value) for value in file["splits"][()])
        if not any(splits):
            splits = None
    return sources, splits


def _finite_features(features, path, sources):
    """The `features` dataset as float32 [N, T_max, D], read `_READ_ROWS`
    rows at a time so that the NaN/Inf check never holds a second copy.

    Raises:
        ValueError: a row holds NaN or Inf (named, with its video when the
            file lists them).
    """
    count = features.shape[0]
    data = np.empty(features.shape, np.float32)
    for start in range(0, count, _READ_ROWS):
        block = features[start:start + _READ_ROWS]
        finite = np.isfinite(block).all(axis=(1, 2))
        if not finite.all():
            row = start + int(np.flatnonzero(~finite)[0])
            where = f" ({sources[row]})" if sources else ""
            raise ValueError(f"{path}: features row {row}{where} contains NaN or Inf")
        data[start:start + len(block)] = block
    return data


def _class_names(path, mapping_json):
    """Class names by id from category_mapping JSON ({name: id} or {id: name})."""
    try:
        mapping = json.loads(mapping_json)
    except (TypeError, json.JSONDecodeError):
        raise ValueError(f"{path}: attribute 'category_mapping' is not JSON") from None
    if isinstance(mapping, list):
        names = [str(name) for name in mapping]
    elif isinstance(mapping, dict) and all(isinstance(v, int) for v in mapping.values()):
        names = [None] * len(mapping)
        for name, index in mapping.items():
            if not 0 <= index < len(mapping) or names[index] is not None:
                raise ValueError(
                    f"{path}: attribute 'category_mapping' ids must be 0..{len(mapping) - 1}, "
                    f"each once; got {mapping}"
                )
            names[index] = name
    elif isinstance(mapping, dict) and all(str(k).lstrip("-").isdigit() for k in mapping):
        ids = sorted(int(k) for k in mapping)
        if ids != list(range(len(ids))):
            raise ValueError(f"{path}: attribute 'category_mapping' ids must be 0..{len(ids) - 1}")
        names = [str(mapping[str(i)]) for i in ids]
    else:
        raise ValueError(
            f"{path}: attribute 'category_mapping' must map class name -> id, got {mapping_json!r}"
        )
    if not names:
        raise ValueError(f"{path}: attribute 'category_mapping' is empty")
    return tuple(names)


__all__ = [
    "DEFAULT_BACKBONE",
    "ExtractionSummary",
    "FeatureFile",
    "FeatureWriter",
    "FrameFeatureExtractor",
    "DEFAULT_SCALE_SOURCE",
    "MIN_SCALE_FRAMES",
    "SCALES",
    "SCALE_SOURCES",
    "extract_features",
    "find_parts",
    "merge_feature_parts",
    "part_path",
    "partial_path",
    "read_feature_file",
    "rescale_indices",
    "scale_lengths",
    "shard_indices",
]
