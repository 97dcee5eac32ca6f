"""Video-summarization data: the public HDF5 files, splits, tf.data, synthetic.

The public TVSum and SumMe files (`eccv16_dataset_tvsum_google_pool5.h5`,
`eccv16_dataset_summe_google_pool5.h5`) hold one group per video:

| field             | shape               | meaning                                   |
|-------------------|---------------------|-------------------------------------------|
| `features`        | [n_picks, 1024]     | GoogLeNet pool5 features of the picks      |
| `gtscore`         | [n_picks]           | importance of each pick, mean of the users |
| `user_summary`    | [n_users, n_frames] | each user's binary keyshot summary         |
| `change_points`   | [n_segs, 2]         | KTS shots as [first, last] frame           |
| `n_frame_per_seg` | [n_segs]            | frames per shot                            |
| `n_frames`        | scalar              | frames in the video                        |
| `picks`           | [n_picks]           | frame index of each sub-sampled frame      |

Other datasets in a group (`gtsummary`, `n_steps`) are ignored, and
`video_name` (the source video's name, in the public TVSum/SumMe files) is
kept to find the video file; an optional `user_scores` [n_annotators, n_frames] (e.g. TVSum's
raw per-annotator scores) is read when present and then used for the rank
correlations.

Splits are the public JSON format: a list of `{"train_keys": [...],
"test_keys": [...]}`, five random 80/20 splits by convention.

`synthetic_summary_videos` renders videos with known important frames
(moving shapes from `data.synthetic` plus short events: a flash or a second
object appearing); `synthetic_summary_records` turns them into records of
the public schema with cheap deterministic features, and
`write_summary_file` writes such records as a file the reader accepts.

Example:

>>> import tempfile
>>> records = synthetic_summary_records(4, seed=0, feature_dim=64)
>>> path = write_summary_file(records, os.path.join(tempfile.mkdtemp(), "toy.h5"))
>>> videos = read_summary_file(path)
>>> sorted(videos)[:2], videos["video_1"].features.shape[1]
(['video_1', 'video_2'], 64)
"""

import dataclasses
import json
import os
import re

import h5py
import numpy as np

from common.files import atomic_path, write_json
from data.synthetic import MOTIONS, SHAPES, render_clip

REQUIRED_FIELDS = (
    "features", "gtscore", "user_summary", "change_points",
    "n_frame_per_seg", "n_frames", "picks",
)
PUBLIC_FEATURE_DIM = 1024


@dataclasses.dataclass
class SummaryVideo:
    """One video of a summarization file (see the module docstring)."""

    key: str
    features: np.ndarray
    gtscore: np.ndarray
    user_summary: np.ndarray
    change_points: np.ndarray
    n_frame_per_seg: np.ndarray
    n_frames: int
    picks: np.ndarray
    user_scores: np.ndarray | None = None
    video_name: str | None = None

    @property
    def n_picks(self):
        return int(self.features.shape[0])


# --------------------------------------------------------------------------
# Reading.


def natural_key(key):
    """Sort key that puts `video_2` before `video_10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def read_summary_file(path, expected_dim=None):
    """Reads every video of a summarization HDF5 file, checking the schema.

    Args:
        path: the `.h5` file.
        expected_dim: the feature size the model expects; a file with
            another size is refused with both numbers in the message.

    Returns:
        dict video key -> `SummaryVideo`, in natural key order.

    Raises:
        ValueError: a missing or unreadable file, a file that is not HDF5,
            a video whose fields do not follow the schema (wrong shapes,
            NaN or Inf in `features`, `gtscore`, `user_summary` or
            `user_scores`, `n_frame_per_seg` other than the frames of each
            `change_points` segment), or videos whose features differ in
            width; the message names the file, the video and the field.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"summarization file {path} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({error})") from None
    with handle:
        keys = sorted(handle.keys(), key=natural_key)
        if not keys:
            raise ValueError(f"{path}: no video groups; expected one group per video")
        videos = {}
        for key in keys:
            group = handle[key]
            if not isinstance(group, h5py.Group):
                raise ValueError(
                    f"{path}: {key!r} is a dataset; expected one group per video "
                    f"with fields {', '.join(REQUIRED_FIELDS)}"
                )
            videos[key] = _read_video(path, key, group)
    first_key = keys[0]
    width = videos[first_key].features.shape[1]
    for key, video in videos.items():
        if video.features.shape[1] != width:
            raise ValueError(
                f"{path}: video {key!r} has {video.features.shape[1]}-d features but video "
                f"{first_key!r} has {width}-d; every video of a file needs features of one width"
            )
    if expected_dim is not None:
        for key, video in videos.items():
            if video.features.shape[1] != int(expected_dim):
                raise ValueError(
                    f"{path}: video {key!r}: features are {video.features.shape[1]}-d "
                    f"but the model expects {int(expected_dim)}-d features"
                )
    return videos


