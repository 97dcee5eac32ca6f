"""Runs a CLI's `main` in-process, the way `python -m ...` would."""

from common.cli import run_main


def call(main, argv, capsys):
    """Runs `main(argv)` through `run_main`; returns (exit code, stdout, stderr)."""
    try:
        code = run_main(main, argv)
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
