"""Evaluate trained runs: `python -m train.evaluate --runs DIR [DIR ...]`.

The run's task makes the report: classifiers get the action-recognition
report (top-1, top-5 and mean class accuracy, per-class precision/recall/F1,
macro-F1, ROC AUC for binary models, the confusion matrix as JSON and PNG),
frame scorers the summarization protocol. Several runs form an ensemble
whose outputs are averaged. Data flags default to what the first run
recorded; a flag given here replaces the recorded value. `--views
CLIPSxCROPS` tests clip classifiers on several views of each video and
averages their probabilities (see `train.tasks.clips`).
"""

import argparse
import json
import os
import sys

from common.cli import ArgumentParser, run_main
from common.files import read_json, read_run_config, write_json


def load_record(run):
    """Reads a run folder's `config.json` (and `class_names.json`).

    Raises:
        FileNotFoundError: the folder has no config.json.
        ValueError: config.json is not a JSON mapping naming a model.
    """
    record = read_run_config(run, run)
    import models

    models.get_family(record["model"])
    names_path = os.path.join(run, "class_names.json")
    if os.path.isfile(names_path):
        record["class_names"] = read_json(names_path, "class name list")
    return record


def load_run(run, checkpoint="best.keras"):
    """Reads a run folder; returns (record, the checkpoint's model)."""
    import keras

    record = load_record(run)
    path = os.path.join(run, checkpoint)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run}: no {checkpoint}; has the run finished an epoch?")
    try:
        model = keras.saving.load_model(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path}: cannot be loaded as a Keras model ({first})") from None
    return record, model


def run_data(record, option_updates=None, split=None, views=None):
    """Rebuilds one split of a run's data from what the run recorded.

    Args:
        record: the run's `config.json` (`load_record`).
        option_updates: data options given on the command line; they
            replace the recorded values.
        split: "test", "val", or None for the test data when the run has
            any, else the validation data.
        views: `train.tasks.clips.Views` for multi-view testing, or None.
    """
    from train import tasks
    from train.tasks.base import options_from_record

    task = tasks.task_for(record["model"])
    options = options_from_record(task.Options, record.get("data_options"), option_updates)
    given = frozenset(option_updates or {})
    if views is None:
        return task.load_split(options, record, split, given)
    check_views(record["model"], views)
    return task.load_split(options, record, split, given, views=views)


def check_views(model_name, views):
    """Refuses multi-view testing of a model whose task reads no clips."""
    from train import tasks

    task = tasks.task_for(model_name)
    if not getattr(task, "takes_views", False):
        raise ValueError(
            f"--views {views}: {model_name} runs read {task.kind} data, not clips; "
            "multi-view testing is for clip classifiers"
        )


def evaluate_runs(runs, split="test", out=None, option_updates=None, views=None):
    """Evaluates one run, or averages the outputs of several.

    `split=None` takes the test data when there is any, else validation;
    `views` (`train.tasks.clips.Views`) asks for multi-view testing.
    Writes `<split>_report.json` and `metrics.json` into `out` when given.
    """
    from train import tasks

    loaded = [load_run(run) for run in runs]
    names = {record["model"] for record, _ in loaded}
    if len(names) != 1:
        raise ValueError(f"--runs mixes models {sorted(names)}; an ensemble needs one model")
    first = loaded[0][0]
    for run, (record, _) in zip(runs[1:], loaded[1:]):
        for key, what in (("input_shape", "input_shape"), ("class_names", "classes")):
            mine = record["config"].get(key) if key == "input_shape" else record.get(key)
            theirs = first["config"].get(key) if key == "input_shape" else first.get(key)
            if mine != theirs:
                raise ValueError(
                    f"--runs: {run} has {what} {mine} but {runs[0]} has {theirs}; "
                    "an ensemble needs members of one input and one set of classes"
                )
    data = run_data(first, option_updates, split=split, views=views)
    split = split or data.first_split()
    if split is None:
        raise ValueError("the data has no test or validation split")
    task = tasks.task_for(first["model"])
    report = task.evaluate([(record["model"], model) for record, model in loaded], data, split)
    report["runs"] = list(runs)
    if out is not None:
        os.makedirs(out, exist_ok=True)
        task.write_report(report, out, prefix=split)
        write_json(os.path.join(out, "metrics.json"), prefixed(report["summary"], split))
    return report


