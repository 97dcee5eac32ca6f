"""What every command-line entry point shares: user errors end cleanly.

A user error (bad path, bad value, wrong schema) prints one line naming the
thing and what was expected, and exits with code 2, without a traceback.
Anything else is a bug and still raises.
"""

import argparse
import sys

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def run_main(main, argv=None):
    """Calls `main(argv)` and turns a user error into one line and exit 2."""
    try:
        return main(argv)
    except USER_ERRORS as error:
        message = str(error) or type(error).__name__
        if isinstance(error, OSError) and error.filename and error.filename not in message:
            message = f"{error.filename}: {error.strerror or message}"
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none or the flag is a
    switch (`--no-progress` would read "(default: True)"); a description or
    epilog written in lines keeps its lines."""

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with defaults shown in --help and one-line usage errors."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)
