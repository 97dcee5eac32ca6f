"""The shared contract test, parametrized over every registered model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from train.export import export_saved_model
from tests.model_contract import assert_outputs_close, masked_garbage, tiny_cases

CASES = tiny_cases()


@pytest.fixture(params=CASES, ids=[f"{name}-{preset}" for name, preset in CASES])
def tiny(request):
    name, preset = request.param
    assert preset is not None, f"model {name!r} has no 'tiny' preset for the contract test"
    keras.utils.set_random_seed(0)
    config = models.get_config(name, preset=preset)
    model = models.build_from_config(name, config)
    family = models.get_family(name)
    inputs, targets = family.example_batch(config, 2, seed=0)
    return name, config, model, inputs, targets


def test_inputs_and_outputs_are_named(tiny):
    name, config, model, inputs, _ = tiny
    assert sorted(model.input) == sorted(inputs)
    outputs = model(inputs, training=False)
    expected_batch = next(iter(inputs.values())).shape[0]
    flat = outputs.values() if isinstance(outputs, dict) else [outputs]
    for value in flat:
        assert value.shape[0] == expected_batch
        assert np.all(np.isfinite(np.asarray(value)))
    assert all(n for n in model.output_names)


def test_one_step_lowers_the_loss(tiny):
    name, config, model, inputs, targets = tiny
    spec = models.get_family(name).training(config, steps_per_epoch=1)
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    model.compile(optimizer=optimizer, loss=spec.loss)
    before = model.evaluate(inputs, targets, verbose=0, return_dict=True)["loss"]
    for _ in range(3):
        model.train_on_batch(inputs, targets)
    after = model.evaluate(inputs, targets, verbose=0, return_dict=True)["loss"]
    assert after < before, f"{name}: loss {before:.5f} -> {after:.5f}"


def test_keras_file_round_trip(tiny, tmp_path):
    name, _, model, inputs, _ = tiny
    expected = model(inputs, training=False)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert_outputs_close(expected, reloaded(inputs, training=False), atol=0)


def test_saved_model_matches_keras(tiny, tmp_path):
    name, _, model, inputs, _ = tiny
    expected = model(inputs, training=False)
    path = str(tmp_path / "export")
    export_saved_model(model, name, path)
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    assert sorted(serve.structured_input_signature[1]) == sorted(inputs)
    served = serve(**{key: tf.constant(value) for key, value in inputs.items()})
    named = models.get_family(name).name_outputs(model, expected)
    assert_outputs_close(named, served, atol=1e-5)


def test_padded_steps_change_nothing(tiny):
    name, _, model, inputs, _ = tiny
    changed = masked_garbage(inputs)
    if changed is None:
        pytest.skip(f"{name} takes no mask")
    mask = np.asarray(inputs["mask"])
    assert not mask.all(), "the example batch must contain padding"
    before = model(inputs, training=False)
    after = model(changed, training=False)
    assert_outputs_close(real_steps(before, mask), real_steps(after, mask), atol=1e-5)


def real_steps(outputs, mask):
    """Zeroes per-step outputs at padded steps; other outputs pass through."""
    def keep(value):
        value = np.asarray(value)
        if value.shape[:2] == mask.shape:
            return np.where(mask.reshape(mask.shape + (1,) * (value.ndim - 2)), value, 0)
        return value
    if isinstance(outputs, dict):
        return {key: keep(value) for key, value in outputs.items()}
    return keep(outputs)
