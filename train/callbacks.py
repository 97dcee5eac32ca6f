"""Callbacks and file helpers of the training loop."""

import json
import math
import os
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


def save_model_atomic(model, path):
    """Saves a `.keras` file under a temporary name, then renames it."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".tmp-{os.path.basename(path)}")
    model.save(temporary)
    os.replace(temporary, path)


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
