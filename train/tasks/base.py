"""What every task shares: the `Task` interface, `DataBundle`, and options.

A task owns one input kind (`ModelConfig.input_kind`): how its data is
loaded, evaluated, reported and predicted from. Its data options are a
plain frozen dataclass; each field becomes one command-line flag (`--name`
for field `name`, help and choices from the field's metadata), so the
command line only parses flags into the dataclass, and Python code builds
the same dataclass directly:

>>> from train.tasks.clips import ClipOptions
>>> options = ClipOptions(synthetic_clips=8)
>>> options.data is None, options.synthetic_task
(True, 'motion')
"""

import argparse
import dataclasses
import os
import types
import typing

import numpy as np

import models
from train.serving.prediction import PredictOptions

SPLITS = ("train", "val", "test")


def option(default, help, choices=None):
    """A data-option field: its default, its --help text and its choices."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass
class DataBundle:
    """Batched datasets and what the run folder records about them.

    Args:
        train, val, test: batched `tf.data.Dataset`s of `(inputs, targets)`;
            any may be None.
        class_names: names of the class ids, in id order.
        config_updates: config fields the data fixes (e.g. `input_shape`).
            A field the user set to another value is refused by `train.run`,
            except those in `adapted_fields`.
        train_labels: integer training labels, for class weights.
        info: anything else worth recording (source paths, backbone).
        adapted_fields: updated fields the data adapts whatever the user
            set (e.g. the channels of RGB videos).
        source: what the data is, for messages (e.g. "--features f.h5").
        train_epochs: `first_epoch -> dataset`, the training batches of
            every epoch from `first_epoch` on in one stream, each epoch's
            order and augmentation fixed by the seed and its number (see
            `data.pipeline.epoch_stream`); None when an epoch's length is
            not known in advance (then `train` is used and a resumed run
            draws new orders).
        steps_per_epoch: batches in one epoch of `train_epochs`.
    """

    train: object
    val: object
    test: object
    class_names: list
    config_updates: dict
    train_labels: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)
    adapted_fields: frozenset = frozenset()
    source: str = "the data"
    train_epochs: object = None
    steps_per_epoch: int | None = None

    def split(self, name):
        """The dataset of split `name` ("train", "val" or "test"), or None."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        return getattr(self, name)

    def first_split(self, names=("test", "val")):
        """The first of `names` this bundle has data for, or None."""
        return next((name for name in names if self.split(name) is not None), None)


class Task:
    """The interface of a task; one instance per input kind is registered.

    Attributes:
        kind: the input kind, as a config's `input_kind` names it.
        Options: the frozen dataclass of the task's data options.
        EvaluateOptions: the frozen dataclass of the task's own evaluation
            options (flags of `train.evaluate`), or None.
    """

    kind = ""
    Options = None
    EvaluateOptions = None
    # Whether a model of this kind has a target per step (frame scores)
    # rather than one per example (a class).
    per_step_targets = False

    # -- data ------------------------------------------------------------

    def embedded_preset(self, options, config):
        """The model preset that fits the embedded synthetic data when
        `options` select it (None when they select the user's data); it is
        applied beneath the user's config fields. `config` holds the user's
        fields over the defaults, not yet validated."""
        return None

    def load(self, options, config, seed, split_seed=None) -> DataBundle:
        """The training, validation and test data.

        Args:
            options: the task's `Options`.
            config: the model's config (shapes, batch size, classes).
            seed: seeds shuffling and augmentation.
            split_seed: seeds which rows are held out for validation
                (default `seed`); every member of an ensemble passes the
                same, so all hold out the same rows.
        """
        raise NotImplementedError

    def load_split(self, options, record, split, given=frozenset(), evaluation=None) -> DataBundle:
        """The data of one split of a trained run, checked against the run.

        Args:
            options: the data options (the run's, with the evaluate
                command's flags applied).
            record: the run's `config.json`.
            split: "test", "val", or None for the test data when there is
                any, else the validation data.
            given: the option names set on the evaluate command line.
            evaluation: the task's `EvaluateOptions`, or None.
        """
        config = run_config(record)
        bundle = self.load(options, config, record["seed"])
        check_class_names(bundle.class_names, record, "the evaluated data")
        return bundle

    def report_suffix(self, evaluation):
        """What names an evaluation's report file beside its split and data
        (e.g. "views10x3"), "" for the default evaluation."""
        return ""

    def export_gate(self):
        """A fresh `train.formats.gates.DecisionGate`: the decision of this
        task that a quantized export must keep, and the output it reads."""
        raise NotImplementedError

    def example_pipeline(self, config, batch_size):
        """The task's training pipeline (shuffling and augmentation on) over
        a few random examples of the config's shapes, for benchmarks."""
        raise NotImplementedError

    # -- results ---------------------------------------------------------

    def evaluate(self, models, bundle, split) -> dict:
        """Evaluates one model or the average of several on one split.

        Args:
            models: a list of `(model name, keras.Model)`.
            bundle: the data.
            split: "train", "val" or "test".

        Returns:
            A JSON-able report with a flat "summary" of numbers.
        """
        raise NotImplementedError

    def write_report(self, report, out, prefix):
        """Writes `<prefix>_report.json` (and plots) into `out`."""
        raise NotImplementedError

    def describe(self, report):
        """What a command prints about a report beside its summary."""
        return ""

    # -- one video in, a result out ------------------------------------------

    def predictor(self, model, record, options):
        """A callable `(video, out) -> result` that runs a trained model on
        one video and writes its files into the folder `out`.

        Everything that does not depend on the video (encoders, backbones)
        is prepared here, once for every video of a batch or an app.

        Args:
            model: the run's Keras model.
            record: the run's `config.json` (with `class_names`).
            options: `train.serving.prediction.PredictOptions`.
        """
        raise ValueError(f"{self.kind} runs have no video prediction")

    def predict(self, model, record, video, options, out):
        """Runs a trained model on one video, writes its files into `out`
        and returns the JSON-able result (see `predictor`). `options` may
        also be a dict of `PredictOptions` fields."""
        if not isinstance(options, PredictOptions):
            options = PredictOptions.from_dict(dict(options))
        return self.predictor(model, record, options)(video, out)