def _read_video(path, key, group):
    """One video group of a summarization file, checked field by field.

    Args:
        path: the file (for messages).
        key: the group's name.
        group: the open h5py group.

    Returns:
        A `SummaryVideo`.

    Raises:
        ValueError: a missing field or one that breaks the schema, named
            with the file and the video.
    """
    where = f"{path}: video {key!r}"
    missing = [name for name in REQUIRED_FIELDS if name not in group]
    if missing:
        raise ValueError(
            f"{where} has no field {', '.join(map(repr, missing))}; expected fields "
            f"{', '.join(REQUIRED_FIELDS)}"
        )
    # Checked in this order, so a file broken in several fields is named
    # by the same field every time.
    features = _checked_features(where, group)
    n_picks = features.shape[0]
    n_frames = _checked_n_frames(where, group)
    gtscore = _checked_gtscore(where, group, n_picks)
    picks = _checked_picks(where, group, n_picks, n_frames)
    user_summary = _checked_user_summary(where, group, n_frames)
    change_points, n_frame_per_seg = _checked_shots(where, group, n_frames)
    user_scores = _checked_user_scores(where, group, n_frames)
    return SummaryVideo(
        key=key,
        features=features.astype(np.float32),
        video_name=_video_name(group),
        gtscore=gtscore,
        user_summary=user_summary,
        change_points=change_points,
        n_frame_per_seg=n_frame_per_seg,
        n_frames=n_frames,
        picks=picks,
        user_scores=user_scores,
    )


def _numeric_field(where, group, name):
    """The dataset `name` of a video group as a NumPy array.

    Raises:
        ValueError: the field is a group, or not numeric.
    """
    item = group[name]
    if not isinstance(item, h5py.Dataset):
        raise ValueError(f"{where}: field {name!r} must be a dataset, not a group")
    value = item[()]
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
    if value.dtype.kind not in "iufb":
        raise ValueError(f"{where}: field {name!r} must be numeric, got {value.dtype}")
    return value


def _checked_features(where, group):
    """`features` [n_picks, D], at least one pick and one dimension, finite."""
    features = _numeric_field(where, group, "features")
    if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] < 1:
        raise ValueError(f"{where}: field 'features' must be [n_picks, D], got shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{where}: field 'features' holds NaN or Inf")
    return features


def _checked_n_frames(where, group):
    """`n_frames` as an int: one positive integer (stored as any number)."""
    n_frames = _numeric_field(where, group, "n_frames").reshape(-1)
    if n_frames.size != 1 or not n_frames[0] >= 1 or n_frames[0] != np.round(n_frames[0]):
        raise ValueError(
            f"{where}: field 'n_frames' must be one positive integer, got {n_frames.tolist()}"
        )
    return int(n_frames[0])


