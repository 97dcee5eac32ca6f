"""The export formats' pieces that need no converter: the LiteRT rewrite of a
model, the signature batch rule and the gates' arithmetic."""

import keras
import numpy as np
import pytest

import models
from train import formats, tasks
from train.formats import matrix
from train.formats.rewrite import inference_copy


def verify(format_name, model, name, runner, batches):
    """The gate of `format_name` for the model's task, as `train.export` runs it."""
    return formats.verify(formats.get_format(format_name), model, name, runner, batches,
                          tasks.task_for(name).export_gate())


class Shifted(formats.Runner):
    """A fake export: Keras' outputs changed by `change(name, value, inputs)`."""

    def __init__(self, model, name, change):
        self.model, self.name, self.change = model, name, change

    def run(self, inputs):
        outputs = models.get_family(self.name).name_outputs(self.model, self.model(inputs))
        return {key: self.change(key, np.asarray(value), inputs) for key, value in outputs.items()}


def tiny(name, **overrides):
    keras.utils.set_random_seed(0)
    config = models.get_config(name, preset="tiny", **overrides)
    return models.build_from_config(name, config), config


def test_inference_copy_rewrites_the_convlstm_and_keeps_its_outputs():
    model, config = tiny("convlstm")
    copy, rewrites = inference_copy(model)
    layers = {layer.name: layer for layer in copy.layers}
    assert isinstance(layers["frame_max_pool_1"], keras.layers.TimeDistributed)
    assert isinstance(layers["frame_max_pool_1"].layer, keras.layers.MaxPool2D)
    for name in ("conv_lstm_1", "conv_lstm_2"):
        assert layers[name].dropout == 0.0 and layers[name].unroll
    assert model.get_layer("conv_lstm_1").dropout == 0.2  # the original is untouched
    assert len(rewrites) == 3
    inputs, _ = models.get_family("convlstm").example_batch(config, 2, seed=0)
    np.testing.assert_allclose(copy(inputs), model(inputs), atol=1e-6, rtol=0)


def test_models_without_rnns_or_3d_pools_are_not_copied():
    model, _ = tiny("r2plus1d")
    assert inference_copy(model) == (model, [])


@pytest.mark.parametrize("name, format_name, batch_size", [
    ("bilstm_attention", "litert", 1),        # an LSTM over an open number of steps
    ("bilstm_attention", "onnx", None),
    ("convlstm", "litert-int8", None),        # fixed steps: unrolled, batch open
    ("keyframe_transformer", "litert", None),  # no RNN
])
def test_signature_batch_size(name, format_name, batch_size):
    model, _ = tiny(name)
    assert formats.signature_batch_size(format_name, model) == batch_size


def test_float_gate_is_the_largest_difference_of_the_probabilities():
    model, config = tiny("bilstm_attention")
    batches = [models.get_family("bilstm_attention").example_batch(config, 4, seed)[0]
               for seed in (1, 2)]

    def shifted_by(delta):
        runner = Shifted(model, "bilstm_attention",
                         lambda key, value, _: value + (delta if key == "probabilities" else 1.0))
        return verify("onnx", model, "bilstm_attention", runner, batches)

    report = shifted_by(5e-5)
    assert report["examples"] == 8
    assert report["max_abs_diff"]["probabilities"] == pytest.approx(5e-5, rel=1e-3)
    assert report["max_abs_diff"]["logits"] == pytest.approx(1.0)  # reported, not gated
    assert report["gate"]["passed"]
    assert not shifted_by(2e-4)["gate"]["passed"]


def test_int8_classifier_gate_counts_changed_decisions():
    model, config = tiny("r2plus1d")
    batch = models.get_family("r2plus1d").example_batch(config, 4, seed=1)[0]

    def flip_first(key, value, inputs):
        value = value.copy()
        value[0] = value[0][::-1]  # another top-1 class for the first clip
        return value

    runner = Shifted(model, "r2plus1d", flip_first)
    report = verify("litert-int8", model, "r2plus1d", runner, [batch])
    assert report["gate"]["metric"] == "top1_agreement"
    assert report["gate"]["value"] == 0.75 and not report["gate"]["passed"]
    probabilities = np.sort(np.asarray(model(batch))[0])
    assert report["flipped_examples_float_margins"] == [
        pytest.approx(probabilities[-1] - probabilities[-2])]


def test_int8_score_gate_ranks_each_videos_real_frames():
    model, config = tiny("keyframe_transformer")
    batch = models.get_family("keyframe_transformer").example_batch(config, 3, seed=1)[0]
    assert not batch["mask"].all()

    def garbage_at_padding(key, value, inputs):
        return np.where(inputs["mask"], value, 5.0)

    runner = Shifted(model, "keyframe_transformer", garbage_at_padding)
    report = verify("litert-int8", model, "keyframe_transformer", runner, [batch])
    assert report["gate"]["value"] == pytest.approx(1.0) and report["videos"] == 3

    def reversed_order(key, value, inputs):
        return np.where(inputs["mask"], 1.0 - value, 0.0)

    runner = Shifted(model, "keyframe_transformer", reversed_order)
    report = verify("litert-int8", model, "keyframe_transformer", runner, [batch])
    assert report["gate"]["value"] == pytest.approx(-1.0) and not report["gate"]["passed"]


def test_teacher_task_separates_the_classes():
    model, config = tiny("convlstm")
    inputs, labels, levels = matrix.teacher_data("convlstm", config, 40, seed=0)
    assert labels.shape == (40, 1) and set(np.unique(labels)) == {0.0, 1.0}
    assert np.all((levels <= 0.35) | (levels >= 0.65))
    assert np.all((levels >= 0.65) == (labels[:, 0] == 1))
    frames = inputs["frames"]
    assert frames.min() >= 0.0 and frames.max() <= 1.0
    # A brighter level gives a brighter clip: the task is in the input.
    brightness = frames.reshape(40, -1).mean(-1)
    assert np.corrcoef(brightness, levels)[0, 1] > 0.9


def test_unknown_and_unsupported_formats_are_refused():
    with pytest.raises(ValueError, match="unknown export format 'tflite'; formats are: "):
        formats.check_format("tflite")
    with pytest.raises(ValueError, match="keyframe_transformer does not export to litert-int8: "):
        formats.check_format("litert-int8", "keyframe_transformer")
    assert "litert-int8" not in formats.supported_formats("keyframe_transformer")
    assert formats.supported_formats("convlstm") == formats.names()
