"""Callbacks of the training engine: checkpoints, early stopping that can be
resumed, the crash-safe backup, and the guard against a non-finite loss."""

import csv
import math
import os
import shutil

import keras
import numpy as np

from common.files import atomic_path, read_json, write_json
from data.video import check_decoding, forget_decoding_errors
from models.introspection import nested_layers


def save_model_atomic(model, path):
    """Saves a `.keras` or `.weights.h5` file through `atomic_path`."""
    with atomic_path(path) as temporary:
        if path.endswith(".weights.h5"):
            model.save_weights(temporary)
        else:
            model.save(temporary)


def finite_loss(logs):
    """Whether an epoch's training loss is a finite number."""
    value = (logs or {}).get("loss")
    return value is not None and math.isfinite(float(value))


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    `stopped_at` is then `(epoch, loss)`; the engine turns it into an error
    naming the epoch, and no checkpoint or backup keeps that epoch's
    weights (`RunCheckpoint` and `BackupAndRestore` skip a non-finite
    epoch).
    """

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.stopped_at = (self.epoch, float(loss))
            self.model.stop_training = True


class RaiseDataErrors(keras.callbacks.Callback):
    """Raises, as soon as a batch is done, the error of a video that a
    `--on-error fail` stream could not decode (`data.video.check_decoding`),
    so training stops with the video's own one-line message."""

    def on_train_begin(self, logs=None):
        forget_decoding_errors()

    def _check(self, *args, **kwargs):
        check_decoding()

    on_train_batch_end = on_test_batch_end = on_epoch_end = _check


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose progress a resumed run restores:
    `state()` is what `BackupAndRestore` saves, `restore(state)` sets it
    back after `on_train_begin` has reset it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._restored = None

    def state(self):
        return {
            "wait": int(self.wait),
            "best": None if self.best is None else float(self.best),
            "best_epoch": int(self.best_epoch),
        }, self.best_weights

    def restore(self, state, best_weights):
        self._restored = (state, best_weights)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored is not None:
            state, best_weights = self._restored
            self.wait, self.best_epoch = state["wait"], state["best_epoch"]
            if state["best"] is not None:
                self.best = state["best"]
            self.best_weights = best_weights
            self._restored = None


