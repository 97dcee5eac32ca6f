"""Callbacks and file helpers of the training loop."""

import contextlib
import json
import math
import os
import shutil
import tempfile

import keras


def write_atomic(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_json(path, value):
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


@contextlib.contextmanager
def atomic_path(path):
    """Yields `.tmp-<name>` beside `path` to write to; renames it to `path`
    when the block succeeds and removes it when the block fails, so a crash
    never leaves a truncated file at `path`. The temporary name keeps the
    extension, which Keras and matplotlib read to choose the format."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".tmp-{os.path.basename(path)}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def save_model_atomic(model, path):
    """Saves a `.keras` or `.weights.h5` file through `atomic_path`."""
    with atomic_path(path) as temporary:
        if path.endswith(".weights.h5"):
            model.save_weights(temporary)
        else:
            model.save(temporary)


def save_figure(figure, path):
    """Writes a matplotlib figure as PNG through `atomic_path` and closes it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        try:
            figure.savefig(temporary, format="png", dpi=100)
        finally:
            plt.close(figure)


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up the training state every epoch; a re-run resumes from it.

    `keras.callbacks.BackupAndRestore` overwrites one weights file in place,
    so a process killed while writing it leaves a truncated file that the
    next run cannot open. Here each epoch's weights (model and optimizer) go
    to a new file `epoch-NNNN.weights.h5`; only then is `state.json`, which
    names that file and the next epoch, replaced atomically, and the older
    weights file removed. Whenever the process dies, `state.json` names a
    complete file. The folder is removed when training ends.

    Args:
        directory: the backup folder, created on the first save.
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = directory
        self.state_path = os.path.join(directory, "state.json")

    def on_train_begin(self, logs=None):
        epoch = None
        if os.path.exists(self.state_path):
            with open(self.state_path) as file:
                state = json.load(file)
            optimizer = self.model.optimizer
            if optimizer is not None and not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            self.model.load_weights(os.path.join(self.directory, state["weights"]))
            epoch = state["epoch"]
        # `fit` starts at this epoch; set it every time so that a later
        # `fit` on the same model does not inherit an earlier resume.
        self.model._initial_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        self.model.save_weights(os.path.join(self.directory, name))
        write_json(self.state_path, {"epoch": epoch + 1, "weights": name})
        for other in os.listdir(self.directory):
            if other.endswith(".weights.h5") and other != name:
                os.remove(os.path.join(self.directory, other))

    def on_train_end(self, logs=None):
        shutil.rmtree(self.directory, ignore_errors=True)


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
            with open(self.state_path) as file:
                self.state = json.load(file)

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
