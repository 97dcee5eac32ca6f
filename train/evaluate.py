"""Evaluate trained runs: `python -m train.evaluate --runs DIR [DIR ...]`.

The run's task makes the report: classifiers get the action-recognition
report (top-1, top-5 and mean class accuracy, per-class precision/recall/F1,
macro-F1, ROC AUC for binary models, the confusion matrix as JSON and PNG),
frame scorers the summarization protocol. Several runs form an ensemble
whose outputs are averaged. Data flags default to what the first run
recorded; a flag given here replaces the recorded value. `--views
CLIPSxCROPS` tests clip classifiers on several views of each video and
averages their probabilities (see `train.tasks.clips`): a task's own
evaluation options become flags of this command.
"""

import argparse
import dataclasses
import json
import os
import sys

from common.cli import ArgumentParser, run_main
from common.files import write_json
from train import tasks
from train.run_folder import load_record, load_run
from train.tasks.base import (
    add_option_arguments,
    option_flags,
    options_from_args,
    options_from_record,
)


def run_data(record, option_updates=None, split=None, evaluation=None):
    """Rebuilds one split of a run's data from what the run recorded.

    Args:
        record: the run's `config.json` (`load_record`).
        option_updates: data options given on the command line; they
            replace the recorded values.
        split: "test", "val", or None for the test data when the run has
            any, else the validation data.
        evaluation: the task's `EvaluateOptions` (e.g. the clips task's
            multi-view testing), or None.
    """
    task = tasks.task_for(record["model"])
    options = options_from_record(task.Options, record.get("data_options"), option_updates)
    given = frozenset(option_updates or {})
    return task.load_split(options, record, split, given, evaluation=evaluation)


def evaluation_options(task, values):
    """The task's `EvaluateOptions` from parsed values (None without any)."""
    if task.EvaluateOptions is None:
        return None
    return options_from_args(task.EvaluateOptions, values)


def check_evaluation_flags(task, model_name, argv):
    """Refuses an evaluation flag of another task in `argv`, naming the
    task that has it (argparse alone would only say it is unknown)."""
    mine = set(option_flags(task.EvaluateOptions)) if task.EvaluateOptions else set()
    for other in tasks.kinds():
        other_task = tasks.get_task(other)
        if other_task is task or other_task.EvaluateOptions is None:
            continue
        for flag in option_flags(other_task.EvaluateOptions):
            given = [item for item in argv if item == flag or item.startswith(flag + "=")]
            if given and flag not in mine:
                index = argv.index(given[0])
                value = given[0].partition("=")[2] or (argv[index + 1] if index + 1 < len(argv) else "")
                raise ValueError(
                    f"{flag} {value}: {model_name} runs read {task.kind} data, not {other} data; "
                    f"{flag} is an evaluation option of the {other} task"
                )


def evaluate_runs(runs, split="test", out=None, option_updates=None, evaluation=None):
    """Evaluates one run, or averages the outputs of several.

    `split=None` takes the test data when there is any, else validation;
    `evaluation` holds the task's own evaluation options (e.g. views).
    Writes `<split>_report.json` and `metrics.json` into `out` when given.
    """
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
    data = run_data(first, option_updates, split=split, evaluation=evaluation)
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


def report_prefix(out, split, updates, suffix=""):
    """`evaluate_<split>[_<data>][_<suffix>]`, named by the data files
    given on the command line and the task's suffix for its evaluation
    options (e.g. `views10x3`), and numbered (`-2`, `-3`, ...) past any
    report already in `out`: an evaluation never replaces an earlier one."""
    names = [
        os.path.splitext(os.path.basename(os.path.normpath(value)))[0]
        for _, value in sorted(updates.items())
        if isinstance(value, str) and os.path.exists(value)
    ]
    if suffix:
        names.append(suffix)
    stem = "_".join([f"evaluate_{split}", *names])
    prefix, number = stem, 1
    while os.path.exists(os.path.join(out, f"{prefix}_report.json")):
        number += 1
        prefix = f"{stem}-{number}"
    return prefix


def build_parser(model_name=None):
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
    if model_name is not None:
        task = tasks.task_for(model_name)
        if task.EvaluateOptions is not None:
            add_option_arguments(parser.add_argument_group(f"evaluation ({task.kind} runs)"),
                                 task.EvaluateOptions)
        group = parser.add_argument_group("data (overrides what the run recorded)")
        add_option_arguments(group, task.Options, suppress_defaults=True)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--runs", nargs="+")
    known, _ = peek.parse_known_args(argv)
    model_name = None
    if known.runs:
        model_name = load_record(known.runs[0])["model"]
    task = tasks.task_for(model_name) if model_name is not None else None
    if task is not None:
        check_evaluation_flags(task, model_name, list(argv or []))
    args = build_parser(model_name).parse_args(argv)
    evaluation_fields = (
        {field.name for field in dataclasses.fields(task.EvaluateOptions)}
        if task.EvaluateOptions is not None else set()
    )
    fixed = {"runs", "subset", "out"} | evaluation_fields
    updates = {k: v for k, v in vars(args).items() if k not in fixed}
    out = args.out or args.runs[0]
    evaluation = evaluation_options(task, vars(args))
    if evaluation is not None:
        task.report_suffix(evaluation)  # a bad value is refused before the model loads
    report = evaluate_runs(args.runs, args.subset, out=None, option_updates=updates,
                           evaluation=evaluation)
    os.makedirs(out, exist_ok=True)
    prefix = report_prefix(out, report["split"], updates, task.report_suffix(evaluation))
    task.write_report(report, out, prefix=prefix)
    print(json.dumps(report["summary"], indent=2))
    description = task.describe(report)
    if description:
        print(description)
    print(f"report: {os.path.join(out, f'{prefix}_report.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))
