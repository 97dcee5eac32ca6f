"""`python -m benchmarks`: the benchmark report of every model (see report.py)."""

from benchmarks.report import main
from common.cli import run_main

raise SystemExit(run_main(main))