def evaluate_model(model, model_name, data, out):
    """Evaluates a freshly trained model on the bundle's test data (else its
    validation data), writes `<split>_report.json` into `out` and returns
    the summary with each key prefixed by the split (`test_accuracy`)."""
    from train import tasks

    split = data.first_split()
    if split is None:
        return {}
    task = tasks.task_for(model_name)
    report = task.evaluate([(model_name, model)], data, split)
    task.write_report(report, out, prefix=split)
    description = task.describe(report)
    if description:
        print(description)
    return prefixed(report["summary"], split)


def prefixed(summary, split):
    """Summary keys named by the data they come from: `test_*`, `val_*`."""
    return {f"{split}_{key}": value for key, value in summary.items()}


def report_prefix(out, split, updates, views=None):
    """`evaluate_<split>[_<data>][_views<C>x<K>]`, named by the data files
    given on the command line and the views (when not one view), and
    numbered (`-2`, `-3`, ...) past any report already in `out`: an
    evaluation never replaces an earlier one."""
    names = [
        os.path.splitext(os.path.basename(os.path.normpath(value)))[0]
        for _, value in sorted(updates.items())
        if isinstance(value, str) and os.path.exists(value)
    ]
    if views is not None and views.count > 1:
        names.append(f"views{views}")
    stem = "_".join([f"evaluate_{split}", *names])
    prefix, number = stem, 1
    while os.path.exists(os.path.join(out, f"{prefix}_report.json")):
        number += 1
        prefix = f"{stem}-{number}"
    return prefix


def build_parser(model_name=None):
    from train import tasks
    from train.tasks.base import add_option_arguments

    parser = ArgumentParser(
        prog="python -m train.evaluate",
        description="Evaluate one run, or an ensemble of runs by averaging their "
        "outputs. Data flags default to what the first run recorded.",
    )
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (one or more)")
    parser.add_argument(
        "--subset", choices=("test", "val"), default=None,
        help="data to evaluate on; without it, the test data when there is any, else validation",
    )
    parser.add_argument("--out", default=None, help="folder for the report; without it, the first run")
    parser.add_argument(
        "--views", default=None, metavar="CLIPSxCROPS",
        help="clip classifiers: test on CLIPS clips spread over each video x CROPS "
        "spatial crops (1 or 3) and average the probabilities, e.g. 10x3; default 1x1",
    )
    if model_name is not None:
        group = parser.add_argument_group("data (overrides what the run recorded)")
        add_option_arguments(group, tasks.task_for(model_name).Options, suppress_defaults=True)
    return parser


def main(argv=None):
    from train import tasks

    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--runs", nargs="+")
    known, _ = peek.parse_known_args(argv)
    model_name = None
    if known.runs:
        model_name = load_record(known.runs[0])["model"]
    args = build_parser(model_name).parse_args(argv)
    fixed = {"runs", "subset", "out", "views"}
    updates = {k: v for k, v in vars(args).items() if k not in fixed}
    out = args.out or args.runs[0]
    views = None
    if args.views is not None:
        from train.tasks.clips import parse_views

        views = parse_views(args.views)
        check_views(model_name, views)
    report = evaluate_runs(args.runs, args.subset, out=None, option_updates=updates, views=views)
    os.makedirs(out, exist_ok=True)
    task = tasks.task_for(model_name)
    prefix = report_prefix(out, report["split"], updates, views)
    task.write_report(report, out, prefix=prefix)
    print(json.dumps(report["summary"], indent=2))
    description = task.describe(report)
    if description:
        print(description)
    print(f"report: {os.path.join(out, f'{prefix}_report.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))
