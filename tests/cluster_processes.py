"""Starts processes that find each other on loopback ports, retrying when a
port was taken.

A free port can only be found by binding it and letting it go, and the
process meant to listen on it binds it later: another program may take it
in between. Such a start ends with the listener refusing to start while its
peers wait for it, so a start whose listener failed to bind is stopped and
tried again with new ports.
"""

import re
import socket
import subprocess
import tempfile
import time

BIND_FAILURE = re.compile(
    r"address already in use|failed to bind|could not start grpc server|failed to add port",
    re.IGNORECASE,
)


def free_ports(count):
    """`count` distinct ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _stop(processes, logs):
    for process in processes.values():
        if process.poll() is None:
            process.kill()
    outputs = {}
    for name, process in processes.items():
        process.wait()
        logs[name].seek(0)
        outputs[name] = logs[name].read()
        logs[name].close()
    return outputs


def run_together(start, port_count, timeout, attempts=3):
    """Runs the processes `start(ports)` describes until they all end.

    Args:
        start: `ports -> {name: (argv, keyword arguments of subprocess.Popen)}`.
        port_count: how many free loopback ports `start` needs.
        timeout: seconds one attempt may take before its processes are killed
            (a guard against a hang, not a speed check).
        attempts: starts to try when a process ends on a failed bind.

    Returns:
        `({name: return code}, {name: output})` of the last attempt.
    """
    for attempt in range(attempts):
        # Files, not pipes: a full pipe would stop a process that is not read.
        commands = start(free_ports(port_count))
        logs = {name: tempfile.TemporaryFile("w+") for name in commands}
        processes = {
            name: subprocess.Popen(
                argv, stdout=logs[name], stderr=subprocess.STDOUT, text=True, **options
            )
            for name, (argv, options) in commands.items()
        }
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ended = {n: p for n, p in processes.items() if p.poll() is not None}
                if len(ended) == len(processes):
                    break
                if any(p.returncode != 0 for p in ended.values()):
                    break  # the others may wait forever for a peer that is gone
                time.sleep(0.5)
        finally:
            codes = {name: process.poll() for name, process in processes.items()}
            outputs = _stop(processes, logs)
        bind_failed = any(
            code not in (0, None) and BIND_FAILURE.search(outputs[name])
            for name, code in codes.items()
        )
        if not bind_failed or attempt == attempts - 1:
            return codes, outputs
    raise AssertionError("unreachable")
