"""The "features" data source: per-frame feature sequences from HDF5 files.

Feature-sequence models (`input_kind = "features"`, e.g. `bilstm_attention`)
train on the files `python -m data.extract` writes:

    python -m train.run --model bilstm_attention \\
        --features train.h5 --val-features val.h5 [--test-features test.h5]

Each file is read with `data.features.read_feature_file` and checked
(schema, NaN/Inf, labels against its class mapping, and the feature
dimension against the model's when `--input-shape` fixes it); the rows
become padded, masked batches through `data.sequences.sequence_dataset`,
with feature-level augmentation on the training batches. The data sets the
config's `input_shape` to (None, D) and `num_classes` to the file's class
count; the run folder records D, the backbone, the longest training
sequence and the source paths (`config.json` -> "data").

Which rows go where. `--val-features` and `--test-features` files are used
whole. Without them, a training file that marks rows "train"/"val"/"test"
(extraction with official split lists) gives those rows to those splits
("unused" rows are left out); with no "val" rows, a stratified share of the
training rows (`--val-fraction`) is held out, seeded by the command's
`--seed`, so every member of an ensemble holds out the same rows.

Without `--features`, the embedded synthetic videos (`data/synthetic.py`)
are rendered to video files and their features extracted once into a cache
(`--feature-cache`, file `features-<hash>.h5`, the hash covering every
setting the features depend on); later runs read the cache. The frame
encoder there is `BlockMeanExtractor`, a fixed weightless encoder, because
the keras.applications backbones with random weights (no ImageNet weights
offline) give features a classifier cannot learn this task from; see its
docstring for the numbers. On that data the source also picks a small
model (`SYNTHETIC_MODEL`) for every size field the user did not set, so
the default command trains in minutes on a CPU; the family's defaults stay
the design notes' values, and the sizes used are in the run's config.

Evaluation. `train.evaluate` rebuilds a run's data from what it recorded;
this source then reads only the split asked for and refuses a file whose
feature dimension, classes or backbone differ from the run's, or with a
sequence longer than the longest the run trained on, naming the file, the
row and both values.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import sys

import numpy as np

from data.features import FrameFeatureExtractor, FeatureWriter, read_feature_file, scale_lengths
from data.sequences import SequenceAugmentation, sequence_dataset, validate_sequences
from data.video import normalize_size
from train.sources import DataBundle, Source, check_path, register_source, split_rows

# Model sizes for the embedded synthetic features, applied to the fields the
# user did not set (227k parameters instead of the notes' 65M). Measured on
# 2 shared CPU cores: the whole default command takes 2.3-2.7 minutes
# (extraction 6 s, 60 epochs of training 2-2.5 min) and reaches 0.81-0.86
# test accuracy on the 4-class motion task (chance 0.25).
SYNTHETIC_MODEL = {
    "projection_dim": 64,
    "lstm_layers": 2,
    "lstm_units": 64,
    "attention_heads": 4,
    "attention_key_dim": 16,
    "pooling_dim": 64,
    "classifier_units": (64, 32, 16),
    "batch_size": 32,
    "epochs": 60,
}

# The embedded videos: the synthetic clip size, RGB, written as MPEG-4.
SYNTHETIC_FRAMES = 16
SYNTHETIC_SIZE = (48, 64)
SYNTHETIC_GRID = (6, 8)
SYNTHETIC_CODEC = ("mp4v", ".mp4")
# Bumped whenever the synthetic features change for the same settings.
SYNTHETIC_CACHE_VERSION = 1
DEFAULT_FEATURE_CACHE = os.path.join("runs", ".cache")


def add_feature_arguments(group):
    group.add_argument(
        "--features", default=None,
        help="training feature file (HDF5 from `python -m data.extract`); without it, "
        "features of the embedded synthetic videos (extracted once, cached), with a "
        "small model for the size fields not set. "
        "Given to train.evaluate: the file to evaluate (all of it, or the rows of "
        "the evaluated --subset if it marks splits)",
    )
    group.add_argument("--val-features", default=None, help="validation feature file")
    group.add_argument("--test-features", default=None, help="test feature file")
    group.add_argument(
        "--val-fraction", type=float, default=0.15,
        help="share of each class's training rows held out for validation when "
        "there is no --val-features and the file marks no validation rows",
    )
    group.add_argument(
        "--no-augment", action="store_true",
        help="no feature-level augmentation of the training batches",
    )
    group.add_argument(
        "--augment-crop", type=float, default=0.8,
        help="random temporal crop: keep at least this fraction of the real frames (1 = off)",
    )
    group.add_argument(
        "--frame-dropout", type=float, default=0.1,
        help="drop each real training frame with this probability (0 = off)",
    )
    group.add_argument(
        "--feature-noise", type=float, default=0.05,
        help="standard deviation of gaussian noise added to training features (0 = off)",
    )
    group.add_argument(
        "--synthetic-clips", type=int, default=192,
        help="training videos of the embedded synthetic set (validation and test "
        "get a quarter and a third of it)",
    )
    group.add_argument(
        "--synthetic-task", choices=("motion", "shape"), default="motion",
        help="what the synthetic label encodes",
    )
    group.add_argument(
        "--feature-cache", default=DEFAULT_FEATURE_CACHE,
        help="folder of the extracted synthetic features",
    )


def load_features(args, config, seed):
    evaluation = getattr(args, "evaluation", None)
    if evaluation is not None:
        return load_for_evaluation(args, config, evaluation)
    return load_for_training(args, config, seed)


@dataclasses.dataclass(frozen=True)
class Rows:
    """Some rows of a feature file, ready for `sequence_dataset`."""

    path: str
    features: np.ndarray
    num_frames: np.ndarray
    labels: np.ndarray

    @classmethod
    def select(cls, file, rows=None):
        if rows is None:
            return cls(file.path, file.features, file.num_frames, file.labels)
        rows = np.asarray(rows, dtype=np.int64)
        return cls(file.path, file.features[rows], file.num_frames[rows], file.labels[rows])

    def __len__(self):
        return len(self.labels)


# -- training ----------------------------------------------------------------


def load_for_training(args, config, seed):
    check_flags(args)
    # The data and the held-out rows follow the command's --seed, not the
    # member's, so that all members of an ensemble see the same splits.
    data_seed = getattr(args, "seed", seed)
    updates, synthetic_info = {}, None
    train_path = args.features
    if train_path is None:
        train_path, synthetic_info = synthetic_feature_file(args, config.num_classes, data_seed)
        updates.update(
            {k: v for k, v in SYNTHETIC_MODEL.items() if k not in args.overridden}
        )
        if updates:
            print(
                "embedded synthetic features: a small model for this data ("
                + ", ".join(f"{k}={_flag_value(v)}" for k, v in updates.items())
                + "); set these fields to change them",
                file=sys.stderr,
            )
    else:
        check_path(train_path, "--features")
    for flag in ("val_features", "test_features"):
        if getattr(args, flag) is not None:
            check_path(getattr(args, flag), "--" + flag.replace("_", "-"))

    fixed_shape = "input_shape" in args.overridden
    expected_dim = config.input_shape[1] if fixed_shape else None
    train_file = read_feature_file(train_path, expected_dim=expected_dim)
    dim = train_file.feature_dim
    class_names = list(train_file.class_names)
    num_classes = len(class_names)
    if "num_classes" in args.overridden and config.num_classes != num_classes:
        raise ValueError(
            f"--num-classes {config.num_classes} but {train_path} has {num_classes} "
            f"classes ({', '.join(class_names)})"
        )
    steps = config.input_shape[0] if fixed_shape else None
    max_frames = train_file.max_frames if steps is None else steps
    validate_sequences(
        train_file.features, train_file.num_frames, train_file.labels, num_classes,
        dim, max_frames, source=train_path,
    )

    rows = split_rows(
        train_file.splits, train_file.labels.tolist(), args.val_fraction, data_seed,
        carve=args.val_features is None,
    )
    if not rows["train"]:
        raise ValueError(f"--features {train_path}: no training rows")
    subsets = {"train": Rows.select(train_file, rows["train"])}
    for split in ("val", "test"):
        path = getattr(args, f"{split}_features")
        if path is not None:
            other = read_matching_file(
                path, dim, class_names, train_file.backbone, f"the training file {train_path}"
            )
            validate_sequences(
                other.features, other.num_frames, other.labels, num_classes, dim,
                max_frames, source=path,
            )
            subsets[split] = Rows.select(other)
        elif rows[split]:
            subsets[split] = Rows.select(train_file, rows[split])
        else:
            subsets[split] = None

    config = config.with_overrides(**updates)
    augmentation = None
    if not args.no_augment:
        augmentation = SequenceAugmentation(
            args.augment_crop, args.frame_dropout, args.feature_noise
        )

    def batches(subset, training):
        if subset is None:
            return None
        return sequence_dataset(
            subset.features, subset.num_frames, subset.labels, config.batch_size,
            num_classes=num_classes, shuffle=training, seed=seed,
            augmentation=augmentation if training else None, pad_to=steps,
            feature_dim=dim, max_frames=max_frames, source=subset.path,
        )

    info = {
        "data": "synthetic features" if synthetic_info else "features",
        "features": os.path.abspath(train_path),
        "val_features": _abspath(args.val_features),
        "test_features": _abspath(args.test_features),
        "feature_dim": dim,
        "backbone": train_file.backbone,
        "max_frames": int(max_frames),
        "class_names": class_names,
        "rows": {split: len(s) if s is not None else 0 for split, s in subsets.items()},
        "data_seed": int(data_seed),
        "augmentation": dataclasses.asdict(augmentation) if augmentation else None,
    }
    if synthetic_info:
        info["synthetic"] = synthetic_info
    updates.update(input_shape=(steps, dim), num_classes=num_classes)
    return DataBundle(
        train=batches(subsets["train"], True),
        val=batches(subsets["val"], False),
        test=batches(subsets["test"], False),
        class_names=class_names,
        config_updates=updates,
        train_labels=subsets["train"].labels,
        info=info,
    )


def check_flags(args):
    if not 0.0 < args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    if args.no_augment:
        return
    if not 0.0 < args.augment_crop <= 1.0:
        raise ValueError(f"--augment-crop must be in (0, 1], got {args.augment_crop}")
    if not 0.0 <= args.frame_dropout < 1.0:
        raise ValueError(f"--frame-dropout must be in [0, 1), got {args.frame_dropout}")
    if not args.feature_noise >= 0.0:
        raise ValueError(f"--feature-noise must be >= 0, got {args.feature_noise}")


def read_matching_file(path, dim, class_names, backbone, against):
    """Reads `path`; refuses it unless its dimension, classes and backbone
    match those of `against` (words naming the reference data)."""
    file = read_feature_file(path, expected_dim=dim)
    if list(file.class_names) != list(class_names):
        raise ValueError(
            f"{path}: classes {list(file.class_names)} differ from those of {against} "
            f"({list(class_names)}); extract both with the same classes"
        )
    if file.backbone and backbone and file.backbone != backbone:
        raise ValueError(
            f"{path}: features from backbone {file.backbone!r} but {against} has "
            f"{backbone!r} features"
        )
    return file


def _abspath(path):
    return None if path is None else os.path.abspath(path)


def _flag_value(value):
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


# -- evaluation --------------------------------------------------------------


def load_for_evaluation(args, config, evaluation):
    """Only the split `train.evaluate` asks for, checked against the run.

    A `--{split}-features` file is used whole. Otherwise the `--features`
    file (the run's own, its synthetic features, or one given on the
    evaluate command line) gives the rows that training on it gives the
    split: those marked with it, or for "val" with none marked, the
    held-out share. A file given on the command line that marks no splits
    is evaluated whole.
    """
    recorded = evaluation.record.get("data", {})
    dim = config.input_shape[1]
    class_names = recorded.get("class_names")
    against = "the run's training data"
    given = evaluation.given
    files = {}

    def read(path):
        if path not in files:
            if class_names is None:
                files[path] = read_feature_file(path, expected_dim=dim)
            else:
                files[path] = read_matching_file(
                    path, dim, class_names, recorded.get("backbone"), against
                )
        return files[path]

    data_seed = recorded.get("data_seed", evaluation.record.get("seed", 0))
    wanted = ("test", "val") if evaluation.split is None else (evaluation.split,)
    for split in wanted:
        path = getattr(args, f"{split}_features", None)
        if path is not None and (f"{split}_features" in given or "features" not in given):
            check_path(path, f"--{split}-features")
            rows = Rows.select(read(path))
            break
        path = args.features
        if path is None:
            path, _ = synthetic_feature_file(args, config.num_classes, data_seed)
        else:
            check_path(path, "--features")
        file = read(path)
        if "features" in given and file.splits is None:
            rows = Rows.select(file)
        else:
            # The rows training gave this split (marked, or held out for val).
            chosen = split_rows(file.splits, file.labels.tolist(), args.val_fraction, data_seed)
            rows = Rows.select(file, chosen[split])
        if len(rows):
            break
    else:
        raise ValueError(
            f"the run has no {' or '.join(wanted)} data; pass "
            + " or ".join(f"--{split}-features FILE" for split in wanted)
        )

    file = read(rows.path)
    if class_names is None:
        class_names = file.class_names
    max_frames = recorded.get("max_frames")
    validate_sequences(
        file.features, file.num_frames, file.labels, config.num_classes, dim,
        max_frames, source=rows.path,
    )
    dataset = sequence_dataset(
        rows.features, rows.num_frames, rows.labels, config.batch_size,
        num_classes=config.num_classes, pad_to=config.input_shape[0], feature_dim=dim,
        max_frames=max_frames, source=rows.path,
    )
    return DataBundle(
        train=None,
        val=dataset if split == "val" else None,
        test=dataset if split == "test" else None,
        class_names=list(class_names),
        config_updates={},
        info={"split": split, "features": os.path.abspath(rows.path), "rows": len(rows)},
    )


# -- the embedded synthetic features -----------------------------------------


class BlockMeanExtractor(FrameFeatureExtractor):
    """A fixed, weightless frame encoder for the embedded synthetic videos.

    Each RGB frame is averaged over a grid of blocks (6 x 8 blocks of 8 x 8
    pixels for 48 x 64 frames), then each channel is standardised over the
    blocks (mean 0, standard deviation 1, plus 1 gray level in the
    denominator so a flat frame stays flat), giving 6 * 8 * 3 = 144 values
    per frame: where the bright shape is, independent of the clip's
    background and shape colours. Everything else, sampling frames from the
    video files and averaging the temporal scales, is the
    `FrameFeatureExtractor`'s.

    Why not a keras.applications backbone: offline there are no ImageNet
    weights, and with random weights the pooled features carry almost
    nothing about the motion. Measured on the 4-class motion set (chance
    0.25): random EfficientNetB0 features have magnitude 1e-7 and a linear
    probe on them reaches 0.41-0.52; a small BiLSTM on random ResNet50
    (32 x 32) features stays at 0.25 after 20 epochs; on these block
    features the default command reaches 0.81-0.86.

    Args:
        size: (height, width) the frames are read at.
        grid: (rows, columns) of blocks; must divide `size`.

    Example:

    >>> extractor = BlockMeanExtractor((48, 64), (6, 8))
    >>> extractor.frame_features(np.zeros((2, 48, 64, 3), np.uint8)).shape
    (2, 144)
    """

    def __init__(self, size=SYNTHETIC_SIZE, grid=SYNTHETIC_GRID):
        # No Keras backbone to build: the parent's __init__ is not called.
        self.size = normalize_size(size)
        self.grid = tuple(int(g) for g in grid)
        if self.size[0] % self.grid[0] or self.size[1] % self.grid[1]:
            raise ValueError(f"grid {self.grid} must divide the frame size {self.size}")
        self.batch_size = 1
        self.model = None
        self.feature_dim = self.grid[0] * self.grid[1] * 3

    @property
    def name(self):
        return f"block_mean_{self.grid[0]}x{self.grid[1]}"

    def frame_features(self, frames):
        frames = np.asarray(frames, np.float32)
        (rows, cols), (height, width) = self.grid, self.size
        blocks = frames.reshape(len(frames), rows, height // rows, cols, width // cols, 3)
        blocks = blocks.mean(axis=(2, 4))
        blocks -= blocks.mean(axis=(1, 2), keepdims=True)
        blocks /= blocks.std(axis=(1, 2), keepdims=True) + 1.0
        return blocks.reshape(len(frames), -1).astype(np.float32)


def synthetic_settings(args, num_classes, data_seed):
    """Everything the synthetic feature file depends on."""
    count = int(args.synthetic_clips)
    if count < 2:
        raise ValueError(f"--synthetic-clips must be >= 2, got {count}")
    return {
        "version": SYNTHETIC_CACHE_VERSION,
        "sizes": {"train": count, "val": max(count // 4, 2), "test": max(count // 3, 2)},
        "task": args.synthetic_task,
        "num_classes": int(num_classes),
        "seed": int(data_seed),
        "frames": SYNTHETIC_FRAMES,
        "size": list(SYNTHETIC_SIZE),
        "grid": list(SYNTHETIC_GRID),
        "multi_scale": True,
        "scale_source": "sampled",
        "codec": SYNTHETIC_CODEC[0],
    }


def synthetic_feature_file(args, num_classes, data_seed):
    """The cached feature file of the embedded videos, made if missing.

    Returns:
        (path, settings): the complete HDF5 file and what it was made from.
    """
    settings = synthetic_settings(args, num_classes, data_seed)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cache = args.feature_cache
    path = os.path.join(cache, f"features-{key}.h5")
    settings = dict(settings, cache=os.path.abspath(path))
    if os.path.isfile(path):
        return path, settings
    os.makedirs(cache, exist_ok=True)
    print(f"extracting features of the embedded synthetic videos into {path}", file=sys.stderr)
    videos = render_synthetic_videos(os.path.join(cache, f"videos-{key}"), settings)
    extract_synthetic_features(videos, path, settings)
    return path, settings


def render_synthetic_videos(folder, settings):
    """Writes the synthetic splits as video files (once) and lists them.

    The folder is built under a temporary name and renamed into place, so a
    folder under the final name is always complete.

    Returns:
        A `data.datasets.VideoDataset` with the splits marked.
    """
    import cv2

    from data import synthetic
    from data.datasets import VideoDataset

    frames, (height, width) = settings["frames"], settings["size"]
    splits, class_names = synthetic.synthetic_splits(
        (frames, height, width, 3), settings["sizes"], num_classes=settings["num_classes"],
        task=settings["task"], seed=settings["seed"],
    )
    fourcc, extension = SYNTHETIC_CODEC
    paths, labels, names = [], [], []
    for split, (clips, split_labels) in splits.items():
        for index, (clip, label) in enumerate(zip(clips, split_labels)):
            paths.append(os.path.join(folder, split, f"{split}_{index:04d}{extension}"))
            labels.append(int(label))
            names.append(split)
    if not os.path.isdir(folder):
        temporary = f"{folder}.tmp-{os.getpid()}"
        shutil.rmtree(temporary, ignore_errors=True)
        position = 0
        for split, (clips, _) in splits.items():
            os.makedirs(os.path.join(temporary, split))
            for clip in clips:
                target = paths[position].replace(folder, temporary, 1)
                writer = cv2.VideoWriter(
                    target, cv2.VideoWriter_fourcc(*fourcc), 10.0, (width, height)
                )
                if not writer.isOpened():
                    raise RuntimeError(f"cv2.VideoWriter cannot write {fourcc} into {target}")
                for frame in clip:
                    writer.write(frame[..., ::-1])  # OpenCV writes BGR
                writer.release()
                position += 1
        os.replace(temporary, folder)
    return VideoDataset(
        tuple(os.path.abspath(p) for p in paths), tuple(labels), tuple(class_names), tuple(names)
    )


def extract_synthetic_features(videos, out, settings):
    """One row per video into `out`, through the extractor's writer.

    Resumes an interrupted extraction (`out.partial`) and renames the file
    into place only when every video is in it.
    """
    extractor = BlockMeanExtractor(settings["size"], settings["grid"])
    writer_settings = {
        "backbone": extractor.name,
        "weights": "none",
        "frames": settings["frames"],
        "size": list(settings["size"]),
        "multi_scale": settings["multi_scale"],
        "scale_source": settings["scale_source"],
        "steps": max(scale_lengths(settings["frames"], settings["multi_scale"])),
    }
    writer = FeatureWriter(
        out, writer_settings, videos.class_names, extractor.feature_dim,
        log=lambda line: print(line, file=sys.stderr),
    )
    try:
        done, _ = writer.open()
        for path, label, split in zip(videos.paths, videos.labels, videos.splits):
            if path in done:
                continue
            sequence, _ = extractor.video_features(
                path, settings["frames"], settings["multi_scale"], settings["scale_source"]
            )
            writer.append(sequence, label, path, split)
        writer.finish()
    finally:
        writer.close()
    return out


register_source("features", Source(add_feature_arguments, load_features))