def _checked_gtscore(where, group, n_picks):
    """`gtscore` as float32 [n_picks]: one finite score per pick."""
    gtscore = _numeric_field(where, group, "gtscore")
    if gtscore.ndim != 1 or gtscore.shape[0] != n_picks:
        raise ValueError(
            f"{where}: field 'gtscore' must hold one score per pick ({n_picks}), "
            f"got shape {gtscore.shape}"
        )
    gtscore = gtscore.astype(np.float32)
    if not np.all(np.isfinite(gtscore)):
        raise ValueError(f"{where}: field 'gtscore' holds NaN or Inf")
    return gtscore


def _checked_picks(where, group, n_picks, n_frames):
    """`picks` as int64 [n_picks]: increasing frame indices of the video."""
    picks = _integers(where, "picks", _numeric_field(where, group, "picks")).reshape(-1)
    if picks.shape != (n_picks,):
        raise ValueError(
            f"{where}: field 'picks' must list one frame per feature row ({n_picks}), "
            f"got {picks.size}"
        )
    if np.any(np.diff(picks) <= 0) or picks[0] < 0 or picks[-1] >= n_frames:
        raise ValueError(
            f"{where}: field 'picks' must be increasing frame indices in [0, {n_frames})"
        )
    return picks


def _checked_user_summary(where, group, n_frames):
    """`user_summary` as float32 [n_users, n_frames], finite, one user at least."""
    user_summary = _numeric_field(where, group, "user_summary").astype(np.float32)
    if user_summary.ndim != 2 or user_summary.shape[1] != n_frames or user_summary.shape[0] < 1:
        raise ValueError(
            f"{where}: field 'user_summary' must be [n_users, n_frames={n_frames}], "
            f"got shape {user_summary.shape}"
        )
    _check_finite(where, "user_summary", user_summary, "user")
    return user_summary


def _checked_shots(where, group, n_frames):
    """(`change_points` int64 [n_segs, 2], `n_frame_per_seg` int64 [n_segs]):
    shots as [first, last] frames of the video, and their frame counts."""
    change_points = _integers(where, "change_points", _numeric_field(where, group, "change_points"))
    if change_points.ndim != 2 or change_points.shape[1] != 2 or change_points.shape[0] < 1:
        raise ValueError(
            f"{where}: field 'change_points' must be [n_segs, 2], got shape {change_points.shape}"
        )
    if np.any(change_points < 0) or np.any(change_points >= n_frames) or np.any(
        change_points[:, 1] < change_points[:, 0]
    ):
        raise ValueError(
            f"{where}: field 'change_points' must hold [first, last] frames in [0, {n_frames})"
        )
    n_frame_per_seg = _integers(
        where, "n_frame_per_seg", _numeric_field(where, group, "n_frame_per_seg")
    ).reshape(-1)
    if n_frame_per_seg.shape != (change_points.shape[0],):
        raise ValueError(
            f"{where}: field 'n_frame_per_seg' must have one entry per change point "
            f"({change_points.shape[0]}), got {n_frame_per_seg.size}"
        )
    _check_shot_lengths(where, change_points, n_frame_per_seg)
    return change_points, n_frame_per_seg


def _check_shot_lengths(where, change_points, n_frame_per_seg):
    """Refuses `n_frame_per_seg` that disagrees with `change_points`.

    The evaluation spreads shot scores with change_points and sizes the
    knapsack with n_frame_per_seg, so the two must describe the same shots.
    """
    segment_frames = change_points[:, 1] - change_points[:, 0] + 1
    differ = np.flatnonzero(segment_frames != n_frame_per_seg)
    if differ.size:
        segment = int(differ[0])
        first, last = change_points[segment].tolist()
        raise ValueError(
            f"{where}: field 'n_frame_per_seg' disagrees with 'change_points': segment "
            f"{segment} [{first}, {last}] holds {int(segment_frames[segment])} frames "
            f"(last - first + 1) but n_frame_per_seg says {int(n_frame_per_seg[segment])}"
            + (f" ({differ.size} segments differ)" if differ.size > 1 else "")
        )


