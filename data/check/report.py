"""A check's report: `report.md` (read by a person), `report.json` (read by
programs) and PNG plots, in one folder.

The folder is written whole under a temporary name beside its place and
renamed into place, and an existing folder is never replaced: the report
goes to `out`, or `out-2`, `out-3`, ... when that exists.

Example:

>>> import tempfile
>>> from data.check.findings import Findings
>>> findings = Findings()
>>> findings.warning("one_clip", "class 'jump' has 1 clip")
>>> report = Report("videos/", "videos", "full", findings, overview=["2 videos"])
>>> folder = write_report(report, os.path.join(tempfile.mkdtemp(), "check"))
>>> sorted(os.listdir(folder))
['report.json', 'report.md']
>>> print(open(os.path.join(folder, "report.md")).read().splitlines()[2])
**0 errors, 1 warning** (exit code 0).
"""

import dataclasses
import datetime
import os
import shutil
import tempfile

from common.files import fsync_directory, pyplot, save_figure, write_atomic, write_json

# Findings listed in full in report.md; the rest are counted (all are in report.json).
LISTED_FINDINGS = 200


@dataclasses.dataclass
class Report:
    """What a check found and measured.

    Args:
        source: the checked path, as given.
        kind: "videos", "features" or "summaries".
        mode: "full" or "quick".
        findings: a `Findings`.
        overview: lines under the title (what was checked).
        sections: (title, Markdown text) pairs, in order.
        plots: {file name: function(pyplot) -> figure}; each becomes a PNG
            shown at the end of the section that names it (`![...](name)`),
            or under "Plots".
        data: more of `report.json` (per-file records, statistics).
    """

    source: str
    kind: str
    mode: str
    findings: object
    overview: list = dataclasses.field(default_factory=list)
    sections: list = dataclasses.field(default_factory=list)
    plots: dict = dataclasses.field(default_factory=dict)
    data: dict = dataclasses.field(default_factory=dict)


def plural(count, word):
    """'1 error', '2 errors', '2 classes'.

    Example:

    >>> plural(1, "error"), plural(2, "class")
    ('1 error', '2 classes')
    """
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}" + ("es" if word.endswith("s") else "s")


def markdown(report, plot_names):
    """The report's Markdown text."""
    counts = report.findings.counts()
    lines = [
        f"# Data check: {report.source}",
        "",
        f"**{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}** "
        f"(exit code {report.findings.exit_code()}).",
        "",
        f"{report.kind}, {report.mode} check, "
        f"{datetime.datetime.now().isoformat(timespec='seconds')}.",
    ]
    lines += [""] + [f"- {line}" for line in report.overview] if report.overview else []
    for severity, title in (("error", "Errors"), ("warning", "Warnings")):
        items = report.findings.of(severity)
        if not items:
            continue
        lines += ["", f"## {title}", ""]
        lines += [f"- **{item.kind}**: {item.message}" for item in items[:LISTED_FINDINGS]]
        if len(items) > LISTED_FINDINGS:
            lines.append(f"- ... and {len(items) - LISTED_FINDINGS} more (see report.json)")
    shown = set()
    for title, text in report.sections:
        lines += ["", f"## {title}", "", text.rstrip()]
        shown.update(name for name in plot_names if f"]({name})" in text)
    rest = [name for name in plot_names if name not in shown]
    if rest:
        lines += ["", "## Plots", ""] + [f"![{os.path.splitext(name)[0]}]({name})" for name in rest]
    return "\n".join(lines) + "\n"


def write_report(report, out):
    """Writes the report folder (see the module docstring); returns its path."""
    out = os.path.abspath(os.fspath(out))
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(out)}-", dir=parent)
    try:
        written = []
        if report.plots:
            plt = pyplot()
            for name, draw in report.plots.items():
                save_figure(draw(plt), os.path.join(staging, name))
                written.append(name)
        write_atomic(os.path.join(staging, "report.md"), markdown(report, written))
        counts = report.findings.counts()
        write_json(os.path.join(staging, "report.json"), {
            "source": report.source,
            "kind": report.kind,
            "mode": report.mode,
            "errors": counts["error"],
            "warnings": counts["warning"],
            "exit_code": report.findings.exit_code(),
            "findings": report.findings.to_json(),
            "plots": written,
            **report.data,
        })
        os.chmod(staging, 0o777 & ~_umask())
        folder = _claim_rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_directory(parent)
    return folder


def _claim_rename(staging, out):
    """Renames `staging` onto `out`, or `out-2`, ... when that exists."""
    for number in range(1, 100_000):
        target = out if number == 1 else f"{out}-{number}"
        if os.path.lexists(target):
            continue
        try:
            os.rename(staging, target)
            return target
        except OSError:
            if os.path.lexists(target):  # taken between the look and the rename
                continue
            raise
    raise FileExistsError(f"{out}: no free report folder name")


def _umask():
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


__all__ = ["Report", "markdown", "plural", "write_report"]
