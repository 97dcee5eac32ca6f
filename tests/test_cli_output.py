"""What a command prints: its own lines only."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_command_prints_no_tensorflow_start_up_lines(tmp_path):
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "train.evaluate", "--runs", str(tmp_path / "missing")],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    # TensorFlow was imported (the command needs it for its flags), and
    # only the command's own line reached stderr.
    assert done.stderr.splitlines() == [
        f"error: {tmp_path / 'missing'}: no config.json; is it a run folder?"]
