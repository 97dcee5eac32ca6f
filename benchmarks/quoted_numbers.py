"""The demo numbers quoted in README.md and docs/ against the commands that give them.

    python -m benchmarks.quoted_numbers [--only RUN ...] [--slow] [--out FOLDER]

`QUOTES` lists every quoted demo metric: the document, the quoted text (as
it reads there, line breaks aside), the run that produces it and how each
number of the text is read from that run's folder. `RUNS` holds the
commands, seeded, each written into its own folder under `--out` (default:
a temporary folder, removed afterwards). For each run the script prints
its wall time beside the time the documents quote (machines differ, so
times are reported, never compared) and, for each quoted number, the
value read, rounded to the quoted precision, and `match` or `MISMATCH`.
It exits with code 1 on any mismatch.

A quote whose run is `None` is a number the current commands no longer
give (an earlier version's result, kept for comparison in the text); its
`reason` says why, and it is listed so that the check of the documents
(`quoted_demo_numbers`, used by the tests) knows it. Runs marked `slow`
(the notes' 40-minute recipe) run only with `--slow`. A finished run in
`--out` (its `metrics.json` exists) is read, not trained again.
"""

import dataclasses
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from common.cli import ArgumentParser, run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Run:
    """One command that produces quoted numbers.

    Args:
        flags: the arguments after `python -m train.run`, `--out` and
            `--seed` aside (added by the script).
        quoted_time: the wall time the documents quote for it, or "".
        slow: run only with `--slow`.
    """

    flags: tuple
    quoted_time: str = ""
    slow: bool = False

    def command(self, out=None, seed=0):
        """The command line as the documents write it, with `--seed` and `--out`."""
        words = ["python", "-m", "train.run", *self.flags, "--seed", str(seed)]
        return words + (["--out", out] if out else [])


@dataclasses.dataclass(frozen=True)
class Reading:
    """How one quoted number is read from a run folder.

    Args:
        describe: where the value is, e.g. `metrics.json test_auc`.
        read: function of the run folder returning the value (a float).
        percent: the document writes the value times 100, with a `%`.
    """

    describe: str
    read: object
    percent: bool = False


@dataclasses.dataclass(frozen=True)
class Quote:
    """A passage of a document that quotes demo numbers.

    Args:
        document: path from the repository root.
        text: the passage as the document has it (any run of white space
            matches any other); its numbers with a decimal point or a `%`
            are the quoted numbers, in order.
        run: the key of the run in `RUNS` that produces them, or None when
            no current command does (see `reason`).
        readings: one `Reading` per quoted number, in order.
        reason: why a quote with no run is not checked.
    """

    document: str
    text: str
    run: str | None = None
    readings: tuple = ()
    reason: str = ""

    def numbers(self):
        """The quoted numbers as written: `["1.000", "37.50%"]`."""
        return NUMBER.findall(self.text)


NUMBER = re.compile(r"(?<![\w.])\d+\.\d+%?|(?<![\w.])\d+%")


def read_json(folder, name):
    with open(os.path.join(folder, name)) as file:
        return json.load(file)


def metric(name):
    """A value of the run's `metrics.json`."""
    return Reading(f"metrics.json {name}", lambda folder: float(read_json(folder, "metrics.json")[name]))


def percent_metric(name):
    return dataclasses.replace(metric(name), percent=True)


def report_value(*keys, percent=False):
    """A value of the run's `test_report.json`, by its keys."""
    def read(folder):
        value = read_json(folder, "test_report.json")
        for key in keys:
            value = value[key]
        return float(value)

    return Reading(f"test_report.json {'.'.join(keys)}", read, percent)


def known_importance(name, percent=False):
    """The embedded set's known importance (its `gtscore`) scored as if it
    were the model's prediction on the run's test videos, through the same
    protocol: rebuilt from the seed, count and sizes the run recorded."""
    def read(folder):
        from data import summarization
        from train.metrics.summarization import evaluate_videos

        record = read_json(folder, "config.json")
        data = record["data"]
        if data.get("data") != "synthetic" or data.get("features") != "synthetic_projection":
            raise ValueError(f"{folder}: not a features-mode run on the embedded set")
        height, width = data["frame_size"]
        videos = summarization.synthetic_summary_records(
            record["data_options"]["synthetic_videos"], seed=record["seed"],
            feature_dim=data["feature_dim"], height=height, width=width,
        )
        test = {key: videos[key] for key in data["keys"]["test"]}
        scores = {key: video.gtscore for key, video in test.items()}
        return float(evaluate_videos(scores, test, reduction=data["reduction"])[0][name])

    return Reading(f"the known importance (gtscore) of the test videos scored: {name}", read, percent)


