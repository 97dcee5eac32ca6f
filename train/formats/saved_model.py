"""SavedModel: the TF Serving export, and the source the other formats convert from.

Written by `keras.export.ExportArchive` with one `serving_default`
signature: the model's named inputs in, the family's named outputs out
(for example `frames` -> `probabilities`). Reloaded with
`tf.saved_model.load` (Keras 3's `load_model` does not read SavedModels).
"""

import keras
import tensorflow as tf

import models
from train.formats.base import ExportFormat, Runner, Written
from train.formats.rewrite import inference_copy


def serving_signature(model, batch_size=None):
    """One `tf.TensorSpec` per named model input; the batch axis is open
    unless `batch_size` fixes it.

    Every model in the suite takes a dict of named inputs, so the names are
    the dict's keys.
    """
    return {
        key: tf.TensorSpec((batch_size, *tensor.shape[1:]), tensor.dtype, name=key)
        for key, tensor in model.input.items()
    }


def export_saved_model(model, model_name: str, path: str, batch_size=None):
    """Writes `model` to `path` with a `serving_default` signature.

    The signature takes the model's named inputs and returns the family's
    named outputs (for example `frames` -> `probabilities`).
    """
    family = models.get_family(model_name)
    # The endpoint's variables are tracked from its trace. `archive.track`
    # would also walk every layer for lookup tables (none here), tracing
    # the model's own default signature on the way: 8 of 30 s for the
    # frames-mode keyframe model. (So the reloaded object's `variables`
    # lists stay empty: the signature is the interface; fine-tune from the
    # run's .keras file.)
    archive = keras.export.ExportArchive()

    @tf.function(input_signature=[serving_signature(model, batch_size)], autograph=False)
    def serve(inputs):
        return family.name_outputs(model, model(inputs, training=False))

    archive.add_endpoint("serve", serve)
    archive.write_out(str(path), verbose=False)


def write_source(model, model_name, path, batch_size=None):
    """Writes the SavedModel the LiteRT and ONNX files are converted from:
    `inference_copy(model)` with a batch axis of `batch_size` (None: open).
    Returns a `Written`; one source serves every format whose
    `signature_batch_size` equals its batch size."""
    copy, rewrites = inference_copy(model)
    export_saved_model(copy, model_name, path, batch_size=batch_size)
    return Written(path, rewrites, batch_size)


def describe_signature(function):
    """`({input: (shape, dtype)}, {output: (shape, dtype)})` of a loaded
    SavedModel signature."""
    specs = function.structured_input_signature[1]
    return (
        {key: (spec.shape.as_list(), spec.dtype.name) for key, spec in specs.items()},
        {key: (spec.shape.as_list(), spec.dtype.name)
         for key, spec in function.structured_outputs.items()},
    )


class SavedModelRunner(Runner):
    def __init__(self, folder, threads=None):
        self.function = tf.saved_model.load(folder).signatures["serving_default"]

    def run(self, inputs):
        outputs = self.function(**{key: tf.constant(value) for key, value in inputs.items()})
        return {key: value.numpy() for key, value in outputs.items()}

    def signature(self):
        return describe_signature(self.function)


class SavedModelFormat(ExportFormat):
    """`saved_model.pb` and `variables/`, the version folder TF Serving loads."""

    name = "saved_model"
    runtime = "tensorflow"
    packages = ()
    serving_root = True

    def write(self, model, model_name, folder, calibration=None, source=None):
        export_saved_model(model, model_name, folder)
        return Written(folder, [], None)

    def load_runner(self, folder, threads=None):
        return SavedModelRunner(folder, threads)
