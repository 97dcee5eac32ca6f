"""Mutation testing of the numeric and decision core, and its score.

    python -m tests.mutation_report --run [--survivors]

runs mutmut (configured in setup.cfg) on the functions of `CORE` with two
workers, then reads `mutants/**/*.py.meta` (mutmut's results) and prints a
Markdown table: per mutated module, how many of the mutants that were run
were killed, survived, had no test that runs them, or timed out, and the
score: (killed + timed out) / (run - equivalent), the equivalent mutants
being those listed with a reason in docs/mutation_equivalent.txt (one
`mutant_name  reason` per line). Without `--run` it reports the last run.
With `--survivors`, a table of every surviving mutant follows: its change
(from `mutmut show`) and why it is equivalent, when it is listed. docs/mutation.md
holds the last report.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"}
EQUIVALENT_FILE = os.path.join("docs", "mutation_equivalent.txt")

# The functions measured, as mutmut names their mutants: the pure-NumPy
# metric, gate and window code and the functions around it that the fast
# tests of setup.cfg run.
CORE = (
    "train.metrics.summarization.*",  # the summarization protocol
    "train.metrics.ranking.*",  # rank correlation
    "data.shots.*",  # KTS shots
    "data.features.x_scale_lengths*",  # the temporal scales
    "data.features.x_rescale_indices*",
    "train.tasks.classification.*",  # classification metrics, multi-view averaging
    "train.metrics.classification.*",  # report, ROC AUC, view averaging, two columns
    "train.formats.gates.*",  # the export gates' decisions
    "train.tasks.timeline.x_window_bounds*",  # timeline windows
    "train.tasks.timeline.x_frames_needed*",
    "train.tasks.timeline.x_moment_weights*",
    "train.tasks.timeline.x__pad*",
    "train.tasks.timeline.*ClassifierPredictor*__call__*",
    "train.tasks.timeline.*ClassifierPredictor*_probabilities*",
    "train.serving.prediction.*PredictOptions*",  # the prediction options
    "train.serving.prediction.x_video_fps*",
    "train.serving.prediction.x_seconds*",
    "train.serving.app.x__counted*",  # upload limits
    "train.app.x_main*",
)


def results(root="mutants"):
    """{module path: {mutant name: status}}."""
    found = {}
    for meta in sorted(glob.glob(os.path.join(root, "**", "*.py.meta"), recursive=True)):
        module = os.path.relpath(meta, root)[:-len(".meta")]
        with open(meta) as file:
            codes = json.load(file)["exit_code_by_key"]
        statuses = {name: STATUS.get(code, "not checked" if code is None else "suspicious")
                    for name, code in codes.items()}
        # Mutants of functions outside the measured core are never run.
        statuses = {name: status for name, status in statuses.items() if status != "not checked"}
        if statuses:
            found[module] = statuses
    return found


def equivalents(path=EQUIVALENT_FILE):
    """{mutant name: reason} of the mutants judged equivalent."""
    if not os.path.exists(path):
        return {}
    listed = {}
    with open(path) as file:
        for line in file:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, reason = line.partition(" ")
                listed[name] = reason.strip()
    return listed


def table(found, equivalent):
    rows = ["| module | mutants | killed | survived (equivalent) | no tests | timeout | score |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for module, statuses in found.items():
        values = list(statuses.values())
        killed = values.count("killed") + values.count("timeout")
        same = sum(1 for name, status in statuses.items()
                   if status != "killed" and name in equivalent)
        measured = len(values) - same
        score = f"{100 * killed / measured:.1f}%" if measured else "-"
        rows.append(
            f"| {module} | {len(values)} | {values.count('killed')} | "
            f"{values.count('survived')} ({same}) | {values.count('no tests')} | "
            f"{values.count('timeout')} | {score} |"
        )
    return "\n".join(rows)


def mutmut():
    """The mutmut command of this Python's environment."""
    return shutil.which("mutmut") or os.path.join(os.path.dirname(sys.executable), "mutmut")


def change(diff):
    """The changed lines of a `mutmut show` diff, as one table cell."""
    lines = [line for line in diff.splitlines()
             if line[:1] in "-+" and not line.startswith(("---", "+++"))]
    removed = " ".join(line[1:].strip() for line in lines if line.startswith("-"))
    added = " ".join(line[1:].strip() for line in lines if line.startswith("+"))
    return f"`{removed}` → `{added}`".replace("|", "\\|")


def main(argv):
    if "--run" in argv:
        subprocess.run([mutmut(), "run", "--max-children", "2", *CORE], check=True)
    found = results()
    equivalent = equivalents()
    print(table(found, equivalent))
    if "--survivors" in argv:
        print("\n| mutant | change | equivalent because |\n|---|---|---|")
        for statuses in found.values():
            for name, status in statuses.items():
                if status in ("killed", "timeout"):
                    continue
                shown = subprocess.run([mutmut(), "show", name], capture_output=True, text=True)
                print(f"| `{name}` ({status}) | {change(shown.stdout)} | "
                      f"{equivalent.get(name, 'not equivalent')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
