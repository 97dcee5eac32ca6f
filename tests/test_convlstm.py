"""convlstm: the notes' hard sigmoid, regularizer and training metrics."""

import json
import zipfile

import keras
import numpy as np
import pytest

import models
from models.convlstm import tf2_hard_sigmoid
from train import engine

TINY = dict(models.presets("convlstm")["tiny"], filters=(2, 3))


def test_tf2_hard_sigmoid_is_clip_of_a_fifth_plus_a_half():
    x = np.array([-3.0, -2.5, -1.0, 0.0, 1.0, 2.0, 2.5, 3.0], "float32")
    expected = [0.0, 0.0, 0.3, 0.5, 0.7, 0.9, 1.0, 1.0]
    np.testing.assert_allclose(np.asarray(tf2_hard_sigmoid(x)), expected, atol=1e-7)
    # Keras 3's function of the same name has slope 1/6: 0.667 at x = 1.
    keras3 = np.asarray(keras.activations.hard_sigmoid(np.array([1.0], "float32")))
    assert keras3[0] == pytest.approx(1 / 6 + 0.5)


def test_tf2_hard_sigmoid_keeps_the_input_dtype():
    x = keras.ops.convert_to_tensor(np.array([1.0], "float16"))
    assert keras.backend.standardize_dtype(tf2_hard_sigmoid(x).dtype) == "float16"


def test_default_gates_use_the_notes_hard_sigmoid_and_keras3_stays_selectable():
    config = models.get_config("convlstm", **TINY)
    assert config.recurrent_activation == "tf2_hard_sigmoid"
    model = models.build_from_config("convlstm", config)
    for name in ("conv_lstm_1", "conv_lstm_2"):
        assert model.get_layer(name).cell.recurrent_activation is tf2_hard_sigmoid
    keras3 = models.build("convlstm", **TINY, recurrent_activation="hard_sigmoid")
    assert keras3.get_layer("conv_lstm_1").cell.recurrent_activation is (
        keras.activations.hard_sigmoid
    )
    # Same weights, other gate function: other outputs.
    keras3.set_weights(model.get_weights())
    clips = np.random.default_rng(0).uniform(0, 1, (2, *TINY["input_shape"])).astype("float32")
    assert not np.allclose(
        model.predict({"frames": clips}, verbose=0), keras3.predict({"frames": clips}, verbose=0)
    )
    with pytest.raises(ValueError, match="recurrent_activation must be tf2_hard_sigmoid or a Keras"):
        models.get_config("convlstm", recurrent_activation="no_such_function")


def test_keras_file_keeps_the_tf2_hard_sigmoid(tmp_path):
    keras.utils.set_random_seed(1)
    model = models.build("convlstm", **TINY)
    path = str(tmp_path / "convlstm.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        saved = json.loads(archive.read("config.json"))
    assert "video_suite>tf2_hard_sigmoid" in json.dumps(saved)
    reloaded = keras.saving.load_model(path)  # no custom_objects
    assert reloaded.get_layer("conv_lstm_2").cell.recurrent_activation is tf2_hard_sigmoid
    clips = np.random.default_rng(1).uniform(0, 1, (2, *TINY["input_shape"])).astype("float32")
    np.testing.assert_array_equal(
        model.predict({"frames": clips}, verbose=0),
        reloaded.predict({"frames": clips}, verbose=0),
    )


def test_regularizer_is_zero_by_default():
    config = models.get_config("convlstm")
    assert (config.l1, config.l2) == (0.0, 0.0)
    clips = np.ones((1, *TINY["input_shape"]), "float32")
    model = models.build("convlstm", **TINY)
    model({"frames": clips})
    assert float(sum(keras.ops.sum(loss) for loss in model.losses)) == 0.0
    regularized = models.build("convlstm", **TINY, l2=0.5)
    regularized({"frames": clips})
    assert float(sum(keras.ops.sum(loss) for loss in regularized.losses)) > 0.0


def test_training_keeps_the_lowest_validation_loss_and_reports_auc():
    config = models.get_config("convlstm", **TINY)
    spec = models.get_family("convlstm").training(config, steps_per_epoch=1)
    assert (spec.monitor, spec.monitor_mode) == ("val_loss", "min")
    assert [m.name for m in spec.metrics] == ["binary_crossentropy", "auc", "accuracy"]
    assert isinstance(spec.metrics[0], keras.metrics.BinaryCrossentropy)

    keras.utils.set_random_seed(2)
    model = models.build_from_config("convlstm", config)
    model.compile(optimizer=spec.optimizer, loss=spec.loss, metrics=list(spec.metrics))
    engine.build_optimizer(model)
    inputs, labels = models.get_family("convlstm").example_batch(config, 4, seed=2)
    history = model.fit(
        inputs, labels, validation_data=(inputs, labels), epochs=1, verbose=0
    ).history
    assert {"val_loss", "val_binary_crossentropy", "val_auc"} <= set(history)
    # No class weights and no regularizer: the metric is the loss itself.
    assert history["val_binary_crossentropy"][0] == pytest.approx(history["val_loss"][0], rel=1e-5)


def test_multi_class_convlstm_also_monitors_validation_loss():
    config = models.get_config("convlstm", **TINY, num_classes=3)
    spec = models.get_family("convlstm").training(config, steps_per_epoch=1)
    assert (spec.monitor, spec.monitor_mode) == ("val_loss", "min")
    assert [m.name for m in spec.metrics] == ["accuracy", "top5_accuracy"]


def test_r2plus1d_binary_keeps_its_accuracy_monitor():
    config = models.get_config("r2plus1d", input_shape=(4, 16, 16, 3), cnn_blocks=1, num_classes=1)
    spec = models.get_family("r2plus1d").training(config, steps_per_epoch=1)
    assert (spec.monitor, spec.monitor_mode) == ("val_accuracy", "max")
    assert [m.name for m in spec.metrics] == ["auc", "accuracy"]
