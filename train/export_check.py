"""The export matrix: every registered model through every format, gated.

    python -m train.export_check [--models convlstm,...] [--formats litert,...]

prints one Markdown row per model and format: exported and its gate's
numbers, or why not (see `train.formats.matrix`).
"""

import sys
import tempfile

import models
from common.cli import ArgumentParser, run_main
from common.tables import markdown_table
from train import formats
from train.formats import matrix


def build_parser():
    """The command line of `main`."""
    parser = ArgumentParser(prog="python -m train.export_check", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(models.names()),
                        help="comma-separated model names")
    parser.add_argument("--formats", default=",".join(formats.names()),
                        help="comma-separated formats")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    chosen = [formats.check_format(f) for f in args.formats.split(",") if f]
    for name in names:
        models.get_family(name)
    with tempfile.TemporaryDirectory() as folder:
        rows = matrix.matrix_rows(names, chosen, folder)
    columns = ["model", "format", "result", "gate", "max abs diff", "trained fit", "convert s", "why"]
    print(markdown_table(rows, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))