def seed_generators(model):
    """`{name: keras.random.SeedGenerator}` of every layer of `model`.

    Dropout draws its masks from a seed generator whose counter advances
    every step. `save_weights` does not keep it, so a resumed run would
    draw other masks than an uninterrupted one; the backup keeps them.
    """
    found = {}
    for index, layer in enumerate([model, *nested_layers(model)]):
        for attribute, value in vars(layer).items():
            if isinstance(value, keras.random.SeedGenerator):
                found[f"{index}:{type(layer).__name__}/{attribute}"] = value
    return found


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up the training state every epoch; `restore` resumes from it.

    The state is everything an uninterrupted run would carry into the next
    epoch: the weights and optimizer state, the dropout seed generators,
    early stopping's progress (with its best weights) and the seconds
    trained so far. `keras.callbacks.BackupAndRestore` overwrites one
    weights file in place, so a process killed while writing it leaves a
    truncated file that the next run cannot open. Here each epoch's files
    go to new names; only then is `state.json`, which names them and the
    next epoch, replaced atomically, and the older files removed. Whenever
    the process dies, `state.json` names complete files. The engine puts
    this callback after the checkpoint and history callbacks, so an epoch
    is backed up only once they have it, and removes the folder once the
    stage it backs up is safely finished.

    Args:
        directory: the backup folder, created on the first save.
        early_stopping: the stage's `ResumableEarlyStopping`, or None.
        clock: `() -> seconds trained so far in the whole run`, saved with
            each epoch.
    """

    def __init__(self, directory, early_stopping=None, clock=None):
        super().__init__()
        self.directory = directory
        self.state_path = os.path.join(directory, "state.json")
        self.early_stopping = early_stopping
        self.clock = clock

    def restore(self, model):
        """Loads the last backup into the compiled `model`; returns the
        state (`epoch` to continue from, `train_seconds`), or None when
        there is no backup."""
        if not os.path.exists(self.state_path):
            return None
        state = read_json(self.state_path, "backup state")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.directory, state["weights"]))
        arrays = np.load(os.path.join(self.directory, state["arrays"]))
        for name, generator in seed_generators(model).items():
            if f"seed/{name}" in arrays:
                generator.state.assign(arrays[f"seed/{name}"])
        if self.early_stopping is not None and state.get("early_stopping"):
            count = state["early_stopping"]["best_weight_count"]
            best = [arrays[f"best/{i}"] for i in range(count)] if count else None
            self.early_stopping.restore(state["early_stopping"], best)
        return state

    def on_epoch_end(self, epoch, logs=None):
        if not finite_loss(logs):
            return
        os.makedirs(self.directory, exist_ok=True)
        stem = f"epoch-{epoch + 1:04d}"
        self.model.save_weights(os.path.join(self.directory, f"{stem}.weights.h5"))
        arrays = {
            f"seed/{name}": np.asarray(generator.state.value)
            for name, generator in seed_generators(self.model).items()
        }
        state = {
            "epoch": epoch + 1,
            "weights": f"{stem}.weights.h5",
            "arrays": f"{stem}.npz",
            "train_seconds": self.clock() if self.clock else None,
        }
        if self.early_stopping is not None:
            early, best_weights = self.early_stopping.state()
            for i, weight in enumerate(best_weights or []):
                arrays[f"best/{i}"] = np.asarray(weight)
            state["early_stopping"] = {**early, "best_weight_count": len(best_weights or [])}
        np.savez(os.path.join(self.directory, f"{stem}.npz"), **arrays)
        write_json(self.state_path, state)
        for other in os.listdir(self.directory):
            if other.startswith("epoch-") and not other.startswith(stem):
                os.remove(os.path.join(self.directory, other))


class RunCheckpoint(keras.callbacks.Callback):
    """Keeps `last.keras` (every epoch) and `best.keras` (best `monitor`).

    Both files are written atomically. The best value so far lives in
    `checkpoint.json` beside them, so a resumed run keeps comparing against
    it instead of overwriting a better checkpoint. An epoch whose training
    loss is not finite is never saved.

    Args:
        directory: the run folder.
        monitor: the logs key to compare, e.g. `"val_loss"`.
        mode: `"max"` or `"min"`.
    """

    def __init__(self, directory, monitor, mode):
        super().__init__()
        self.directory = directory
        self.monitor = monitor
        self.mode = mode
        self.state_path = os.path.join(directory, "checkpoint.json")
        self.state = {"best": None, "best_epoch": None}
        if os.path.exists(self.state_path):
            self.state = read_json(self.state_path, "checkpoint state")

    def improved(self, value):
        best = self.state["best"]
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not finite_loss(logs):
            return
        last = os.path.join(self.directory, "last.keras")
        save_model_atomic(self.model, last)
        value = logs.get(self.monitor)
        if value is None or math.isnan(value):
            return
        if self.improved(value):
            # The same model at the same moment: a copy of the file, not a
            # second serialization (seconds per epoch for a large model).
            with atomic_path(os.path.join(self.directory, "best.keras")) as temporary:
                shutil.copyfile(last, temporary)
            self.state = {"best": float(value), "best_epoch": epoch + 1, "monitor": self.monitor}
            write_json(self.state_path, self.state)


def truncate_history(path, epoch):
    """Keeps the rows of `history.csv` before `epoch`: a run resumed at
    `epoch` writes that epoch's row again, and a row written after the last
    backup (killed before the backup had it) must not stay twice."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    column = header.index("epoch") if "epoch" in header else 0
    kept = [row for row in body if row and int(float(row[column])) < epoch]
    if len(kept) == len(body):
        return
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as file:
        csv.writer(file).writerows([header, *kept])
