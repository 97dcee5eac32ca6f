"""What a command prints: its own lines only."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def without_log_level():
    return {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


def test_a_command_prints_no_tensorflow_start_up_lines(tmp_path):
    """At TF_CPP_MIN_LOG_LEVEL=3, a common habit, as without it: that
    variable does not filter the import's lines, so it must not turn the
    hiding off."""
    environment = {**without_log_level(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "train.evaluate", "--runs", str(tmp_path / "missing")],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    # TensorFlow was imported (the command needs it for its flags), and
    # only the command's own line reached stderr.
    assert done.stderr.splitlines() == [
        f"error: {tmp_path / 'missing'}: no config.json; is it a run folder?"]


def test_the_first_op_logs_nothing_either():
    """Running an op looks for devices, and CUDA logs a failed cuInit on a
    machine without a GPU."""
    script = ("import sys\n"
              "from common.native_logs import hide_tensorflow_start\n"
              "hide_tensorflow_start([])\n"
              "import tensorflow as tf\n"
              "tf.config.list_physical_devices('GPU')\n"
              "print(float(tf.constant(2.0) * 3.0), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                          env=without_log_level(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["6.0"]


def test_help_shows_the_values_the_embedded_data_uses_and_every_preset():
    from train import run

    text = " ".join(run.build_parser("convlstm").format_help().split())
    assert "(default: 30,120,160,4; on the embedded data, preset demo: 16,48,64,4)" in text
    assert "presets of convlstm (--preset NAME): tiny: input_shape=4,12,12,2 filters=3,4" in text
    help_lines = run.build_parser("convlstm").format_help().splitlines()
    assert "  demo: input_shape=16,48,64,4 epochs=4 learning_rate=0.001" in help_lines


def test_a_switch_shows_no_default_and_a_value_flag_does():
    from common.cli import ArgumentParser

    parser = ArgumentParser(prog="demo")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")
    parser.add_argument("--fast", action="store_true", help="go fast")
    parser.add_argument("--jobs", type=int, default=2, help="workers")
    text = parser.format_help()
    assert "(default: True)" not in text and "(default: False)" not in text
    assert "workers (default: 2)" in text
