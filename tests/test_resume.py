"""A run killed anywhere resumes to the run it would have been.

The child process is really killed with SIGKILL, at points the test fixes
(no clock races, and every run of the suite checks the same points): early
(after the first training batch, before anything is backed up), in the
middle (after the first batch of the second epoch, the first one backed
up), at the backup (between an epoch's history row and its backup), and
during clean-up (while the finished stage's backup is being removed). Each
resumed run must end with the weights and the history of the one
uninterrupted run with the same seed, which all cases share.
"""

import csv
import json
import os
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
EPOCHS, BATCHES_PER_EPOCH = 3, 2
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


# Where each killed run dies (6 batches: 2 per epoch).
KILLS = {
    "early": "batch:1",                # the first batch: no epoch backed up yet
    "middle": "batch:3",               # the second epoch's first batch: epoch 1 backed up
    "at_backup": "before_backup:2",    # epoch 2's history row written, not its backup
    "cleanup": "backup_cleanup:0",     # the finished stage's backup being removed
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
    """The rows of a run's history.csv ([] before it is written)."""
    path = os.path.join(out, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return list(csv.DictReader(file))


def backup_state(out):
    """The training backup's state.json, None when nothing is backed up."""
    path = os.path.join(out, "backup", "train", "state.json")
    return json.load(open(path)) if os.path.exists(path) else None


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


# What each killed run left, checked before it resumes: the case tests the
# state it is meant to.
LEFT_BEHIND = {
    "early": lambda out: backup_state(out) is None and history(out) == [],
    "middle": lambda out: backup_state(out)["epoch"] == 1 and len(history(out)) == 1,
    # The second epoch's row is written, its backup is not.
    "at_backup": lambda out: backup_state(out)["epoch"] == 1 and len(history(out)) == 2,
    "cleanup": lambda out: os.path.exists(os.path.join(out, "stage_train.weights.h5"))
    and len(history(out)) == EPOCHS,
}


@pytest.mark.slow
@pytest.mark.parametrize("where", list(KILLS))
def test_a_killed_run_resumes_to_the_uninterrupted_run(where, reference, killed, capsys):
    out = killed[where]
    assert LEFT_BEHIND[where](out), f"a kill at {KILLS[where]} left {os.listdir(out)}"
    state = backup_state(out)
    code, stdout, err = call(run.main, FLAGS + ["--out", out], capsys)
    assert code == 0, err
    assert "(resuming)" in stdout
    assert ("stage train: already done" in stdout) == (where == "cleanup")
    # Each epoch's row once, also the one written before the kill.
    assert [int(row["epoch"]) for row in history(out)] == list(range(EPOCHS))
    assert_same_run(out, reference, f"at {KILLS[where]}")
    if state is not None:
        # The whole run's training time, the killed process's epochs too.
        train_seconds = json.load(open(os.path.join(out, "metrics.json")))["train_seconds"]
        assert train_seconds >= state["train_seconds"]


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