RUNS = {
    "convlstm_demo": Run(("--model", "convlstm"), quoted_time="3 minutes 1 s"),
    "convlstm_notes": Run(("--model", "convlstm", "--preset", "benchmark"),
                          quoted_time="40 min 15 s", slow=True),
    "bilstm_demo": Run(("--model", "bilstm_attention"), quoted_time="91 s"),
    "keyframe_demo": Run(("--model", "keyframe_transformer"), quoted_time="190 s"),
    "keyframe_3_epochs": Run(("--model", "keyframe_transformer", "--epochs", "3")),
    "r2plus1d_small": Run((
        "--model", "r2plus1d", "--preset", "demo", "--cnn-blocks", "2", "--widths", "16,32,64,128",
        "--input-shape", "8,32,32,3", "--num-classes", "2", "--epochs", "4", "--synthetic-clips", "64",
    )),
}

HISTORY = "an earlier version's result, quoted for comparison; no current command gives it"

QUOTES = (
    Quote("README.md", '`"test_auc": 1.0, "test_accuracy": 0.984`', "convlstm_demo",
          (metric("test_auc"), metric("test_accuracy"))),
    Quote("README.md", "test AUC 1.000 and accuracy 0.984", "convlstm_demo",
          (metric("test_auc"), metric("test_accuracy"))),
    Quote("docs/training.md", "test AUC 1.000 and test accuracy 1.000", "convlstm_notes",
          (metric("test_auc"), metric("test_accuracy"))),
    Quote("docs/training.md", "AUC 0.997, accuracy 0.938", reason=HISTORY),
    Quote("docs/training.md", "(validation AUC 0.48, 0.46, 0.60,", reason=(
        "a benchmarks.augmentation row (its own command and table), not a demo run")),
    Quote("docs/training.md", "(validation accuracy 0.25 for six epochs, then 0.34 to 0.47;",
          reason="a run on real videos, not on the embedded data"),
    Quote("docs/training.md", "test accuracy 0.81–0.86 on 4 motion classes", reason=HISTORY),
    Quote("docs/training.md", "test accuracy 0.875", "bilstm_demo", (metric("test_accuracy"),)),
    Quote("docs/training.md",
          "F-score 39.65%, τ/ρ against the annotators' scores 0.228 / 0.331, against "
          "`gtscore` 0.673 / 0.822", "keyframe_demo",
          (percent_metric("test_fscore"), metric("test_kendall_tau"), metric("test_spearman_rho"),
           metric("test_gt_kendall_tau"), metric("test_gt_spearman_rho"))),
    Quote("docs/training.md", "the known importance itself scores 41.89% and 0.329 / 0.434",
          "keyframe_demo",
          (known_importance("fscore", percent=True), known_importance("kendall_tau"),
           known_importance("spearman_rho"))),
    Quote("docs/training.md", "one simulated user against the other four 30.62%", "keyframe_demo",
          (report_value("baselines", "human", "fscore", percent=True),)),
    Quote("docs/training.md", "when the same command gave 67.95%, 0.261 / 0.316 and 0.668 / 0.813",
          reason=HISTORY),
    Quote("docs/training.md", "with `--mse-weight 0.5` it gave 67.95%, 0.256 / 0.310 and 0.664 / 0.806",
          reason=HISTORY),
    Quote("docs/training.md", "gave 70.6%, 0.264 / 0.320 and 0.700 / 0.841", reason=HISTORY),
    Quote("docs/evaluation.md", "(AUC) but gets three fewer of the 64 right at the 0.5 threshold",
          reason="the decision threshold, not a measured number"),
    Quote("docs/prediction.md", "stayed at chance yet gave 2.4", reason=(
        "a Grad-CAM ratio of tests/test_explain.py's setting, not a train.run metric")),
    Quote("docs/prediction.md", "still at chance on the embedded test clips, 47.6%", "r2plus1d_small",
          (percent_metric("test_accuracy"),)),
    Quote("docs/prediction.md", "test F-score 37.8% against users who disagree",
          "keyframe_3_epochs", (percent_metric("test_fscore"),)),
)

# A quoted metric in the documents' prose: a metric's name, then (within
# the same clause) a number with a decimal point or a `%`. The documents'
# tables and code blocks are left out: tables quote their own command.
METRIC_NAMES = r"AUC|accuracy|F-score|τ/ρ|top-1|\"test_[a-z_]+\":|at chance|scores(?= \d)"
QUOTED_METRIC = re.compile(rf"(?:{METRIC_NAMES})[^.;:|]{{0,60}}?({NUMBER.pattern})")


