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
        help="a class-per-folder video tree or a CSV manifest; "
        "default: the embedded synthetic clips",
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
        check_path(args.data, "--data")
        raise ValueError(f"--data {args.data}: video folders are not supported yet")
    shape = synthetic_clip_shape(config, args.overridden)
    frames = shape[0]
    count = args.synthetic_clips
    if count < 2:
        raise ValueError(f"--synthetic-clips must be >= 2, got {count}")
    sizes = {"train": count, "val": max(count // 4, 2), "test": max(count // 3, 2)}
    splits, class_names = synthetic.synthetic_splits(
        (frames + JITTER_FRAMES, *shape[1:]),
        sizes,
        num_classes=config.num_classes,
        task=args.synthetic_task,
        seed=seed,
    )
    binary = config.num_classes == 1

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
        config_updates={"input_shape": shape},
        train_labels=splits["train"][1],
        info={
            "data": "synthetic",
            "synthetic_task": args.synthetic_task,
            "split_sizes": sizes,
        },
    )


register_source("clips", Source(add_clip_arguments, load_clips))


def check_path(path, flag):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path}: no such file or directory")
    return path
