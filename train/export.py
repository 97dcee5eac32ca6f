"""Export a trained model as a SavedModel that TF Serving loads."""

import tensorflow as tf
import keras

import models


def serving_signature(model):
    """One `tf.TensorSpec` per named model input, batch axis left open.

    Every model in the suite takes a dict of named inputs, so the names are
    the dict's keys.
    """
    return {
        key: tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=key)
        for key, tensor in model.input.items()
    }


def export_saved_model(model, model_name: str, path: str):
    """Writes `model` to `path` with a `serving_default` signature.

    The signature takes the model's named inputs and returns the family's
    named outputs (for example `frames` -> `probabilities`).
    """
    family = models.get_family(model_name)
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[serving_signature(model)], autograph=False)
    def serve(inputs):
        return family.name_outputs(model, model(inputs, training=False))

    archive.add_endpoint("serve", serve)
    archive.write_out(str(path), verbose=False)
