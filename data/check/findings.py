"""What a check finds: errors (the data is wrong for training or testing)
and warnings (worth a look, does not stop anything).

Example:

>>> findings = Findings()
>>> findings.error("truncated", "a.mp4: decoding stops after 3 of 12 frames", ["a.mp4"])
>>> findings.warning("one_clip", "class 'jump' has 1 clip")
>>> findings.counts(), findings.exit_code()
({'error': 1, 'warning': 1}, 1)
"""

import dataclasses

SEVERITIES = ("error", "warning")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem.

    Args:
        severity: "error" or "warning".
        kind: a short machine-readable name (e.g. "truncated").
        message: one line a person reads, naming the file(s).
        paths: the files concerned.
    """

    severity: str
    kind: str
    message: str
    paths: tuple = ()


class Findings:
    """An ordered list of findings with counts and the exit code they mean."""

    def __init__(self):
        self.items = []

    def add(self, severity, kind, message, paths=()):
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        self.items.append(Finding(severity, kind, message, tuple(str(p) for p in paths)))

    def error(self, kind, message, paths=()):
        self.add("error", kind, message, paths)

    def warning(self, kind, message, paths=()):
        self.add("warning", kind, message, paths)

    def of(self, severity):
        return [item for item in self.items if item.severity == severity]

    def counts(self):
        return {severity: len(self.of(severity)) for severity in SEVERITIES}

    def exit_code(self):
        """1 when there is an error, else 0 (warnings only, or nothing)."""
        return 1 if self.of("error") else 0

    def to_json(self):
        return [dataclasses.asdict(item) for item in self.items]
