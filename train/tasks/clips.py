"""The "clips" task: clip classifiers on frames [T, H, W, C] with a label.

Data: a class-per-folder tree or CSV manifest of videos (`data/datasets.py`),
decoded with OpenCV inside tf.data, or without `--data` the embedded
synthetic clips (`data/synthetic.py`), for which the family's `"demo"`
preset gives the clip shape. Evaluation and reports are the
action-recognition report of `train.tasks.classification`.

Multi-view testing (`train.evaluate --views CLIPSxCROPS`, `Views`) averages
the class probabilities of several views of each test video, as MMAction2
(`average_clips="prob"`) and PyTorchVideo do:

- videos: CLIPS clips of the model's T frames spread uniformly over the
  video (`data.video.sample_view_indices`: each clip spans the video at the
  frame spacing training reads, shifted by a share of it), and CROPS 1 (the
  whole frame resized to the model's size, as training reads it) or 3
  (left, centre and right along the longer side of a frame scaled to cover
  the model's size, MMAction2's `ThreeCrop`);
- the embedded synthetic clips, arrays of T + 4 frames: CLIPS runs of T
  consecutive frames whose starts are spread over the 4 spare frames (the
  starts training's temporal jitter draws from; more clips than the 5
  starts repeat some), and, since the clips are drawn at the model's frame
  size, 3 crops are the same frame three times (CLIPSx3 equals CLIPSx1).

1x1 reads exactly what single-view testing reads.

Training augmentation beyond crop, flip and colour is off by default (the
design notes' recipes do not use it): `--rand-augment N` (RandAugment, one
op sequence per clip), `--mixup-alpha` and `--cutmix-alpha` (mixing of the
clips of a batch, targets mixed alike); see `training_augmentation` and
`data.pipeline.RandAugment` / `Mixing`. They touch training batches only;
validation and test keep their clips and hard labels.
"""

import dataclasses
import math
import os
import re

import numpy as np

from data import datasets, pipeline, synthetic, video
from data.video import sample_frame_indices
from train.tasks.base import (
    DataBundle,
    check_class_names,
    check_fraction,
    check_path,
    option,
    run_config,
    split_rows,
)
from train.tasks.classification import HMDB51_CLASSES, ClassifierTask
from train.tasks.timeline import WindowEncoder

# Frames generated beyond the model's, so the start frame can be jittered.
JITTER_FRAMES = 4


@dataclasses.dataclass(frozen=True)
class ClipOptions:
    """Data options of the clips task (one command-line flag each)."""

    data: str | None = option(
        None,
        "a class-per-folder video tree (root/<class>/<video>) or a CSV manifest "
        "path,label[,split]; without it, the embedded synthetic clips",
    )
    split_dir: str | None = option(
        None,
        "folder of HMDB51 (<class>_test_split<N>.txt) or UCF101 "
        "(trainlist0N.txt/testlist0N.txt) split lists for --data",
    )
    split: int = option(1, "official split number", choices=(1, 2, 3))
    val_fraction: float = option(
        0.15,
        "share of the training videos held out for validation when the data "
        "names no validation split",
    )
    cache: str | None = option(
        None, "cache decoded clips: 'memory', or a file prefix for an on-disk cache"
    )
    on_error: str = option(
        "skip",
        "what an undecodable video does: skipped with a warning, or stops training",
        choices=("skip", "fail"),
    )
    synthetic_clips: int = option(
        synthetic.DEFAULT_SPLIT_SIZES["train"],
        "training clips of the synthetic set (validation and test get a quarter "
        "and a third of it)",
    )
    synthetic_task: str = option(
        "motion", "what the synthetic label encodes", choices=("motion", "shape")
    )
    rand_augment: int = option(
        0,
        "RandAugment ops per training clip (0: off); the same ops and magnitudes on "
        "every frame of a clip",
    )
    rand_augment_magnitude: float = option(
        9.0, "RandAugment's magnitude on the paper's 0-10 scale"
    )
    rand_augment_ops: str = option(
        "all",
        "comma-separated RandAugment ops to draw from, or 'all': "
        + ", ".join(pipeline.RAND_AUGMENT_OPS),
    )
    mixup_alpha: float = option(
        0.0, "MixUp of training clips with weights ~ Beta(alpha, alpha) (0: off)"
    )
    cutmix_alpha: float = option(
        0.0,
        "CutMix of training clips, the same box on every frame, with area ~ "
        "Beta(alpha, alpha) (0: off); with --mixup-alpha each clip uses one of the two",
    )

    def __post_init__(self):
        # Checked when the flags are parsed, before any data is read.
        check_fraction(self.val_fraction, "--val-fraction")
        rand_augment_op_names(self)


