"""python -m data.check PATH: a report of what is wrong with a data set.

Examples:

    python -m data.check videos/                       # class folders
    python -m data.check hmdb51/ --split-dir splits/ --split 1
    python -m data.check manifest.csv --quick          # headers only
    python -m data.check features.h5
    python -m data.check eccv16_dataset_tvsum_google_pool5.h5

Prints one JSON line on stdout ({"errors", "warnings", "report"}), the
errors and a summary on stderr; exit code 1 when it found an error, 0 with
warnings only, 2 for bad usage.
"""

import json
import os
import sys

from common.cli import ArgumentParser, run_main
from common.progress import Progress
from data.check import check_path, source_kind
from data.check.probe import DEFAULT_TIMEOUT
from data.check.report import plural, write_report

DEFAULT_OUT = "checks"
# Errors printed on stderr; all are in the report.
PRINTED_ERRORS = 10


def build_parser():
    parser = ArgumentParser(
        prog="python -m data.check",
        description=(
            "Check a data set before training: unreadable, empty, truncated or decoder-crashing "
            "videos (each opened in a child process), durations, frame rates, sizes and colour, "
            "class balance per split, duplicates across splits, labels against folders; for "
            "HDF5 feature and summarization files NaN/Inf, all-zero rows, lengths that disagree "
            "and user summaries that do not fit their video. Writes report.md, report.json and "
            "plots. Exit code 1 on errors, 0 with warnings only, 2 for bad usage."
        ),
    )
    parser.add_argument("path", metavar="PATH",
                        help="a class-per-folder video tree, a CSV manifest path,label[,split], "
                             "a feature file or a summarization HDF5 file")
    parser.add_argument("--split-dir", default=None,
                        help="folder of HMDB51 or UCF101 split lists (video trees only)")
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 3),
                        help="which official split --split-dir describes")
    parser.add_argument("--out", default=None,
                        help=f"report folder (default {DEFAULT_OUT}/<name of PATH>); an existing "
                             "folder is kept and the report goes to OUT-2, OUT-3, ...")
    parser.add_argument("--quick", action="store_true",
                        help="headers and first frames only: no full decode, no hashing, no "
                             "duplicate search")
    parser.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="videos opened at once, each in its own process")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds one video may take before its decoder is killed and the "
                             "file reported")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress line per video")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if not args.timeout > 0:
        raise ValueError(f"--timeout must be > 0, got {args.timeout}")
    source_kind(args.path, args.split_dir)
    out = args.out or os.path.join(DEFAULT_OUT, _name(args.path))
    if os.path.isfile(out):
        raise NotADirectoryError(f"--out {out}: a file, but a report folder is expected")

    report = check_path(args.path, split_dir=args.split_dir, split=args.split,
                        full=not args.quick, jobs=args.jobs, timeout=args.timeout,
                        progress=_progress_bar if args.progress else None)
    folder = write_report(report, out)
    counts = report.findings.counts()
    for finding in report.findings.of("error")[:PRINTED_ERRORS]:
        print(f"error: {finding.message}", file=sys.stderr)
    if counts["error"] > PRINTED_ERRORS:
        print(f"... {counts['error'] - PRINTED_ERRORS} more errors in the report", file=sys.stderr)
    report_file = os.path.join(folder, "report.md")
    print(f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}: "
          f"{report_file}", file=sys.stderr)
    print(json.dumps({"errors": counts["error"], "warnings": counts["warning"],
                      "report": report_file}))
    return report.findings.exit_code()


def _progress_bar(total):
    """A progress line per video: `(path, result)` -> one step."""
    bar = Progress(total)
    return lambda path, result: bar.step(os.path.basename(path), "ok" if result["ok"] else "BROKEN")


def _name(path):
    name = os.path.basename(os.path.normpath(path))
    return os.path.splitext(name)[0] or "data"


if __name__ == "__main__":
    sys.exit(run_main(main))
