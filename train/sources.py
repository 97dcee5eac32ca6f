"""Where training data comes from, one `Source` per model input kind.

A model family's config names its `input_kind`; the source of that kind
adds its command-line flags to `train.run` and turns them into batched
datasets. The data decides what the config cannot know in advance (clip
shape, feature dimension, number of classes): those go back as
`config_updates` and end up in the run's resolved config.
"""

import dataclasses
import os
from typing import Callable

import numpy as np

from data import pipeline, synthetic


@dataclasses.dataclass
class DataBundle:
    """Batched datasets and what the run folder records about them.

    Args:
        train, val, test: batched `tf.data.Dataset`s of `(inputs, targets)`;
            `val` and `test` may be None.
        class_names: names of the class ids, in id order.
        config_updates: config fields the data fixes (e.g. `input_shape`).
        train_labels: integer training labels, for class weights.
        info: anything else worth recording (source paths, backbone).
    """

    train: object
    val: object
    test: object
    class_names: list
    config_updates: dict
    train_labels: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Source:
    """A kind of training data.

    Args:
        add_arguments: `parser_group -> None`, adds this source's flags.
        load: `(args, config, seed) -> DataBundle`. `args.overridden` holds
            the config fields the user set explicitly.
    """

    add_arguments: Callable
    load: Callable


SOURCES: dict[str, Source] = {}


def register_source(kind, source):
    SOURCES[kind] = source


def get_source(kind) -> Source:
    if kind not in SOURCES:
        raise ValueError(f"no data source for input kind {kind!r}; known: {', '.join(SOURCES)}")
    return SOURCES[kind]


# Clips: the embedded synthetic videos, or a folder/manifest of videos.

# Frames generated beyond the model's, so the start frame can be jittered.
JITTER_FRAMES = 4


def add_clip_arguments(group):
    group.add_argument(
        "--data",
        default=None,
        help="a class-per-folder video tree (root/<class>/<video>) or a CSV "
        "manifest path,label[,split]; without it, the embedded synthetic clips",
    )
    group.add_argument(
        "--split-dir", default=None,
        help="folder of HMDB51 (<class>_test_split<N>.txt) or UCF101 "
        "(trainlist0N.txt/testlist0N.txt) split lists for --data",
    )
    group.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split number")
    group.add_argument(
        "--val-fraction", type=float, default=0.15,
        help="share of the training videos held out for validation when the "
        "data names no validation split",
    )
    group.add_argument(
        "--cache", default=None,
        help="cache decoded clips: 'memory', or a file prefix for an on-disk cache",
    )
    group.add_argument(
        "--on-error", choices=("skip", "fail"), default="skip",
        help="what an undecodable video does: skipped with a warning, or stops training",
    )
    group.add_argument(
        "--synthetic-clips",
        type=int,
        default=synthetic.DEFAULT_SPLIT_SIZES["train"],
        help="training clips of the synthetic set (validation and test get "
        "a quarter and a third of it)",
    )
    group.add_argument(
        "--synthetic-task",
        choices=("motion", "shape"),
        default="motion",
        help="what the synthetic label encodes",
    )


def synthetic_clip_shape(config, overridden):
    """The clip shape of the embedded set: the config's when the user set it,
    else a small one with the config's channel count."""
    if "input_shape" in overridden:
        return tuple(config.input_shape)
    frames, height, width, _ = synthetic.DEFAULT_CLIP_SHAPE
    channels = config.input_shape[-1]
    return (frames, height, width, channels)


