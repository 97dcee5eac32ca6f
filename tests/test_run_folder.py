"""The run folder: one train.run at a time writes it."""

import os
import subprocess
import sys

import pytest

from common.cli import run_main
from train import run as run_cli
from train import run_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hold_lock(out):
    """A process that holds the run lock of `out` until its input ends."""
    code = ("import sys; from train.run_folder import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); sys.stdin.read()")
    process = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_run_into_a_folder_being_written_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    holder = hold_lock(out)
    try:
        with pytest.raises(SystemExit) as stop:
            run_main(run_cli.main, ["--model", "convlstm", "--out", str(out), "--epochs", "1"])
        assert stop.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines == [
            f"error: --out {out} is being written by another train.run (process {holder.pid}, "
            f"holding {out / 'run.lock'}); wait for it to finish or choose another --out"]
        assert sorted(os.listdir(out)) == ["run.lock"]  # nothing of the refused run
        # In this process too.
        with pytest.raises(ValueError, match=f"process {holder.pid}"):
            run_folder.RunLock(out).acquire()
    finally:
        holder.stdin.close()
        holder.wait()
    # The holder is gone: its lock file is stale and taken over.
    (out / "run.lock").write_text(f"{holder.pid}\n")
    with run_folder.RunLock(out):
        assert (out / "run.lock").read_text() == f"{os.getpid()}\n"
    assert not os.path.exists(out / "run.lock")


def test_a_lock_of_a_killed_run_is_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = hold_lock(out)
    holder.kill()
    holder.wait()
    assert (out / "run.lock").exists()
    with run_folder.RunLock(out):
        pass
    assert os.listdir(out) == []
