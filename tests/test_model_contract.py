"""The shared contract test, parametrized over every registered model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from train import formats
from train.formats import export_saved_model, matrix
from train.formats.saved_model import write_source
from tests.model_contract import (
    assert_outputs_close, check_export_contract, masked_garbage, tiny_cases,
)
from train import engine

CASES = tiny_cases()


# One worker takes all tests of a case, so `built` builds each model once.
CASE_PARAMS = [
    pytest.param((name, preset), id=f"{name}-{preset}",
                 marks=pytest.mark.xdist_group(f"contract-{name}-{preset}"))
    for name, preset in CASES
]
_BUILT = {}


def build_case(name, preset):
    assert preset is not None, f"model {name!r} has no 'tiny' preset for the contract test"
    keras.utils.set_random_seed(0)
    config = models.get_config(name, preset=preset)
    model = models.build_from_config(name, config)
    family = models.get_family(name)
    inputs, targets = family.example_batch(config, 2, seed=0)
    return name, config, model, inputs, targets


@pytest.fixture(params=CASE_PARAMS)
def built(request):
    """The case's one build, shared by its tests. The training test changes
    its weights; the others compare the model with itself (reloaded,
    served, given other padding), which holds for any weights."""
    if request.param not in _BUILT:
        _BUILT[request.param] = build_case(*request.param)
    return _BUILT[request.param]


def test_inputs_and_outputs_are_named(built):
    name, config, model, inputs, _ = built
    assert sorted(model.input) == sorted(inputs)
    outputs = model(inputs, training=False)
    expected_batch = next(iter(inputs.values())).shape[0]
    flat = outputs.values() if isinstance(outputs, dict) else [outputs]
    for value in flat:
        assert value.shape[0] == expected_batch
        assert np.all(np.isfinite(np.asarray(value)))
    assert all(n for n in model.output_names)


def test_one_step_lowers_the_loss(built):
    name, config, model, inputs, targets = built
    spec = models.get_family(name).training(config, steps_per_epoch=1)
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    model.compile(optimizer=optimizer, loss=spec.loss)
    engine.build_optimizer(model)

    def loss():  # called eagerly: only the train step is traced
        return float(spec.loss(targets, model(inputs, training=False)))

    before = loss()
    for _ in range(3):
        model.train_on_batch(inputs, targets)
    after = loss()
    assert after < before, f"{name}: loss {before:.5f} -> {after:.5f}"


def test_keras_file_round_trip(built, tmp_path):
    name, _, model, inputs, _ = built
    expected = model(inputs, training=False)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert_outputs_close(expected, reloaded(inputs, training=False), atol=0)


def test_saved_model_matches_keras(built, tmp_path):
    name, _, model, inputs, _ = built
    expected = model(inputs, training=False)
    path = str(tmp_path / "export")
    export_saved_model(model, name, path)
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    assert sorted(serve.structured_input_signature[1]) == sorted(inputs)
    served = serve(**{key: tf.constant(value) for key, value in inputs.items()})
    named = models.get_family(name).name_outputs(model, expected)
    assert_outputs_close(named, served, atol=1e-5)


def test_padded_steps_change_nothing(built):
    name, _, model, inputs, _ = built
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


# Every model through every format besides the SavedModel (checked above at
# every tiny preset), at its "tiny" preset trained on a learnable task
# (`train.formats.matrix.trained_tiny`): the int8 gates compare decisions and
# rankings, which an untrained model does not have.
EXPORT_CASES = [
    (name, format_name)
    for name in models.NAMES for format_name in formats.names()
    if format_name != "saved_model"
]


@pytest.fixture(scope="module")
def trained_exportable(tmp_path_factory):
    """name -> (model, config, fit, sources): one trained tiny model per
    name, and the SavedModels its formats convert from, by batch size."""
    cache = {}

    def get(name):
        if name not in cache:
            model, config, fit = matrix.trained_tiny(name)
            cache[name] = (model, config, fit, {})
        return cache[name]

    get.folder = tmp_path_factory.mktemp("export_sources")
    return get


def source_for(trained, name, format_name):
    model, _, _, sources = trained(name)
    batch_size = formats.signature_batch_size(format_name, model)
    if batch_size not in sources:
        path = str(trained.folder / f"{name}-batch-{batch_size}")
        sources[batch_size] = write_source(model, name, path, batch_size)
    return sources[batch_size]


@pytest.mark.slow
@pytest.mark.parametrize("name, format_name", [
    # One worker takes a model's formats: its trained model is built once.
    pytest.param(name, format_name, id=f"{name}-{format_name}",
                 marks=pytest.mark.xdist_group(f"export-{name}"))
    for name, format_name in EXPORT_CASES
])
def test_export_passes_its_gate(name, format_name, trained_exportable, tmp_path):
    if format_name in models.get_family(name).export_refusals:
        with pytest.raises(ValueError, match=f"{name} does not export to {format_name}: "):
            formats.check_format(format_name, name)
        return
    model, config, fit, _ = trained_exportable(name)
    check_export_contract(model, name, config, fit, format_name, str(tmp_path),
                          source=source_for(trained_exportable, name, format_name))