def load_clips(args, config, seed):
    if args.data is not None:
        return load_video_clips(args, config, seed)
    shape = synthetic_clip_shape(config, args.overridden)
    frames = shape[0]
    count = args.synthetic_clips
    if count < 2:
        raise ValueError(f"--synthetic-clips must be >= 2, got {count}")
    sizes = {"train": count, "val": max(count // 4, 2), "test": max(count // 3, 2)}
    num_classes = config.num_classes
    available = len(synthetic.TASKS[args.synthetic_task])
    if num_classes > available and "num_classes" not in args.overridden:
        # A model whose default asks for more classes (HMDB51's 51) than the
        # embedded task has trains on all of the task's classes.
        num_classes = available
    splits, class_names = synthetic.synthetic_splits(
        (frames + JITTER_FRAMES, *shape[1:]),
        sizes,
        num_classes=num_classes,
        task=args.synthetic_task,
        seed=seed,
    )
    binary = num_classes == 1

    def batches(split, training):
        clips, labels = splits[split]
        return pipeline.clip_batches(
            pipeline.from_arrays(clips, labels),
            config.batch_size,
            num_frames=frames,
            training=training,
            seed=seed,
            binary=binary,
        )

    return DataBundle(
        train=batches("train", True),
        val=batches("val", False),
        test=batches("test", False),
        class_names=class_names,
        config_updates={"input_shape": shape, "num_classes": num_classes},
        train_labels=splits["train"][1],
        info={
            "data": "synthetic",
            "synthetic_task": args.synthetic_task,
            "split_sizes": sizes,
        },
    )


def load_video_clips(args, config, seed):
    """Clips decoded from a folder tree or manifest of video files.

    The model keeps its frame count and frame size; the videos give the
    channels (RGB) and the classes. Validation videos come from the data's
    own split when it has one, else from a stratified, seeded share of the
    training videos.
    """
    check_path(args.data, "--data")
    if args.split_dir is not None:
        check_path(args.split_dir, "--split-dir")
    from data import datasets, video

    if not 0.0 < args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    found = datasets.scan_dataset(args.data, split_dir=args.split_dir, split=args.split)
    subsets = split_videos(found, args.val_fraction, seed)
    class_names = list(found.class_names)
    num_classes = 1 if len(class_names) == 2 and config.num_classes == 1 else len(class_names)
    if "num_classes" in args.overridden and config.num_classes not in (num_classes, len(class_names)):
        raise ValueError(
            f"--num-classes {config.num_classes} but --data {args.data} has "
            f"{len(class_names)} classes ({', '.join(class_names)})"
        )
    frames, height, width = config.input_shape[:3]
    binary = num_classes == 1

    def batches(split, training):
        paths, labels = subsets[split]
        if not paths:
            return None
        clips = video.video_clip_dataset(
            paths, labels, num_frames=frames + (JITTER_FRAMES if training else 0),
            size=(height, width), on_error=args.on_error,
        )
        if args.cache:
            clips = clips.cache("" if args.cache == "memory" else f"{args.cache}-{split}")
        return pipeline.clip_batches(
            clips, config.batch_size, num_frames=frames, training=training,
            seed=seed, binary=binary,
        )

    if not subsets["train"][0]:
        raise ValueError(f"--data {args.data}: no training videos in split {args.split}")
    return DataBundle(
        train=batches("train", True),
        val=batches("val", False),
        test=batches("test", False),
        class_names=class_names,
        config_updates={"input_shape": (frames, height, width, 3), "num_classes": num_classes},
        train_labels=np.asarray(subsets["train"][1]),
        info={
            "data": os.path.abspath(args.data),
            "split": args.split,
            "videos": {name: len(paths) for name, (paths, _) in subsets.items()},
        },
    )


def split_videos(found, val_fraction, seed):
    """{"train"|"val"|"test": (paths, labels)}; validation carved from train
    (stratified, seeded) when the data has no validation split."""
    rows = split_rows(found.splits, found.labels, val_fraction, seed)
    return {
        split: ([found.paths[i] for i in indices], [found.labels[i] for i in indices])
        for split, indices in rows.items()
    }


def split_rows(splits, labels, val_fraction, seed, carve=True):
    """Row indices of each split: {"train"|"val"|"test": [row, ...]}.

    Args:
        splits: per row "train", "val", "test" or "unused" ("" counts as
            "train"), or None when the data names no splits (all train).
            "unused" rows are left out.
        labels: per row integer label.
        val_fraction: share of each class's training rows held out for
            validation when no row is marked "val".
        seed: seeds which rows are held out.
        carve: False never holds rows out (validation comes from elsewhere).
    """
    names = [name or "train" for name in splits] if splits else ["train"] * len(labels)
    rows = {
        split: [i for i, name in enumerate(names) if name == split]
        for split in ("train", "val", "test")
    }
    if carve and not rows["val"] and rows["train"]:
        train = rows["train"]
        held = stratified_holdout([labels[i] for i in train], val_fraction, seed)
        rows["val"] = [train[i] for i in held]
        held = set(held)
        rows["train"] = [row for i, row in enumerate(train) if i not in held]
    return rows


def stratified_holdout(labels, fraction, seed):
    """Sorted positions of a seeded share of each class (at least one of
    every class that has two or more members; a single member stays)."""
    rng = np.random.default_rng(seed)
    held = set()
    for label in sorted(set(labels)):
        members = [i for i, l in enumerate(labels) if l == label]
        count = int(round(len(members) * fraction))
        if len(members) > 1:
            held.update(rng.choice(members, size=max(count, 1), replace=False).tolist())
    return sorted(held)


register_source("clips", Source(add_clip_arguments, load_clips))


def check_path(path, flag):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path}: no such file or directory")
    return path


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What `train.evaluate` tells a source that rebuilds a run's data.

    A source's `load` finds it as `args.evaluation` (absent when training)
    and may then build only the split asked for and check the data against
    what the run recorded.

    Args:
        split: "test", "val", or None for the test data when the run has
            any, else the validation data.
        record: the run's `config.json` (model, seed, config, data info).
        given: the source flags set on the evaluate command line (the rest
            are the run's recorded values).
    """

    split: str | None
    record: dict
    given: frozenset = frozenset()


# Feature sequences from HDF5 files (registers the "features" source).
from train import feature_source  # noqa: E402,F401


# Frame-score sources register themselves on import.
from train import frame_scores  # noqa: E402,F401
