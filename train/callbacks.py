"""Callbacks and file helpers of the training loop."""

import math
import os

import keras

from common.files import atomic_path, read_json, write_json


def save_model_atomic(model, path):
    """Saves a `.keras` or `.weights.h5` file through `atomic_path`."""
    with atomic_path(path) as temporary:
        if path.endswith(".weights.h5"):
            model.save_weights(temporary)
        else:
            model.save(temporary)


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up the training state every epoch; `restore` resumes from it.

    `keras.callbacks.BackupAndRestore` overwrites one weights file in place,
    so a process killed while writing it leaves a truncated file that the
    next run cannot open. Here each epoch's weights (model and optimizer) go
    to a new file `epoch-NNNN.weights.h5`; only then is `state.json`, which
    names that file and the next epoch, replaced atomically, and the older
    weights file removed. Whenever the process dies, `state.json` names a
    complete file. The caller removes the folder once the training it backs
    up is safely finished (`train.engine.fit`).

    Args:
        directory: the backup folder, created on the first save.
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = directory
        self.state_path = os.path.join(directory, "state.json")

    def restore(self, model):
        """Loads the last backup into the compiled `model` (weights and
        optimizer state); returns the epoch to continue from, or None when
        there is no backup."""
        if not os.path.exists(self.state_path):
            return None
        state = read_json(self.state_path, "backup state")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.directory, state["weights"]))
        return state["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        self.model.save_weights(os.path.join(self.directory, name))
        write_json(self.state_path, {"epoch": epoch + 1, "weights": name})
        for other in os.listdir(self.directory):
            if other.endswith(".weights.h5") and other != name:
                os.remove(os.path.join(self.directory, other))


class RunCheckpoint(keras.callbacks.Callback):
    """Keeps `last.keras` (every epoch) and `best.keras` (best `monitor`).

    Both files are written atomically. The best value so far lives in
    `checkpoint.json` beside them, so a resumed run keeps comparing against
    it instead of overwriting a better checkpoint.

    Args:
        directory: the run folder.
        monitor: the logs key to compare, e.g. `"val_auc"`.
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
        save_model_atomic(self.model, os.path.join(self.directory, "last.keras"))
        value = logs.get(self.monitor)
        if value is None or math.isnan(value):
            return
        if self.improved(value):
            save_model_atomic(self.model, os.path.join(self.directory, "best.keras"))
            self.state = {"best": float(value), "best_epoch": epoch + 1, "monitor": self.monitor}
            write_json(self.state_path, self.state)
