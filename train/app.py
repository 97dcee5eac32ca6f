"""A web page for a trained run: `python -m train.app --run DIR [--port 8000]`.

Serves the page of `train.serving.app` on 127.0.0.1 (`--host` to listen
elsewhere): upload a video, or pick one of `--videos FOLDER`, and see what
the run's task predicts from it.

The page answers only for the host names it serves: the loopback names
(127.0.0.1, localhost, ::1), the `--host` address, the machine's own name
when `--host` listens on every address (0.0.0.0 or ::), and each
`--allow-host NAME`.
"""

import math
import os
import socket
import sys

from common.cli import ArgumentParser, run_main
from train.serving.app import (
    DEFAULT_MAX_RESULTS_MB,
    DEFAULT_MAX_UPLOAD_MB,
    LOOPBACK_HOSTS,
    create_app,
)


def build_parser():
    parser = ArgumentParser(
        prog="python -m train.app",
        description="Serve a web page that runs a trained model on uploaded videos.",
    )
    parser.add_argument("--run", required=True, help="run folder (holds best.keras and config.json)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port)")
    parser.add_argument("--videos", default=None, help="a folder of videos the page offers to pick")
    parser.add_argument(
        "--out", default=None,
        help="folder of the result folders and uploads (default: RUN/predictions)",
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help="largest upload accepted",
    )
    parser.add_argument(
        "--max-results-mb", type=float, default=DEFAULT_MAX_RESULTS_MB,
        help="disk the page's own result folders may take; the oldest are removed first",
    )
    parser.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="another host name the page answers for (repeat for more); by default only "
        "the loopback names and --host",
    )
    parser.add_argument(
        "--explain", action="store_true",
        help="explain every prediction as train.predict --explain does, and show it",
    )
    return parser


def allowed_hosts(host, extra=()):
    """The host names the page answers for when it listens on `host`."""
    names = set(LOOPBACK_HOSTS) | {host} | set(extra)
    if host in ("0.0.0.0", "::", ""):
        names |= {socket.gethostname(), socket.getfqdn()}
    return sorted(name for name in names if name)


def main(argv=None):
    import uvicorn

    args = build_parser().parse_args(argv)
    for flag in ("max_upload_mb", "max_results_mb"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"--{flag.replace('_', '-')} must be a number of MB > 0, got {value}")
    if args.videos is not None and not os.path.isdir(args.videos):
        raise FileNotFoundError(f"--videos {args.videos}: no such folder")
    if not 0 <= args.port < 65536:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    app = create_app(args.run, args.out, args.videos, int(args.max_upload_mb * 2**20),
                     options={"explain": args.explain},
                     allowed_hosts=allowed_hosts(args.host, args.allow_host),
                     max_results_bytes=int(args.max_results_mb * 2**20))
    # The socket is bound here so that a taken port is one line, and the
    # address is printed before the (slow) model has loaded.
    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as error:
        raise ValueError(f"cannot listen on {args.host}:{args.port} ({error.strerror or error})") from None
    host, port = sock.getsockname()[:2]
    print(f"serving {args.run} on http://{host}:{port} (the model loads in the background)",
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))