def documents(root=ROOT):
    """README.md and docs/*.md, as paths from `root`."""
    found = ["README.md"] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    return [os.path.relpath(os.path.join(root, path), root) for path in found]


def prose(text):
    """A document's text without tables and code blocks, white space runs
    made single spaces."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced and not line.lstrip().startswith("|"):
            lines.append(line)
    return normal(" ".join(lines))


def normal(text):
    return re.sub(r"\s+", " ", text).strip()


def quoted_demo_numbers(root=ROOT):
    """(document, number, context) of every quoted metric in the documents'
    prose that no entry of `QUOTES` covers: a new quoted number without an
    entry is found here."""
    uncovered = []
    for document in documents(root):
        with open(os.path.join(root, document)) as file:
            text = prose(file.read())
        spans = []
        for quote in QUOTES:
            if quote.document == document:
                start = text.find(normal(quote.text))
                while start >= 0:
                    spans.append((start, start + len(normal(quote.text))))
                    start = text.find(normal(quote.text), start + 1)
        for match in QUOTED_METRIC.finditer(text):
            start, end = match.span(1)
            if not any(low <= start and end <= high for low, high in spans):
                uncovered.append((document, match.group(1), text[max(0, start - 60):end + 10]))
    return uncovered


def missing_quotes(root=ROOT):
    """The entries of `QUOTES` whose text their document no longer has."""
    missing = []
    for quote in QUOTES:
        with open(os.path.join(root, quote.document)) as file:
            if normal(quote.text) not in normal(file.read()):
                missing.append(quote)
    return missing


def rounded(value, written):
    """`value` written as `written` is: same decimals, `%` times 100."""
    percent = written.endswith("%")
    if percent:
        value = 100 * value
    decimals = len(written.rstrip("%").partition(".")[2])
    return f"{value:.{decimals}f}" + ("%" if percent else "")


def compare(quote, folder):
    """One row per quoted number: (written, read, match)."""
    rows = []
    for written, reading in zip(quote.numbers(), quote.readings):
        value = reading.read(folder)
        shown = rounded(value, written)
        rows.append((written, shown, not math.isnan(value) and shown == written, reading.describe))
    return rows


def train(name, out):
    """Runs `RUNS[name]` into `out/name` (unless finished there); returns
    (folder, wall seconds or None when it was finished already)."""
    folder = os.path.join(out, name)
    if os.path.exists(os.path.join(folder, "metrics.json")):
        return folder, None
    command = [sys.executable, *RUNS[name].command(folder)[1:]]
    print("$", " ".join(RUNS[name].command(folder)), flush=True)
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    with open(os.path.join(out, f"{name}.log"), "w") as log:
        code = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).returncode
    if code:
        raise RuntimeError(f"{name}: exit code {code}; see {os.path.join(out, name + '.log')}")
    return folder, time.perf_counter() - started


def build_parser():
    """The command line of `main`."""
    parser = ArgumentParser(prog="python -m benchmarks.quoted_numbers", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(RUNS), default=None,
                        help="the runs to check; without it, every run that is not slow")
    parser.add_argument("--slow", action="store_true",
                        help="also run the slow runs (convlstm_notes: about 40 minutes on 2 cores)")
    parser.add_argument("--out", default=None,
                        help="folder of the run folders, kept; a finished run there is read again "
                        "(default: a temporary folder, removed afterwards)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    missing = missing_quotes()
    if missing:
        raise ValueError("quoted text no longer in its document: "
                         + "; ".join(f"{q.document}: {q.text!r}" for q in missing))
    names = args.only or [name for name, run in RUNS.items() if args.slow or not run.slow]
    out = args.out or tempfile.mkdtemp(prefix="quoted_numbers_")
    mismatches = 0
    try:
        for name in names:
            folder, seconds = train(name, out)
            took = "finished before" if seconds is None else f"{seconds:.0f} s"
            print(f"\n{name}: {' '.join(RUNS[name].command())}\n  wall time {took}"
                  + (f" (documents quote {RUNS[name].quoted_time})" if RUNS[name].quoted_time else ""))
            for quote in (q for q in QUOTES if q.run == name):
                for written, shown, match, describe in compare(quote, folder):
                    mismatches += not match
                    print(f"  {quote.document}: {written} -> {shown} "
                          f"{'match' if match else 'MISMATCH'} ({describe})")
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    print(f"\n{mismatches} mismatch(es)")
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