@dataclasses.dataclass(frozen=True)
class Views:
    """Test views of each video: `clips` temporal clips x `crops` crops."""

    clips: int = 1
    crops: int = 1

    @property
    def count(self):
        return self.clips * self.crops

    def __str__(self):
        return f"{self.clips}x{self.crops}"

    def to_dict(self):
        return {"clips": self.clips, "crops": self.crops, "views": self.count, "setting": str(self)}


def parse_views(text):
    """`Views` from `CLIPSxCROPS` (e.g. "10x3"); ValueError otherwise.

    Example:

    >>> parse_views("10x3")
    Views(clips=10, crops=3)
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if match is None or int(match.group(1)) < 1 or int(match.group(2)) not in (1, 3):
        raise ValueError(
            f"--views {text}: expected CLIPSxCROPS with CLIPS >= 1 clips and CROPS 1 or 3 "
            "crops, e.g. 1x1, 4x3, 10x3"
        )
    return Views(int(match.group(1)), int(match.group(2)))


@dataclasses.dataclass(frozen=True)
class ClipEvaluateOptions:
    """Evaluation options of the clips task (flags of `train.evaluate`)."""

    views: str | None = option(
        None,
        "test on CLIPS clips spread over each video x CROPS spatial crops (1 or 3) and "
        "average the probabilities, e.g. 10x3; default 1x1",
    )

    def parsed_views(self):
        """The `Views`, or None for single-view testing."""
        return None if self.views is None else parse_views(self.views)


class ClipTask(ClassifierTask):
    kind = "clips"
    Options = ClipOptions
    EvaluateOptions = ClipEvaluateOptions

    def embedded_preset(self, options, config):
        return "demo" if options.data is None else None

    def example_pipeline(self, config, batch_size):
        frames = config.input_shape[0]
        clips = np.random.default_rng(0).integers(
            0, 255, size=(batch_size * 2, frames + JITTER_FRAMES, *config.input_shape[1:]),
            dtype=np.uint8,
        )
        return pipeline.clip_batches(
            pipeline.from_arrays(clips, np.zeros(len(clips), np.int64)),
            batch_size, num_frames=frames, training=True, seed=0,
        )

    def load(self, options, config, seed, split_seed=None, views=None):
        """The data (see `Task.load`); with `views`, the validation and test
        splits yield the `Views` of each video (`view_batches`)."""
        if options.data is not None:
            return load_video_clips(
                options, config, seed, seed if split_seed is None else split_seed, views
            )
        return load_synthetic_clips(options, config, seed, views)

    def load_split(self, options, record, split, given=frozenset(), evaluation=None):
        views = None if evaluation is None else evaluation.parsed_views()
        bundle = self.load(options, run_config(record), record["seed"], views=views)
        check_class_names(bundle.class_names, record, "the evaluated data")
        return bundle

    def report_suffix(self, evaluation):
        views = None if evaluation is None else evaluation.parsed_views()
        return f"views{views}" if views is not None and views.count > 1 else ""

    def evaluate(self, models, bundle, split):
        report = super().evaluate(models, bundle, split)
        report.setdefault("views", Views().to_dict())  # single-view data
        return report

    def window_encoder(self, model, record, options):
        return clip_window_encoder(record)


def training_augmentation(options):
    """(`pipeline.Augmentation`, `pipeline.Mixing`) of the training clips
    from the options; ValueError naming the flag on a bad value.

    Example:

    >>> augmentation, mixing = training_augmentation(ClipOptions(rand_augment=2, mixup_alpha=0.2))
    >>> augmentation.rand_augment.num_ops, mixing.mixup_alpha
    (2, 0.2)
    """
    names = rand_augment_op_names(options)
    rand_augment = None
    if options.rand_augment:
        rand_augment = pipeline.RandAugment(
            options.rand_augment, options.rand_augment_magnitude, tuple(names)
        )
    augmentation = dataclasses.replace(pipeline.Augmentation(), rand_augment=rand_augment)
    return augmentation, pipeline.Mixing(options.mixup_alpha, options.cutmix_alpha)


def rand_augment_op_names(options):
    """The RandAugment ops the options draw from, once every augmentation
    flag is checked: ValueError naming the flag and what it expects."""
    defaults = ClipOptions.__dataclass_fields__
    if not 0 <= options.rand_augment:
        raise ValueError(
            f"--rand-augment {options.rand_augment}: expected ops per clip >= 0 (0: off)"
        )
    if not 0.0 <= options.rand_augment_magnitude <= 10.0:
        raise ValueError(
            f"--rand-augment-magnitude {options.rand_augment_magnitude}: expected a number "
            "in [0, 10]"
        )
    names = [name.strip() for name in str(options.rand_augment_ops).split(",") if name.strip()]
    if names == ["all"]:
        names = list(pipeline.RAND_AUGMENT_OPS)
    unknown = [name for name in names if name not in pipeline.RAND_AUGMENT_OPS]
    if unknown or not names:
        raise ValueError(
            f"--rand-augment-ops {options.rand_augment_ops}: unknown op "
            f"{', '.join(unknown) or '(none given)'}; expected 'all' or names from "
            + ", ".join(pipeline.RAND_AUGMENT_OPS)
        )
    if options.rand_augment > len(names):
        raise ValueError(
            f"--rand-augment {options.rand_augment}: expected at most {len(names)}, the number "
            "of ops it draws from (--rand-augment-ops)"
        )
    if not options.rand_augment:
        for field in ("rand_augment_magnitude", "rand_augment_ops"):
            if getattr(options, field) != defaults[field].default:
                flag = "--" + field.replace("_", "-")
                raise ValueError(
                    f"{flag} {getattr(options, field)}: used only with --rand-augment N "
                    "(ops per clip); add --rand-augment or leave it out"
                )
    for flag, alpha in (("--mixup-alpha", options.mixup_alpha),
                        ("--cutmix-alpha", options.cutmix_alpha)):
        if not (math.isfinite(alpha) and alpha >= 0.0):
            raise ValueError(f"{flag} {alpha}: expected a finite number >= 0 (0: off)")
    return names


def load_synthetic_clips(options, config, seed, views=None):
    """The embedded synthetic clips at the config's clip shape."""
    count = options.synthetic_clips
    if count < 2:
        raise ValueError(f"--synthetic-clips must be >= 2, got {count}")
    shape = tuple(config.input_shape)
    frames = shape[0]
    sizes = {"train": count, "val": max(count // 4, 2), "test": max(count // 3, 2)}
    splits, class_names = synthetic.synthetic_splits(
        (frames + JITTER_FRAMES, *shape[1:]),
        sizes,
        num_classes=config.num_classes,
        task=options.synthetic_task,
        seed=seed,
    )
    binary = config.num_classes == 1
    augmentation, mixing = training_augmentation(options)

    def batches(split, training, epoch=None):
        clips, labels = splits[split]
        order = None if epoch is None else pipeline.epoch_order(len(labels), seed, epoch)
        return pipeline.clip_batches(
            pipeline.from_arrays(clips, labels, order),
            config.batch_size,
            num_frames=frames,
            training=training,
            seed=seed,
            augmentation=augmentation,
            binary=binary,
            epoch=epoch,
            mixing=mixing,
            num_classes=config.num_classes,
        )

    def train_epochs(first_epoch):
        return pipeline.epoch_stream(lambda epoch: batches("train", True, epoch), first_epoch)

    def test_batches(split):
        if views is None:
            return batches(split, False)
        clips, labels = splits[split]
        return view_batches(
            pipeline.from_arrays(clips, labels).map(pipeline.traced_as_written(
                lambda clip, label: (synthetic_views(clip, frames, views), label)
            )),
            views, config.batch_size, binary,
        )

    info = {"data": "synthetic", "synthetic_task": options.synthetic_task, "split_sizes": sizes}
    if views is not None:
        info["views"] = views.to_dict()
    return DataBundle(
        train=batches("train", True),
        val=test_batches("val"),
        test=test_batches("test"),
        class_names=class_names,
        config_updates={"input_shape": shape},
        train_labels=splits["train"][1],
        info=info,
        source="the embedded synthetic clips",
        train_epochs=train_epochs,
        steps_per_epoch=-(-count // config.batch_size),
    )


def load_video_clips(options, config, seed, split_seed, views=None):
    """Clips decoded from a folder tree or manifest of video files.

    The model keeps its frame count and frame size; the videos give the
    channels (RGB) and the classes. Validation videos come from the data's
    own split when it has one, else from a stratified, seeded share of the
    training videos.
    """
    check_path(options.data, "--data")
    if options.split_dir is not None:
        check_path(options.split_dir, "--split-dir")

    check_fraction(options.val_fraction, "--val-fraction")
    augmentation, mixing = training_augmentation(options)
    if options.cache not in (None, "memory"):
        folder = os.path.dirname(os.path.abspath(options.cache))
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"--cache {options.cache}: the folder {folder} does not exist; create it or "
                "use --cache memory"
            )
    found = datasets.scan_dataset(options.data, split_dir=options.split_dir, split=options.split)
    subsets = split_videos(found, options.val_fraction, split_seed)
    class_names = list(found.class_names)
    binary = len(class_names) == 2 and config.num_classes == 1
    num_classes = 1 if binary else len(class_names)
    frames, height, width = config.input_shape[:3]

    def decoded(split, training, order=None):
        paths, labels = subsets[split]
        clips = video.video_clip_dataset(
            paths, labels, num_frames=frames + (JITTER_FRAMES if training else 0),
            size=(height, width), on_error=options.on_error, order=order,
        )
        if options.cache:
            clips = clips.cache("" if options.cache == "memory" else f"{options.cache}-{split}")
        return clips

    def batches(split, training):
        if not subsets[split][0]:
            return None
        if views is not None and not training:
            paths, labels = subsets[split]
            return view_batches(
                video.video_views_dataset(
                    paths, labels, frames, (height, width), views.clips, views.crops,
                    on_error=options.on_error,
                ),
                views, config.batch_size, binary,
            )
        return pipeline.clip_batches(
            decoded(split, training), config.batch_size, num_frames=frames, training=training,
            seed=seed, augmentation=augmentation, binary=binary, mixing=mixing,
            num_classes=num_classes,
        )

    def train_epochs(first_epoch):
        count = len(subsets["train"][0])
        return pipeline.epoch_stream(
            lambda epoch: pipeline.clip_batches(
                decoded("train", True, pipeline.epoch_order(count, seed, epoch)),
                config.batch_size, num_frames=frames, training=True, seed=seed,
                augmentation=augmentation, binary=binary, epoch=epoch, mixing=mixing,
                num_classes=num_classes,
            ),
            first_epoch,
        )

    if not subsets["train"][0]:
        if subsets["val"][0] and not (found.splits and "val" in found.splits):
            raise ValueError(
                f"--val-fraction {options.val_fraction} holds out every training video of "
                f"--data {options.data} for validation ({len(subsets['val'][0])} videos); use a "
                "smaller --val-fraction"
            )
        raise ValueError(f"--data {options.data}: no training videos in split {options.split}")
    return DataBundle(
        train=batches("train", True),
        val=batches("val", False),
        test=batches("test", False),
        class_names=class_names,
        config_updates={"input_shape": (frames, height, width, 3), "num_classes": num_classes},
        # The model keeps the configured frames and frame size; the videos
        # give the channels.
        adapted_fields=frozenset({"input_shape"}),
        source=f"--data {options.data}",
        # Epochs are drawn in any order and of known length only when every
        # video decodes (a skipped one shortens the epoch) and is decoded
        # each epoch (a cache keeps the first epoch's order).
        train_epochs=train_epochs if options.on_error == "fail" and not options.cache else None,
        steps_per_epoch=-(-len(subsets["train"][0]) // config.batch_size),
        train_labels=np.asarray(subsets["train"][1]),
        info={
            "data": os.path.abspath(options.data),
            "split": options.split,
            "videos": {name: len(paths) for name, (paths, _) in subsets.items()},
            "benchmark": recognise_benchmark(options.split_dir, options.split, class_names),
            **({"views": views.to_dict()} if views is not None else {}),
        },
    )


def synthetic_views(clip, num_frames, views):
    """The `views` of one embedded clip (uint8 [T + spare, H, W, C]) as
    uint8 [clips * crops, T, H, W, C]: runs of `num_frames` frames starting
    at floor(spare * (k + 0.5) / clips) for clip k (one clip: the centre
    cut single-view testing takes), each repeated `crops` times, the clip
    being already at the model's frame size (see the module doc).

    Example:

    >>> clip = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1)
    >>> synthetic_views(clip, 4, Views(2, 1))[:, :, 0, 0, 0].numpy().tolist()
    [[0, 1, 2, 3], [1, 2, 3, 4]]
    """
    import tensorflow as tf

    spare = int(clip.shape[0]) - num_frames
    starts = [spare * (2 * k + 1) // (2 * views.clips) for k in range(views.clips)]
    return tf.stack(
        [clip[start:start + num_frames] for start in starts for _ in range(views.crops)]
    )


def view_batches(views_dataset, views, batch_size, binary):
    """Batches of test views: `({"frames": float32 [B, V, T, H, W, C]}, labels)`.

    Frames become [0, 1] floats as `pipeline.clip_batches` makes them, and a
    batch holds `batch_size // V` videos (at least one), so one model call
    sees about as many clips as a training batch.
    """
    import tensorflow as tf

    def prepare(clips, label):
        frames = tf.image.convert_image_dtype(clips, tf.float32)
        if binary:
            label = tf.cast(tf.reshape(label, [1]), tf.float32)
        return {"frames": frames}, label

    videos = max(1, batch_size // views.count)
    return views_dataset.map(
        pipeline.traced_as_written(prepare), num_parallel_calls=tf.data.AUTOTUNE
    ).batch(videos).prefetch(tf.data.AUTOTUNE)


def recognise_benchmark(split_dir, split, class_names):
    """`"hmdb51"` when the videos are HMDB51, else None.

    HMDB51 means: split lists in HMDB51's own format
    (`<class>_test_split<N>.txt`, one per class) and exactly its 51 classes.
    A few of its classes, or other videos in its layout, are not HMDB51, and
    published HMDB51 numbers do not apply to them.

    Example:

    >>> recognise_benchmark(None, 1, HMDB51_CLASSES) is None
    True
    """
    if split_dir is None or sorted(class_names) != sorted(HMDB51_CLASSES):
        return None
    lists = {
        name for name in os.listdir(split_dir) if name.endswith(f"_test_split{split}.txt")
    }
    wanted = {f"{name}_test_split{split}.txt" for name in HMDB51_CLASSES}
    return "hmdb51" if wanted <= lists else None


def split_videos(found, val_fraction, seed):
    """{"train"|"val"|"test": (paths, labels)}; validation carved from train
    (stratified, seeded) when the data has no validation split."""
    rows = split_rows(found.splits, found.labels, val_fraction, seed)
    return {
        split: ([found.paths[i] for i in indices], [found.labels[i] for i in indices])
        for split, indices in rows.items()
    }


# -- prediction --------------------------------------------------------------


def clip_window_encoder(record):
    """A window's frames as the model's clip: its frame count sampled
    uniformly over the window (`sample_frame_indices`, as `read_clip` samples
    a training video), float32 in [0, 1] as `pipeline.clip_batches` gives.

    Videos are RGB. A model of other channels (the embedded clips have the
    notes' 4, each channel drawn independently) gets RGB followed by the
    luminance for the extra channels, or the luminance alone for fewer.
    """
    config = run_config(record)
    frames, height, width, channels = config.input_shape

    def encode(window, indices):
        clip = window[sample_frame_indices(len(window), frames)]
        return {"frames": to_channels(clip, channels).astype(np.float32) / 255.0}

    adaptation = None
    if channels != 3:
        adaptation = (
            f"the model takes {channels}-channel frames and videos are RGB: "
            + ("RGB, then the luminance as the extra channels" if channels > 3 else
               "the luminance stands in for the colours")
        )
    def sampled(count):
        return sample_frame_indices(count, frames)

    return WindowEncoder((height, width), encode, sampled, adaptation, reads=sampled)


def to_channels(frames, channels):
    """RGB frames [..., 3] with `channels` channels (see `clip_window_encoder`).

    Example:

    >>> frames = np.array([[[[255, 0, 0]]]], np.uint8)
    >>> to_channels(frames, 4)[..., 3].tolist(), to_channels(frames, 1)[..., 0].tolist()
    ([[[76]]], [[[76]]])
    """
    if channels == 3:
        return frames
    luminance = np.round(frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    luminance = luminance.astype(np.uint8)[..., None]
    if channels < 3:
        return np.repeat(luminance, channels, axis=-1)
    return np.concatenate([frames, np.repeat(luminance, channels - 3, axis=-1)], axis=-1)
