"""Markdown tables, the one writer every report and benchmark prints with.

Example:

>>> print(markdown_table([{"model": "a", "s": 0.12345, "n": 1200}], ["model", "s", "n"]))
| model | s | n |
|---|---|---|
| a | 0.123 | 1,200 |
"""


def markdown_table(rows, columns, cell=None):
    """Formats a list of dicts as a Markdown table with the given columns;
    `cell` formats a value (default: a missing cell is empty, floats keep
    3 significant digits, integers get thousands separators)."""
    cell = cell or _cell
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value):
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