def run_config(record):
    """The model config a run recorded, validated against its family."""
    return models.get_family(record["model"]).config.with_overrides(**record["config"])


def check_class_names(class_names, record, where):
    """Refuses data whose classes differ from those the run was trained on."""
    recorded = record.get("class_names")
    if recorded is not None and class_names and list(class_names) != list(recorded):
        raise ValueError(
            f"{where} has classes {list(class_names)} but the run was trained on "
            f"{list(recorded)}; label ids would not mean the same"
        )


# ---------------------------------------------------------------------------
# Options <-> command line.


def add_option_arguments(group, options_class, suppress_defaults=False):
    """Adds one flag per field of `options_class` to an argparse group.

    With `suppress_defaults`, a flag left out of the command line is absent
    from the parsed namespace (for commands that replay recorded options).
    """
    hints = typing.get_type_hints(options_class)
    for field in dataclasses.fields(options_class):
        flag = "--" + field.name.replace("_", "-")
        kind = _base_type(hints[field.name])
        kwargs = dict(help=field.metadata.get("help", ""), dest=field.name)
        if suppress_defaults:
            kwargs["default"] = argparse.SUPPRESS
        else:
            kwargs["default"] = field.default
        if kind is bool:
            group.add_argument(flag, action="store_true", **kwargs)
            continue
        choices = field.metadata.get("choices")
        if choices is not None:
            kwargs["choices"] = choices
        group.add_argument(flag, type=kind, **kwargs)


def option_flags(options_class):
    """The command-line flags of an options dataclass, `--name` per field."""
    return ["--" + field.name.replace("_", "-") for field in dataclasses.fields(options_class)]


def options_from_args(options_class, args):
    """The options dataclass from parsed arguments (absent fields keep their defaults)."""
    values = vars(args) if not isinstance(args, dict) else args
    names = {field.name for field in dataclasses.fields(options_class)}
    return options_class(**{key: value for key, value in values.items() if key in names})


def options_to_dict(options):
    return dataclasses.asdict(options)


def options_from_record(options_class, recorded, updates=None):
    """Options rebuilt from a run's record, with `updates` applied; a
    recorded field the options no longer have is dropped."""
    names = {field.name for field in dataclasses.fields(options_class)}
    values = {key: value for key, value in (recorded or {}).items() if key in names}
    values.update(updates or {})
    return options_class(**values)


def _base_type(hint):
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


# ---------------------------------------------------------------------------
# Helpers of several tasks.


def check_path(path, flag):
    """`path`, or FileNotFoundError naming the flag when it does not exist."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path}: no such file or directory")
    return path


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

    Example:

    >>> split_rows(["train", "test", "", "unused"], [0, 1, 0, 1], 0.5, 0, carve=False)
    {'train': [0, 2], 'val': [], 'test': [1]}
    """
    names = [name or "train" for name in splits] if splits else ["train"] * len(labels)
    rows = {
        split: [i for i, name in enumerate(names) if name == split]
        for split in SPLITS
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


def check_fraction(value, flag, low_open=True):
    """`value` in (0, 1) (or [0, 1) when not `low_open`), else ValueError."""
    ok = (0.0 < value < 1.0) if low_open else (0.0 <= value < 1.0)
    if not ok:
        interval = "(0, 1)" if low_open else "[0, 1)"
        raise ValueError(f"{flag} must be in {interval}, got {value}")
    return value
