"""The results table of a search: Markdown and CSV, best validation accuracy first.

Each row is one trial, with the metrics of its best epoch (the epoch the
objective picked): train loss, val loss, val acc, and the size metrics its
family declares (`Family.size_metrics`: for the R(2+1)D families the
backbone's trainable parameters, CNN params, and the Perceiver's,
attention params).
"""

import csv
import io
import math
import os

from common.files import write_atomic
from common.tables import markdown_table
from tuning.hypermodel import SIZE_PREFIX

METRIC_COLUMNS = (
    ("train loss", "loss"),
    ("val loss", "val_loss"),
    ("val acc", "val_accuracy"),
)


def _metric(trial, name):
    if trial.metrics.exists(name):
        value = trial.metrics.get_last_value(name)
        if value is not None and not math.isnan(value):
            return float(value)
    return None


def size_columns(oracle):
    """The size metrics the trials recorded, as (column, metric name)."""
    names = []
    for trial in oracle.trials.values():
        for name in trial.metrics.metrics:
            if name.startswith(SIZE_PREFIX) and name not in names:
                names.append(name)
    return [(name[len(SIZE_PREFIX):], name) for name in names]


def trial_rows(oracle, space, objective_name):
    """One dict per trial, sorted by val acc (else the objective), best first."""
    range_fields = [r.field for r in space.ranges]
    sizes = size_columns(oracle)
    models_by_label = {s.label: s.model for s in space.settings}
    rows = []
    for trial in oracle.trials.values():
        values = trial.hyperparameters.values
        label = values.get(space.hp_name, "")
        row = {"trial": trial.trial_id, space.hp_name: label, "model": models_by_label.get(label, "")}
        for field in range_fields:
            row[field] = values.get(field)
        for column, metric in METRIC_COLUMNS:
            row[column] = _metric(trial, metric)
        if objective_name not in dict(METRIC_COLUMNS).values():
            row[objective_name] = _metric(trial, objective_name)
        for column, metric in sizes:
            value = _metric(trial, metric)
            row[column] = None if value is None else int(value)
        row["status"] = str(trial.status).split(".")[-1].lower()
        rows.append(row)
    key = "val acc" if any(r["val acc"] is not None for r in rows) else objective_name
    rows.sort(key=lambda r: (r.get(key) is None, -(r.get(key) or 0.0), r["trial"]))
    return rows


def columns_of(rows, space, objective_name):
    columns = ["trial", space.hp_name, "model"] + [r.field for r in space.ranges]
    columns += [c for c, _ in METRIC_COLUMNS]
    if objective_name not in dict(METRIC_COLUMNS).values():
        columns.append(objective_name)
    known = set(columns) | {"status"}
    columns += [key for row in rows for key in row if key not in known and not known.add(key)]
    return columns + ["status"]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown(rows, columns):
    return markdown_table(rows, columns, cell=_cell) + "\n"


def csv_text(rows, columns):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buffer.getvalue()


def write_tables(rows, columns, out):
    """Writes `results.md` and `results.csv` into `out`; returns the Markdown."""
    text = markdown(rows, columns)
    write_atomic(os.path.join(out, "results.md"), text)
    write_atomic(os.path.join(out, "results.csv"), csv_text(rows, columns))
    return text
