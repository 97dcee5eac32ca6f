"""The "features" task: classifiers of per-frame feature sequences in HDF5.

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
(`--feature-cache`; `data/synthetic_features.py`). The frame encoder there
is `BlockMeanExtractor`, a fixed weightless encoder, because the
keras.applications backbones with random weights (no ImageNet weights
offline) give features a classifier cannot learn this task from; see its
docstring for the numbers. On that data the family's `"demo"` preset (a
small model) applies to every field the user did not set, so the default
command trains in minutes on a CPU; the family's defaults stay the design
notes' values, and the sizes used are in the run's config.

Evaluation. `train.evaluate` rebuilds a run's data from what it recorded;
this task then reads only the split asked for and refuses a file whose
feature dimension, classes or backbone differ from the run's, or with a
sequence longer than the longest the run trained on, naming the file, the
row and both values.
"""

import dataclasses
import os

import numpy as np

from data import synthetic_features
from data.features import FrameFeatureExtractor, read_feature_file, rescale_indices, scale_lengths
from data.pipeline import epoch_stream
from data.sequences import SequenceAugmentation, sequence_dataset, validate_sequences
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
from train.tasks.classification import ClassifierTask
from train.tasks.timeline import WindowEncoder

DEFAULT_FEATURE_CACHE = os.path.join("runs", ".cache")


@dataclasses.dataclass(frozen=True)
class FeatureOptions:
    """Data options of the features task (one command-line flag each)."""

    features: str | None = option(
        None,
        "training feature file (HDF5 from `python -m data.extract`); without it, features "
        "of the embedded synthetic videos (extracted once, cached), with the model's "
        "'demo' preset for the fields not set. Given to train.evaluate: the file to "
        "evaluate (all of it, or the rows of the evaluated --subset if it marks splits)",
    )
    val_features: str | None = option(None, "validation feature file")
    test_features: str | None = option(None, "test feature file")
    val_fraction: float = option(
        0.15,
        "share of each class's training rows held out for validation when there is no "
        "--val-features and the file marks no validation rows",
    )
    no_augment: bool = option(False, "no feature-level augmentation of the training batches")
    augment_crop: float = option(
        0.8, "random temporal crop: keep at least this fraction of the real frames (1 = off)"
    )
    frame_dropout: float = option(
        0.1, "drop each real training frame with this probability (0 = off)"
    )
    feature_noise: float = option(
        0.05, "standard deviation of gaussian noise added to training features (0 = off)"
    )
    synthetic_clips: int = option(
        192,
        "training videos of the embedded synthetic set (validation and test get a "
        "quarter and a third of it)",
    )
    synthetic_task: str = option(
        "motion", "what the synthetic label encodes", choices=("motion", "shape")
    )
    feature_cache: str = option(
        DEFAULT_FEATURE_CACHE, "folder of the extracted synthetic features"
    )

    def augmentation(self):
        """The training augmentation these options ask for, or None."""
        if self.no_augment:
            return None
        if not 0.0 < self.augment_crop <= 1.0:
            raise ValueError(f"--augment-crop must be in (0, 1], got {self.augment_crop}")
        if not 0.0 <= self.frame_dropout < 1.0:
            raise ValueError(f"--frame-dropout must be in [0, 1), got {self.frame_dropout}")
        if not self.feature_noise >= 0.0:
            raise ValueError(f"--feature-noise must be >= 0, got {self.feature_noise}")
        return SequenceAugmentation(self.augment_crop, self.frame_dropout, self.feature_noise)