def _checked_user_scores(where, group, n_frames):
    """The optional `user_scores` as float32 [n_annotators, n_frames],
    finite; None when the group has none."""
    if "user_scores" not in group:
        return None
    user_scores = _numeric_field(where, group, "user_scores").astype(np.float32)
    if user_scores.ndim != 2 or user_scores.shape[1] != n_frames:
        raise ValueError(
            f"{where}: field 'user_scores' must be [n_annotators, n_frames={n_frames}], "
            f"got shape {user_scores.shape}"
        )
    _check_finite(where, "user_scores", user_scores, "annotator")
    return user_scores


def _video_name(group):
    """The source video's name (`video_name`, a string or bytes), or None."""
    if "video_name" not in group or not isinstance(group["video_name"], h5py.Dataset):
        return None
    value = group["video_name"][()]
    value = value.item() if isinstance(value, np.ndarray) and value.size == 1 else value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _check_finite(where, name, value, row_name):
    """Refuses NaN or Inf in a [rows, n_frames] field, naming the first."""
    bad = np.argwhere(~np.isfinite(value))
    if bad.size:
        row, frame = bad[0].tolist()
        raise ValueError(
            f"{where}: field {name!r} holds NaN or Inf ({row_name} {row}, frame {frame}); "
            "expected finite numbers"
        )


def _integers(where, name, value):
    if value.dtype.kind == "f":
        if not np.all(np.isfinite(value)) or np.any(value != np.round(value)):
            raise ValueError(f"{where}: field {name!r} must hold integers")
    return value.astype(np.int64)


def default_reduction(path):
    """`"max"` for SumMe files (the field's convention), `"avg"` otherwise."""
    return "max" if "summe" in os.path.basename(os.fspath(path)).lower() else "avg"


# --------------------------------------------------------------------------
# Writing.


def write_summary_file(records, path):
    """Writes records in the public schema, atomically (temp file + rename).

    Args:
        records: dict key -> `SummaryVideo` (or a dict with its fields).
        path: the `.h5` file to write.

    Returns:
        `path`.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as out:
        for key, record in records.items():
            record = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else record
            group = out.create_group(key)
            group.create_dataset("features", data=np.asarray(record["features"], np.float32))
            group.create_dataset("gtscore", data=np.asarray(record["gtscore"], np.float32))
            group.create_dataset("user_summary", data=np.asarray(record["user_summary"], np.float32))
            group.create_dataset("change_points", data=np.asarray(record["change_points"], np.int32))
            group.create_dataset("n_frame_per_seg", data=np.asarray(record["n_frame_per_seg"], np.int32))
            group.create_dataset("n_frames", data=np.int32(record["n_frames"]))
            group.create_dataset("picks", data=np.asarray(record["picks"], np.int32))
            if record.get("user_scores") is not None:
                group.create_dataset("user_scores", data=np.asarray(record["user_scores"], np.float32))
            if record.get("video_name") is not None:
                group.create_dataset("video_name", data=str(record["video_name"]))
    return path


# --------------------------------------------------------------------------
# Splits.


def make_splits(keys, num_splits=5, train_fraction=0.8, seed=0):
    """Random train/test splits, each an independent shuffle of the keys.

    As in the public split files, the splits are independent random 80/20
    draws (not disjoint folds).

    Returns:
        list of `{"train_keys": [...], "test_keys": [...]}`.
    """
    keys = sorted(keys, key=natural_key)
    if len(keys) < 2:
        raise ValueError(f"splitting needs at least 2 videos, got {len(keys)}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    num_train = min(max(1, int(round(train_fraction * len(keys)))), len(keys) - 1)
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(int(num_splits)):
        order = rng.permutation(len(keys))
        splits.append({
            "train_keys": sorted((keys[i] for i in order[:num_train]), key=natural_key),
            "test_keys": sorted((keys[i] for i in order[num_train:]), key=natural_key),
        })
    return splits


def save_splits(splits, path):
    """Writes splits as JSON (atomically)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, splits)


