"""The three-split protocol of HMDB51 and UCF101: `python -m train.protocol`.

    python -m train.protocol --model r2plus1d --data hmdb51/ --split-dir hmdb51_splits/ [train.run flags]

Trains and evaluates one run per official split (1, 2 and 3) with
`train.run`'s training, into `<out>/split_1/`, `split_2/`, `split_3/`
(default `<out>`: `runs/<model>/<timestamp>`), then reports the mean and
standard deviation over the splits of top-1 accuracy, top-5 accuracy (more
than five classes) and mean class accuracy on each split's test videos:
`<out>/protocol_report.json` and a printed table. The numbers are those of
each split's own `test_report.json` (its kept checkpoint on the split's
test list). The standard deviation is the sample one (ddof = 1: three
splits are a sample of the splits one could draw), e.g. top-1 0.50, 0.60,
0.70 gives 0.600 +- 0.100.

Run it again with the same flags and `--out` to resume: a finished split
(its `metrics.json` exists) is not trained again, an interrupted one
resumes as `train.run` resumes a run. The folder records the command's
flags (`protocol.json`), and a rerun with other flags is refused, so one
report never mixes settings. Every flag is checked as `train.run` checks it
before `protocol.json` is written, so a typo never pins a folder to its
flags; a folder whose recorded flags no split has trained with yet takes
the new ones.
"""

import argparse
import datetime
import json
import os
import sys

import numpy as np

from common.cli import run_main
from common.files import read_json, write_json
from train import run, run_folder
from train.tasks.base import check_path
from train.tasks.classification import published_comparison

SPLITS = (1, 2, 3)
METRICS = (
    ("accuracy", "top-1"),
    ("top5_accuracy", "top-5"),
    ("mean_class_accuracy", "mean class accuracy"),
)
REPORT_NAME = "protocol_report.json"


def build_parser(model_name=None):
    """train.run's command line for `model_name`, named as the protocol's."""
    parser = run.build_parser(model_name)
    parser.prog = "python -m train.protocol"
    parser.description = (
        "Train and evaluate a clip classifier on the official splits 1, 2 and 3 of "
        "HMDB51 or UCF101 and report the mean and standard deviation over them. "
        "Takes train.run's flags, except --split and --ensemble."
    )
    return parser


