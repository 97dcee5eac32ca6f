"""LiteRT (`model.tflite`), float and full-integer int8, for phones and edge devices.

No runtime on PyPI runs LiteRT's Select-TF ("Flex") ops, so the files use
builtin ops only. Keras' own `model.export(format="litert")` turns
Select-TF ops on; the converter is called directly instead, on a SavedModel
of the model's inference copy (`train.formats.rewrite`).

int8 is full-integer post-training quantization calibrated on examples of
the run's own training data, with float32 inputs and outputs, so callers
feed the same arrays as to the float model. Ops without an int8 kernel
(CONV_3D) stay float. Dynamic-range quantization was measured too: it
leaves layers under 1024 weights in float and ran slower than float.
"""

import numpy as np
import tensorflow as tf

from train.formats.base import Runner, quiet
from train.formats.converted import ConvertedFormat
from train.formats.rewrite import litert_batch_size


def convert_litert(saved_model, path, calibration=None, signature_keys=("serving_default",)):
    """Converts a SavedModel to a `.tflite` file of builtin ops only.

    With `calibration` (a callable returning an iterator of input dicts),
    full-integer post-training quantization with float inputs and outputs.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model, signature_keys=list(signature_keys)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            {key: np.asarray(value) for key, value in example.items()} for example in calibration()
        )
    data = quiet(converter.convert)
    with open(path, "wb") as file:
        file.write(data)
    return path


class LiteRTRunner(Runner):
    def __init__(self, path, threads=None, signature_key="serving_default"):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.runner = self.interpreter.get_signature_runner(signature_key)
        batch = {int(d["shape_signature"][0]) for d in self.runner.get_input_details().values()
                 if len(d["shape_signature"])}
        self.batch_size = next(iter(batch)) if batch and min(batch) > 0 else None

    def run(self, inputs):
        outputs = self.runner(**{key: np.ascontiguousarray(value) for key, value in inputs.items()})
        return {key: np.array(value) for key, value in outputs.items()}

    def signature(self):
        def describe(details):
            return {key: ([int(d) if d > 0 else None for d in value["shape_signature"]],
                          np.dtype(value["dtype"]).name) for key, value in details.items()}

        return describe(self.runner.get_input_details()), describe(self.runner.get_output_details())


class LiteRTFormat(ConvertedFormat):
    """`model.tflite` of builtin ops, float32."""

    name = "litert"
    runtime = "ai-edge-litert"
    packages = ("ai-edge-litert",)
    file_name = "model.tflite"

    def signature_batch_size(self, model):
        return litert_batch_size(model)

    def convert(self, saved_model, path, calibration=None):
        convert_litert(saved_model, path, calibration)

    def load_runner(self, folder, threads=None):
        return LiteRTRunner(self.path_in(folder), threads)


class LiteRTInt8Format(LiteRTFormat):
    """`model.tflite`, full-integer int8 calibrated on the training data."""

    name = "litert-int8"
    quantized = True
    needs_calibration = True