def load_splits(path, keys=None):
    """Reads a split file, optionally checking its keys against a dataset.

    Keys written as `<anything>/video_1` (some public files prefix the
    dataset path) are reduced to the part after the last `/` when the full
    key is not in `keys`.

    Raises:
        ValueError: a missing file, invalid JSON, a wrong structure, or keys
            that are not in `keys`; the message names the file and split.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"split file {path} does not exist")
    try:
        with open(path) as handle:
            splits = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"split file {path}: not valid JSON ({error})") from None
    expected = 'a list of {"train_keys": [...], "test_keys": [...]}'
    if not isinstance(splits, list) or not splits:
        raise ValueError(f"split file {path}: expected {expected}")
    known = None if keys is None else set(keys)
    checked = []
    for index, split in enumerate(splits):
        if not isinstance(split, dict) or not all(
            isinstance(split.get(name), list) and all(isinstance(k, str) for k in split[name])
            for name in ("train_keys", "test_keys")
        ):
            raise ValueError(f"split file {path}: split {index} is not {expected[13:]}")
        resolved = {}
        for name in ("train_keys", "test_keys"):
            names = [_resolve_key(k, known) for k in split[name]]
            if known is not None:
                unknown = [k for k in names if k not in known]
                if unknown:
                    raise ValueError(
                        f"split file {path}: split {index} {name} names videos not in the "
                        f"dataset: {', '.join(unknown[:5])}"
                    )
            resolved[name] = names
        if not resolved["train_keys"] or not resolved["test_keys"]:
            raise ValueError(f"split file {path}: split {index} has no train or no test keys")
        checked.append(resolved)
    return checked


def select_split(splits, index, source="splits"):
    """Split number `index`, with an error naming the valid range."""
    if not 0 <= int(index) < len(splits):
        raise ValueError(f"{source}: split {index} does not exist; valid splits are 0..{len(splits) - 1}")
    return splits[int(index)]


def _resolve_key(key, known):
    if known is None or key in known:
        return key
    return key.rsplit("/", 1)[-1]


# --------------------------------------------------------------------------
# tf.data.


def summary_dataset(videos, keys, batch_size=4, shuffle=False, seed=0):
    """Padded batches of `({"features", "mask"}, gtscore)` for some videos."""
    missing = [key for key in keys if key not in videos]
    if missing:
        raise ValueError(f"videos not in the dataset: {', '.join(missing[:5])}")
    from data.sequences import sequence_dataset  # TensorFlow: reading a file needs none

    return sequence_dataset(
        [videos[key].features for key in keys],
        None,
        [videos[key].gtscore for key in keys],
        batch_size,
        shuffle=shuffle,
        seed=seed,
    )


# --------------------------------------------------------------------------
# The embedded synthetic set.


EVENT_KINDS = ("flash", "second_object")


def synthetic_summary_videos(num_videos, frames=(60, 120), height=32, width=32,
                             seed=0, smoothing=1.5):
    """Videos with known important frames.

    Each video is a shape moving over a noisy background (`data.synthetic`)
    with one to three short events (3 to 8 frames): a flash that brightens
    the whole frame, or a second, differently coloured object appearing.
    A frame's importance is 1 during an event and falls off as a Gaussian
    (standard deviation `smoothing` frames) of the distance to the nearest
    event frame, down to 0.05, so frames next to an event matter a little
    too.

    Args:
        num_videos: number of videos.
        frames: frames per video, an int or an inclusive (min, max) range.
        height, width: frame size (>= 8).
        seed: the same seed gives the same videos.
        smoothing: standard deviation of the importance smoothing, frames.

    Returns:
        list of dicts with `frames` uint8 [T, H, W, 3], `importance`
        float32 [T] and `events` [(first, last, kind), ...].
    """
    low, high = (frames, frames) if np.isscalar(frames) else frames
    if low < 12:
        raise ValueError(f"synthetic summary videos need at least 12 frames, got {low}")
    rng = np.random.default_rng(seed)
    videos = []
    for _ in range(num_videos):
        length = int(rng.integers(low, high + 1))
        clip = render_clip(
            rng, MOTIONS[rng.integers(len(MOTIONS))], SHAPES[rng.integers(len(SHAPES))],
            length, height, width, 3,
        ).astype(np.float32)
        presence = np.zeros(length, dtype=np.float32)
        events = []
        for first, last in _event_spans(rng, length, int(rng.integers(1, 4))):
            kind = EVENT_KINDS[rng.integers(len(EVENT_KINDS))]
            if kind == "flash":
                clip[first:last + 1] += 90.0
            else:
                radius = rng.uniform(0.15, 0.22) * min(height, width)
                center = rng.uniform([radius, radius], [height - radius, width - radius])
                rows, cols = np.mgrid[0:height, 0:width]
                disk = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2
                clip[first:last + 1][:, disk] = np.array([250.0, 30.0, 30.0])
            presence[first:last + 1] = 1.0
            events.append((first, last, kind))
        videos.append({
            "frames": np.clip(clip, 0, 255).astype(np.uint8),
            "importance": _smooth(presence, smoothing),
            "events": events,
        })
    return videos


def _event_spans(rng, length, count):
    """Up to `count` non-overlapping spans of 3-8 frames, 2 frames apart."""
    spans = []
    for _ in range(20 * count):
        if len(spans) == count:
            break
        size = int(rng.integers(3, 9))
        first = int(rng.integers(1, length - size))
        last = first + size - 1
        if all(last + 2 < a or first - 2 > b for a, b in spans):
            spans.append((first, last))
    return sorted(spans)


def _smooth(presence, sigma):
    """exp(-d^2 / 2 sigma^2) of the distance d to the nearest event frame."""
    events = np.flatnonzero(presence > 0)
    if events.size == 0:
        return np.full(presence.shape, 0.05, dtype=np.float32)
    steps = np.arange(presence.size)
    distance = np.abs(steps[:, None] - events[None, :]).min(axis=1)
    return (0.05 + 0.95 * np.exp(-0.5 * (distance / sigma) ** 2)).astype(np.float32)


def frame_features(frames, feature_dim=PUBLIC_FEATURE_DIM, grid=8, seed=1234):
    """Cheap deterministic per-frame features: a fixed random projection.

    Each frame is average-pooled to a `grid` x `grid` RGB thumbnail, scaled
    to [-0.5, 0.5], joined with its channel means, and projected by a fixed
    Gaussian matrix (seeded by `seed`, the same for every video) through a
    tanh. Flashes and new objects move these features, so a model can learn
    the events from them; the features stand in for a CNN's where a test or
    the embedded data set needs a file of the public schema.

    Returns:
        float32 [T, feature_dim].
    """
    frames = np.asarray(frames, dtype=np.float32) / 255.0 - 0.5
    length, height, width, channels = frames.shape
    rows = np.array_split(np.arange(height), grid)
    cols = np.array_split(np.arange(width), grid)
    thumb = np.stack(
        [np.stack([frames[:, r][:, :, c].mean(axis=(1, 2)) for c in cols], axis=1) for r in rows],
        axis=1,
    )  # [T, grid, grid, C]
    inputs = np.concatenate([thumb.reshape(length, -1), frames.mean(axis=(1, 2))], axis=1)
    projection = np.random.default_rng(seed).normal(
        0.0, 1.0, size=(inputs.shape[1], feature_dim)
    ) * (4.0 / np.sqrt(inputs.shape[1]))
    return np.tanh(inputs @ projection).astype(np.float32)


# Simulated annotators (see `synthetic_summary_records`): the spread of each
# user's opinion of a shot and of a single frame around the importance.
# Measured on 60 embedded videos (seeds 0, 1, 2): two users' frame scores
# agree at Kendall's tau 0.18 to 0.20 and Spearman's rho 0.25 to 0.29;
# TVSum's annotators agree at 0.177 / 0.204 (Otani et al., CVPR 2019).
USER_SHOT_NOISE = 0.5
USER_FRAME_NOISE = 0.2


def synthetic_summary_records(num_videos, seed=0, feature_dim=PUBLIC_FEATURE_DIM,
                              frames=(60, 120), height=32, width=32, pick_step=2,
                              num_users=5, return_frames=False):
    """Synthetic videos as records of the public schema.

    Picks are every `pick_step`-th frame; `gtscore` is the known importance
    at the picks (what the users' scores average to); shots are random
    segments of 6 to 16 frames.

    The `num_users` simulated users disagree as real annotators do. Each
    user scores every frame as the importance plus their own noise: a
    Gaussian draw per shot (standard deviation `USER_SHOT_NOISE`: how much
    that user likes the shot) and a smaller one per frame
    (`USER_FRAME_NOISE`). Those scores are the user's row of `user_scores`
    (as TVSum's raw annotations), and each user then picks whole shots
    greedily by their own mean score within 15% of the frames, giving
    their row of `user_summary`. On the embedded set (60 videos, seeds 0 to
    2), two users' scores agree at Kendall's tau 0.18 to 0.20, near TVSum's
    0.177; the mean, the median and the maximum of the F-scores of
    `gtscore`'s keyshots over the users all differ on about half the
    videos, the five summaries are identical on 4 to 6 videos of 60, and
    users still pick event frames more than twice as often as quiet ones.
    The users' noise comes from its own generator: a seed gives the same
    videos, shots and features whatever the users do, and the same users.

    Returns:
        dict `video_<i>` -> `SummaryVideo`, numbered from 1; with
        `return_frames`, also a dict key -> uint8 frames at the picks
        [n_picks, H, W, 3].
    """
    videos = synthetic_summary_videos(num_videos, frames, height, width, seed)
    rng = np.random.default_rng(seed + 7919)
    user_rng = np.random.default_rng(seed + 104729)
    records, pick_frames = {}, {}
    for index, video in enumerate(videos):
        length = video["frames"].shape[0]
        importance = video["importance"]
        picks = np.arange(0, length, pick_step)
        bounds = [0]
        while bounds[-1] < length:
            bounds.append(min(length, bounds[-1] + int(rng.integers(6, 17))))
        bounds = np.array(bounds)
        change_points = np.stack([bounds[:-1], bounds[1:] - 1], axis=1)
        lengths = np.diff(bounds)
        scores = np.stack([
            importance
            + np.repeat(user_rng.normal(0.0, USER_SHOT_NOISE, len(lengths)), lengths)
            + user_rng.normal(0.0, USER_FRAME_NOISE, length)
            for _ in range(num_users)
        ]).astype(np.float32)
        users = np.stack([
            _greedy_shot_summary(row, change_points, lengths, int(0.15 * length))
            for row in scores
        ])
        key = f"video_{index + 1}"
        records[key] = SummaryVideo(
            key=key,
            features=frame_features(video["frames"][picks], feature_dim),
            gtscore=importance[picks],
            user_summary=users,
            change_points=change_points,
            n_frame_per_seg=lengths,
            n_frames=length,
            picks=picks,
            user_scores=scores,
        )
        pick_frames[key] = video["frames"][picks]
    return (records, pick_frames) if return_frames else records


def _greedy_shot_summary(frame_scores, change_points, lengths, budget):
    means = np.array([frame_scores[a:b + 1].mean() for a, b in change_points])
    summary = np.zeros(int(lengths.sum()), dtype=np.float32)
    used = 0
    for shot in np.argsort(-means, kind="stable"):
        if used + lengths[shot] <= budget:
            first, last = change_points[shot]
            summary[first:last + 1] = 1.0
            used += lengths[shot]
    return summary


def write_synthetic_summary_file(path, num_videos=8, seed=0, feature_dim=PUBLIC_FEATURE_DIM,
                                 **kwargs):
    """Writes a small synthetic file of the public schema; returns the path."""
    return write_summary_file(
        synthetic_summary_records(num_videos, seed, feature_dim, **kwargs), path
    )
