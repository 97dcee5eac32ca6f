"""A run killed anywhere resumes to the run it would have been.

The child process is really killed with SIGKILL, at a point the test
chooses (no clock races): after a random training batch, between writing
an epoch's history row and its backup, or while the finished stage's
backup is being removed. The resumed run must end with the weights and the
history of an uninterrupted run with the same seed.
"""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import models  # noqa: F401  (registers the custom objects the checkpoints use)
from tests.cli_calls import call
from train import run

# One worker runs the module: its module-scoped runs are built once.
pytestmark = pytest.mark.xdist_group("test_resume")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, BATCHES_PER_EPOCH = 4, 2
# Eagerly: eight steps of a tiny model finish sooner without tracing a
# graph, and what resumes (weights, optimizer, history, backups) is the same.
FLAGS = [
    "--model", "convlstm", "--synthetic-clips", "8", "--input-shape", "4,16,16,1",
    "--filters", "2,3", "--batch-size", "4", "--epochs", str(EPOCHS), "--patience", "9",
    "--learning-rate", "8e-5", "--verbose", "0", "--run-eagerly",
]

# Runs train.run with one way of dying patched in; KILL_AT says where.
CHILD = textwrap.dedent(
    """
    import gc, os, shutil, signal, sys
    import keras
    import models
    from train import run
    from train.engine import callbacks
    from train.engine import trainer

    gc.freeze()  # as tests/conftest.py: collections skip the imported objects

    where, at = os.environ["KILL_AT"].split(":")
    at = int(at)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "batch":
        class Die(keras.callbacks.Callback):
            seen = 0
            def on_train_batch_end(self, batch, logs=None):
                Die.seen += 1
                if Die.seen == at:
                    die()
        fit = keras.Model.fit
        keras.Model.fit = lambda self, *a, callbacks=None, **k: fit(
            self, *a, callbacks=[*(callbacks or []), Die()], **k)
    elif where == "before_backup":
        backup = callbacks.BackupAndRestore.on_epoch_end
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == at:
                die()
            backup(self, epoch, logs)
        callbacks.BackupAndRestore.on_epoch_end = on_epoch_end
    elif where == "backup_cleanup":
        trainer.shutil = type("Shutil", (), {"rmtree": staticmethod(lambda *a, **k: die())})
    sys.exit(run.main(sys.argv[1:]))
    """
)


# Where each killed run dies: after a random training batch (an epoch's last
# batch included), between epoch 2's history row and its backup, and while
# the finished stage's backup folder is being removed.
KILLS = {
    "batch": f"batch:{random.randint(1, EPOCHS * BATCHES_PER_EPOCH - 1)}",
    "before_backup": "before_backup:2",
    "backup_cleanup": "backup_cleanup:0",
}


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """The killed runs, started together (each is mostly TensorFlow start-up)."""
    root = tmp_path_factory.mktemp("killed")
    children = {
        name: subprocess.Popen(
            [sys.executable, "-c", CHILD, *FLAGS, "--out", str(root / name)],
            cwd=ROOT, env={**os.environ, "KILL_AT": kill_at}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        for name, kill_at in KILLS.items()
    }
    for name, child in children.items():
        output, _ = child.communicate(timeout=600)
        assert child.returncode == -signal.SIGKILL, f"{KILLS[name]}: {output[-3000:]}"
        assert not os.path.exists(root / name / "metrics.json")
    return {name: str(root / name) for name in KILLS}


def weights(path):
    return keras.saving.load_model(path).get_weights()


def history(out):
    with open(os.path.join(out, "history.csv")) as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    out = str(tmp_path_factory.mktemp("runs") / "reference")
    assert run.main(FLAGS + ["--out", out]) == 0
    return out


def assert_same_run(out, reference, where):
    for name in ("last.keras", "best.keras"):
        for mine, theirs in zip(weights(os.path.join(out, name)),
                                weights(os.path.join(reference, name))):
            np.testing.assert_array_equal(mine, theirs, err_msg=f"{name} after a kill {where}")
    assert history(out) == history(reference), f"history after a kill {where}"
    mine = json.load(open(os.path.join(out, "metrics.json")))
    theirs = json.load(open(os.path.join(reference, "metrics.json")))
    for key in ("test_accuracy", "test_auc", "test_binary_crossentropy"):
        assert mine.get(key) == theirs.get(key), key


@pytest.mark.slow
def test_a_kill_after_any_batch_resumes_to_the_same_run(reference, killed, capsys):
    batch = int(KILLS["batch"].split(":")[1])
    out = killed["batch"]
    backed_up = 0
    state = os.path.join(out, "backup", "train", "state.json")
    if os.path.exists(state):
        backed_up = json.load(open(state))["train_seconds"]
        # Killed after a batch, before that epoch's end when it was its last.
        assert json.load(open(state))["epoch"] == (batch - 1) // BATCHES_PER_EPOCH
    code, stdout, err = call(run.main, FLAGS + ["--out", out], capsys)
    assert code == 0, err
    assert "(resuming)" in stdout
    assert_same_run(out, reference, f"after batch {batch}")
    # The whole run's training time, the killed session's finished epochs too.
    assert json.load(open(os.path.join(out, "metrics.json")))["train_seconds"] >= backed_up


@pytest.mark.slow
def test_a_kill_between_the_history_row_and_the_backup_keeps_each_row_once(
        reference, killed, capsys):
    out = killed["before_backup"]
    assert len(history(out)) == 2  # the second epoch's row is written, not backed up
    code, _, err = call(run.main, FLAGS + ["--out", out], capsys)
    assert code == 0, err
    assert [int(row["epoch"]) for row in history(out)] == list(range(EPOCHS))
    assert_same_run(out, reference, "before the backup of epoch 2")


@pytest.mark.slow
def test_a_kill_while_removing_the_finished_backup_does_not_train_again(
        reference, killed, capsys):
    out = killed["backup_cleanup"]
    assert os.path.exists(os.path.join(out, "stage_train.weights.h5"))
    code, stdout, err = call(run.main, FLAGS + ["--out", out], capsys)
    assert code == 0, err
    assert "stage train: already done" in stdout
    assert [int(row["epoch"]) for row in history(out)] == list(range(EPOCHS))
    assert_same_run(out, reference, "while removing the backup")


def test_a_non_finite_loss_stops_the_run_and_is_never_kept(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = call(run.main, FLAGS + ["--learning-rate", "inf", "--out", str(out)],
                        capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "training stopped in epoch 1: the loss became nan" in err
    assert "learning rate of inf may be too high" in err
    assert not (out / "best.keras").exists() and not (out / "last.keras").exists()
    assert not (out / "metrics.json").exists() and not (out / "backup").exists()


def test_resuming_on_data_with_other_classes_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    code, _, _ = call(run.main, FLAGS + ["--epochs", "1", "--out", str(out)], capsys)
    assert code == 0
    os.remove(out / "metrics.json")  # as if it had been killed before the end
    (out / "class_names.json").write_text(json.dumps(["vertical", "horizontal"]))
    code, _, err = call(run.main, FLAGS + ["--epochs", "1", "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "trained on classes ['vertical', 'horizontal']" in err
    assert "['horizontal', 'vertical']" in err
    assert json.load(open(out / "class_names.json")) == ["vertical", "horizontal"]