class FeatureTask(ClassifierTask):
    kind = "features"
    Options = FeatureOptions

    def embedded_preset(self, options, config):
        return "demo" if options.features is None else None

    def example_pipeline(self, config, batch_size):
        steps, dim = config.input_shape[0] or 64, config.input_shape[1]
        count = batch_size * 4
        rng = np.random.default_rng(0)
        features = rng.standard_normal((count, steps, dim), dtype=np.float32)
        lengths = rng.integers(steps // 2, steps + 1, size=count)
        labels = rng.integers(0, config.num_classes, size=count)
        return sequence_dataset(
            features, lengths, labels, batch_size, shuffle=True, seed=0,
            augmentation=SequenceAugmentation(noise_std=0.01),
        )

    def load(self, options, config, seed, split_seed=None):
        return load_for_training(options, config, seed, seed if split_seed is None else split_seed)

    def load_split(self, options, record, split, given=frozenset(), evaluation=None):
        config = run_config(record)
        bundle = load_for_evaluation(options, config, record, split, given)
        check_class_names(bundle.class_names, record, "the evaluated data")
        return bundle

    def window_encoder(self, model, record, options):
        return feature_window_encoder(record, options)


def synthetic_file(options, num_classes, data_seed):
    """(path, settings) of the cached features of the embedded videos."""
    settings = synthetic_features.synthetic_settings(
        options.synthetic_clips, options.synthetic_task, num_classes, data_seed
    )
    return synthetic_features.synthetic_feature_file(settings, options.feature_cache)


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


def load_for_training(options, config, seed, data_seed):
    """All splits for training. The held-out rows follow `data_seed` (the
    command's --seed), so every member of an ensemble holds out the same."""
    check_fraction(options.val_fraction, "--val-fraction")
    augmentation = options.augmentation()
    synthetic_info = None
    train_path = options.features
    if train_path is None:
        train_path, synthetic_info = synthetic_file(options, config.num_classes, data_seed)
    else:
        check_path(train_path, "--features")
    for flag in ("val_features", "test_features"):
        if getattr(options, flag) is not None:
            check_path(getattr(options, flag), "--" + flag.replace("_", "-"))

    train_file = read_feature_file(train_path)
    dim = train_file.feature_dim
    class_names = list(train_file.class_names)
    num_classes = len(class_names)
    steps = config.input_shape[0]
    max_frames = train_file.max_frames if steps is None else steps
    validate_sequences(
        train_file.features, train_file.num_frames, train_file.labels, num_classes,
        dim, max_frames, source=train_path,
    )

    rows = split_rows(
        train_file.splits, train_file.labels.tolist(), options.val_fraction, data_seed,
        carve=options.val_features is None,
    )
    if not rows["train"]:
        if rows["val"] and options.val_features is None:
            raise ValueError(
                f"--val-fraction {options.val_fraction} holds out every training row of "
                f"--features {train_path} for validation ({len(rows['val'])} rows); use a "
                "smaller --val-fraction"
            )
        raise ValueError(f"--features {train_path}: no training rows")
    subsets = {"train": Rows.select(train_file, rows["train"])}
    for split in ("val", "test"):
        path = getattr(options, f"{split}_features")
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

    def batches(subset, training, epoch=None):
        if subset is None:
            return None
        return sequence_dataset(
            subset.features, subset.num_frames, subset.labels, config.batch_size,
            num_classes=num_classes, shuffle=training, seed=seed,
            augmentation=augmentation if training else None, pad_to=steps,
            feature_dim=dim, max_frames=max_frames, source=subset.path, epoch=epoch,
        )

    def train_epochs(first_epoch):
        return epoch_stream(lambda epoch: batches(subsets["train"], True, epoch), first_epoch)

    info = {
        "data": "synthetic features" if synthetic_info else "features",
        "features": os.path.abspath(train_path),
        "val_features": _abspath(options.val_features),
        "test_features": _abspath(options.test_features),
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
    updates = {"input_shape": (steps, dim), "num_classes": num_classes}
    return DataBundle(
        train=batches(subsets["train"], True),
        val=batches(subsets["val"], False),
        test=batches(subsets["test"], False),
        class_names=class_names,
        config_updates=updates,
        train_labels=subsets["train"].labels,
        info=info,
        source=f"--features {train_path}" if options.features else "the embedded synthetic features",
        train_epochs=train_epochs,
        steps_per_epoch=-(-len(subsets["train"]) // config.batch_size),
    )


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


# -- evaluation --------------------------------------------------------------


def load_for_evaluation(options, config, record, split, given):
    """Only the split `train.evaluate` asks for, checked against the run.

    A `--{split}-features` file is used whole. Otherwise the `--features`
    file (the run's own, its synthetic features, or one given on the
    evaluate command line) gives the rows that training on it gives the
    split: those marked with it, or for "val" with none marked, the
    held-out share. A file given on the command line that marks no splits
    is evaluated whole.
    """
    recorded = record.get("data", {})
    dim = config.input_shape[1]
    class_names = recorded.get("class_names")
    against = "the run's training data"
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

    data_seed = recorded.get("data_seed", record.get("seed", 0))
    wanted = ("test", "val") if split is None else (split,)
    for split in wanted:
        path = getattr(options, f"{split}_features", None)
        if path is not None and (f"{split}_features" in given or "features" not in given):
            check_path(path, f"--{split}-features")
            rows = Rows.select(read(path))
            break
        path = options.features
        if path is None:
            path, _ = synthetic_file(options, config.num_classes, data_seed)
        else:
            check_path(path, "--features")
        file = read(path)
        if "features" in given and file.splits is None:
            rows = Rows.select(file)
        else:
            # The rows training gave this split (marked, or held out for val).
            chosen = split_rows(file.splits, file.labels.tolist(), options.val_fraction, data_seed)
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


# -- prediction --------------------------------------------------------------


def extraction_settings(record):
    """How the run's training features were extracted: frame encoder,
    weights, frames, size, scales. Read from the embedded set's settings, or
    from the attributes of the run's feature file."""
    data = record.get("data", {})
    synthetic = data.get("synthetic")
    if synthetic:
        return {
            "backbone": data.get("backbone"), "weights": "none", "frames": synthetic["frames"],
            "size": synthetic["size"], "grid": synthetic["grid"],
            "multi_scale": synthetic["multi_scale"], "scale_source": synthetic["scale_source"],
        }
    import h5py

    path = data.get("features")
    if not path or not os.path.isfile(path):
        raise ValueError(
            f"the run was trained on features from {path}, which is gone; prediction reads "
            "how they were extracted (backbone, frames, size, scales) from that file"
        )
    with h5py.File(path, "r") as file:
        attrs = {key: file.attrs[key] for key in file.attrs}

    def text(value):
        return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))

    return {
        "backbone": text(attrs.get("backbone", data.get("backbone"))),
        "weights": text(attrs.get("weights", "imagenet")),
        "frames": int(attrs.get("frames", 64)),
        "size": [int(v) for v in attrs.get("size", (256, 256))],
        "multi_scale": bool(attrs.get("multi_scale", True)),
        "scale_source": text(attrs.get("scale_source", "sampled")),
    }


def feature_window_encoder(record, options):
    """A window's frames as the run's feature sequence: the recorded frame
    encoder (or `--backbone`, `--backbone-weights`) on the window's frames,
    sampled and averaged over the temporal scales exactly as
    `FrameFeatureExtractor.video_features` does for a whole video. Frames
    shared by overlapping windows are encoded once."""
    config = run_config(record)
    settings = extraction_settings(record)
    backbone = options.backbone or settings["backbone"]
    weights = options.backbone_weights or settings["weights"]
    if "grid" in settings and options.backbone is None:
        if options.backbone_weights is not None:
            raise ValueError(
                f"--backbone-weights {options.backbone_weights}: the run's features come from "
                "the block-mean encoder of the embedded data, which has no weights; give "
                "--backbone too, or leave --backbone-weights out"
            )
        extractor = synthetic_features.BlockMeanExtractor(settings["size"], settings["grid"])
    else:
        if backbone is None:
            raise ValueError(
                f"--run {options.run}: the run does not record its backbone; give --backbone"
            )
        extractor = FrameFeatureExtractor(
            backbone, weights=None if weights == "none" else weights, size=settings["size"]
        )
    dim = config.input_shape[-1]
    if extractor.feature_dim != dim:
        raise ValueError(
            f"--backbone {backbone} gives {extractor.feature_dim}-d features but the model "
            f"expects {dim}-d features"
        )
    num_frames = settings["frames"]
    lengths = scale_lengths(num_frames, settings["multi_scale"])
    steps = config.input_shape[0] or max(lengths)
    if max(lengths) > steps:
        raise ValueError(f"the run's model takes {steps} steps, fewer than its {max(lengths)}-step features")
    cache = {}

    def encode(window, indices):
        n = len(window)
        if settings["scale_source"] == "sampled":
            wanted = [sample_frame_indices(n, num_frames)]
        else:
            wanted = [sample_frame_indices(n, length) for length in lengths]
        unique = np.unique(np.concatenate(wanted))
        for stale in [key for key in cache if key < indices[0]]:
            del cache[stale]
        missing = [i for i in unique if int(indices[i]) not in cache]
        if missing:
            for i, feature in zip(missing, extractor.frame_features(window[missing])):
                cache[int(indices[i])] = feature
        features = np.stack([cache[int(indices[i])] for i in unique])
        sequence = np.zeros((steps, dim), np.float32)
        if settings["scale_source"] == "sampled":
            sampled = features[np.searchsorted(unique, wanted[0])]
            for length in lengths:
                sequence[:length] += sampled[rescale_indices(num_frames, length)]
        else:
            for length, frames in zip(lengths, wanted):
                sequence[:length] += features[np.searchsorted(unique, frames)]
        sequence /= len(lengths)
        return {"features": sequence, "mask": np.arange(steps) < max(lengths)}

    # Step s is the frame of step s of the longest temporal scale (the
    # shorter scales averaged into the first steps come from frames of the
    # same window); rescaled from the sampled frames, that is sampled frame
    # `rescale_indices(frames, longest)[s]`.
    longest = max(lengths)
    if settings["scale_source"] == "sampled":
        rescaled = rescale_indices(num_frames, longest)

        def positions(frames):
            return sample_frame_indices(frames, num_frames)[rescaled]
    else:
        def positions(frames):
            return sample_frame_indices(frames, longest)

    def reads(frames):
        if settings["scale_source"] == "sampled":
            return sample_frame_indices(frames, num_frames)
        return np.unique(np.concatenate([sample_frame_indices(frames, length)
                                         for length in lengths]))

    return WindowEncoder(extractor.size, encode, positions, reads=reads)
