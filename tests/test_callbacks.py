import json
import os

import keras
import numpy as np
import pytest

from common import files
from train.engine import callbacks as callbacks_lib


class Crash(Exception):
    pass


class CrashAfter(keras.callbacks.Callback):
    """Stands in for a process killed after `epochs` epochs."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise Crash()


class Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def tiny_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    return model


DATA = (np.arange(24, dtype="float32").reshape(8, 3) / 24, np.ones((8, 1), "float32"))


def test_a_truncated_newer_file_does_not_stop_the_resume(tmp_path):
    directory = str(tmp_path / "backup")
    model = tiny_model(0)
    # Crash after the callback has written epoch 2 but before epoch 2 is
    # trained, so the weights at the crash are exactly the backed-up ones.
    backup = callbacks_lib.BackupAndRestore(directory)
    with pytest.raises(Crash):
        model.fit(*DATA, epochs=5, verbose=0, callbacks=[backup, CrashAfter(2)])
    saved = [w.copy() for w in model.get_weights()]
    assert json.load(open(os.path.join(directory, "state.json"))) == {
        "epoch": 2, "weights": "epoch-0002.weights.h5", "arrays": "epoch-0002.npz",
        "train_seconds": None}
    assert sorted(os.listdir(directory)) == [
        "epoch-0002.npz", "epoch-0002.weights.h5", "state.json"]
    # What a kill while writing the next epoch leaves behind.
    with open(os.path.join(directory, "epoch-0003.weights.h5"), "wb") as file:
        file.write(b"\x89HDF\r\n\x1a\n" + bytes(88))

    resumed = tiny_model(1)
    backup = callbacks_lib.BackupAndRestore(directory)
    start = backup.restore(resumed)["epoch"]
    assert start == 2
    for before, after in zip(saved, resumed.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert int(resumed.optimizer.iterations) == 2  # Adam's state came back too
    epochs = Epochs()
    resumed.fit(*DATA, initial_epoch=start, epochs=5, verbose=0, callbacks=[backup, epochs])
    assert epochs.seen == [2, 3, 4]
    assert json.load(open(os.path.join(directory, "state.json")))["epoch"] == 5


def test_no_backup_restores_nothing(tmp_path):
    model = tiny_model(0)
    before = [w.copy() for w in model.get_weights()]
    assert callbacks_lib.BackupAndRestore(str(tmp_path / "none")).restore(model) is None
    for expected, actual in zip(before, model.get_weights()):
        np.testing.assert_array_equal(expected, actual)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "best.keras"
    path.write_bytes(b"the earlier model")
    with pytest.raises(Crash):
        with files.atomic_path(str(path)) as temporary:
            name = os.path.basename(temporary)
            assert name.startswith(".tmp-") and name.endswith("-best.keras")
            open(temporary, "wb").write(b"half a mod")
            raise Crash()
    assert path.read_bytes() == b"the earlier model"
    assert os.listdir(tmp_path) == ["best.keras"]


def test_weights_and_figures_land_complete_under_their_names(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = tiny_model(0)
    callbacks_lib.save_model_atomic(model, str(tmp_path / "done.weights.h5"))
    other = tiny_model(1)
    other.load_weights(str(tmp_path / "done.weights.h5"))
    for mine, theirs in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    figure = plt.figure()
    files.save_figure(figure, str(tmp_path / "plot.png"))
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(figure.number)
    assert sorted(os.listdir(tmp_path)) == ["done.weights.h5", "plot.png"]


def test_the_backup_keeps_dropout_seeds_and_early_stopping_progress(tmp_path):
    directory = str(tmp_path / "backup")

    def dropout_model(seed):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dropout(0.5)(inputs)))
        model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
        return model

    model = dropout_model(0)
    early = callbacks_lib.ResumableEarlyStopping(monitor="loss", patience=5,
                                                 restore_best_weights=True)
    backup = callbacks_lib.BackupAndRestore(directory, early_stopping=early, clock=lambda: 12.5)
    model.fit(*DATA, epochs=3, verbose=0, callbacks=[early, backup])
    (generator,) = callbacks_lib.seed_generators(model).values()
    counter = np.asarray(generator.state.value).copy()
    assert counter[1] > 0  # dropout drew masks

    resumed = dropout_model(0)
    restored_early = callbacks_lib.ResumableEarlyStopping(monitor="loss", patience=5,
                                                          restore_best_weights=True)
    state = callbacks_lib.BackupAndRestore(directory, early_stopping=restored_early).restore(resumed)
    assert state["epoch"] == 3 and state["train_seconds"] == 12.5
    (restored,) = callbacks_lib.seed_generators(resumed).values()
    np.testing.assert_array_equal(np.asarray(restored.state.value), counter)
    restored_early.set_model(resumed)
    restored_early.on_train_begin()
    assert restored_early.best == early.best and restored_early.wait == early.wait
    for mine, theirs in zip(restored_early.best_weights, early.best_weights):
        np.testing.assert_array_equal(mine, theirs)


def test_history_rows_from_the_resumed_epoch_on_are_dropped(tmp_path):
    path = tmp_path / "history.csv"
    path.write_bytes(b"epoch,loss\r\n0,1.0\r\n1,0.5\r\n2,0.4\r\n")
    callbacks_lib.truncate_history(str(path), 2)
    assert path.read_bytes() == b"epoch,loss\r\n0,1.0\r\n1,0.5\r\n"
    callbacks_lib.truncate_history(str(path), 5)
    assert path.read_bytes() == b"epoch,loss\r\n0,1.0\r\n1,0.5\r\n"