def parse_args(argv):
    """train.run's flags for `--model`; --split and --ensemble are the
    protocol's to refuse, and the data must name its split lists."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--model")
    known, _ = peek.parse_known_args(argv)
    args = build_parser(known.model).parse_args(argv)
    if any(arg == "--split" or arg.startswith("--split=") for arg in argv):
        raise ValueError("--split: the protocol trains splits 1, 2 and 3 itself; leave --split out")
    if args.ensemble != 1:
        raise ValueError(f"--ensemble {args.ensemble}: the protocol trains one run per split")
    if getattr(args, "split_dir", None) is None or getattr(args, "data", None) is None:
        raise ValueError(
            f"--model {args.model}: the protocol needs videos with official split lists "
            "(--data FOLDER --split-dir FOLDER of HMDB51 or UCF101 lists)"
        )
    # Before anything is written into the protocol folder.
    check_path(args.data, "--data")
    check_path(args.split_dir, "--split-dir")
    run.check_flags(args)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    out = args.out or os.path.join(
        run.RUNS_DIR, args.model, datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out} is a file; expected a protocol folder")
    check_settings(args, out)
    print(f"protocol folder: {out}")
    folders = {}
    for split in SPLITS:
        folder = os.path.join(out, f"split_{split}")
        split_args = argparse.Namespace(**{**vars(args), "split": split, "out": folder})
        if os.path.exists(os.path.join(folder, "metrics.json")):
            print(f"split {split}: finished in {folder}, not trained again")
        else:
            print(f"split {split}: training in {folder}")
            run.train_one(split_args, folder, args.seed)
        folders[split] = folder
    report = protocol_report(args.model, folders)
    write_json(os.path.join(out, REPORT_NAME), report)
    print(protocol_table(report))
    print(f"report: {os.path.join(out, REPORT_NAME)}")
    return 0


def check_settings(args, out):
    """Records the command's settings in `<out>/protocol.json`, or refuses
    a folder whose recorded settings differ (the flags other than --out and
    --verbose)."""
    settings = json.loads(json.dumps(
        {key: value for key, value in sorted(vars(args).items()) if key not in ("out", "verbose")}
    ))
    path = os.path.join(out, "protocol.json")
    if os.path.exists(path):
        recorded = read_json(path, "protocol settings")
        started = [split for split in SPLITS
                   if os.path.isdir(os.path.join(out, f"split_{split}"))
                   and os.listdir(os.path.join(out, f"split_{split}"))]
        if recorded != settings and not started:
            print(f"{path}: no split has trained with its flags yet; recording this "
                  f"command's flags instead{run_folder.differences(recorded, settings)}")
        elif recorded != settings:
            raise ValueError(
                f"--out {out} holds a protocol run with other flags"
                f"{run_folder.differences(recorded, settings)}; rerun with its flags or choose another --out"
            )
        else:
            return
    os.makedirs(out, exist_ok=True)
    write_json(path, settings)


def protocol_report(model_name, folders):
    """Each split's test summary, and the mean and standard deviation."""
    summaries, benchmarks = {}, set()
    for split, folder in folders.items():
        path = os.path.join(folder, "test_report.json")
        if not os.path.isfile(path):
            raise ValueError(
                f"{folder}: no test_report.json; split {split} has no test videos in its lists"
            )
        report = read_json(path, "test report")
        summaries[str(split)] = report["summary"]
        benchmarks.add(report.get("benchmark"))
    mean, std = {}, {}
    for key, _ in METRICS:
        values = [summary[key] for summary in summaries.values() if key in summary]
        if len(values) == len(summaries):
            mean[key] = float(np.mean(values))
            std[key] = float(np.std(values, ddof=1))
    return {
        "model": model_name,
        "splits": summaries,
        "runs": {str(split): folder for split, folder in folders.items()},
        "mean": mean,
        "std": std,
        "std_ddof": 1,
        "benchmark": benchmarks.pop() if len(benchmarks) == 1 else None,
    }


def protocol_table(report):
    """Markdown: one row per split, the mean +- std, and the published
    numbers of the data set when it is one (see `classification`).

    Example:

    >>> report = {"splits": {"1": {"accuracy": 0.5}, "2": {"accuracy": 0.6},
    ...           "3": {"accuracy": 0.7}}, "mean": {"accuracy": 0.6},
    ...           "std": {"accuracy": 0.1}, "benchmark": None}
    >>> print(protocol_table(report))
    | split | top-1 | top-5 | mean class accuracy |
    |---|---:|---:|---:|
    | 1 | 0.500 | - | - |
    | 2 | 0.600 | - | - |
    | 3 | 0.700 | - | - |
    | mean +- std | 0.600 +- 0.100 | - | - |
    """
    def cell(summary, key):
        return f"{summary[key]:.3f}" if key in summary else "-"

    rows = [
        "| split | " + " | ".join(name for _, name in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for split, summary in report["splits"].items():
        rows.append(f"| {split} | " + " | ".join(cell(summary, key) for key, _ in METRICS) + " |")
    rows.append(
        "| mean +- std | "
        + " | ".join(
            f"{report['mean'][key]:.3f} +- {report['std'][key]:.3f}" if key in report["mean"] else "-"
            for key, _ in METRICS
        )
        + " |"
    )
    published = published_comparison(
        {"accuracy": report["mean"].get("accuracy", float("nan"))}, report.get("benchmark"),
        ours="ours (mean of splits 1-3)",
    )
    return "\n".join(rows) + ("\n\n" + published if published else "")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
