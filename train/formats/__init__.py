"""Export formats: how a Keras model becomes a file, and how the file runs again.

| format        | file                       | runtime that reloads it          | made by |
|---------------|----------------------------|----------------------------------|---------|
| `saved_model` | `saved_model.pb`, `variables/` | TensorFlow (`tf.saved_model.load`) | `keras.export.ExportArchive` |
| `litert`      | `model.tflite`             | `ai_edge_litert` interpreter     | `tf.lite.TFLiteConverter.from_saved_model`, builtin ops only |
| `litert-int8` | `model.tflite`             | `ai_edge_litert` interpreter     | the same, full-integer post-training quantization |
| `onnx`        | `model.onnx`               | `onnxruntime`                    | tf2onnx from the SavedModel, opset 17 |

One module per format (`saved_model`, `litert`, `onnx`), each an
`ExportFormat` (`train.formats.base`): `write`, `load_runner`; the gates
(`train.formats.gates.verify`) check any runner against Keras. A new format
is its module and one `register` call; `train.export`, the export matrix
(`python -m train.export_check`) and the contract test pick it up.

Every format is reloaded by `load_runner(format, folder)`: a callable from a
dict of NumPy inputs (with a batch axis) to a dict of named NumPy outputs,
whatever batch size the file's signature fixes.

Example:

>>> names()
('saved_model', 'litert', 'litert-int8', 'onnx')
>>> get_format("onnx").file_name
'model.onnx'
"""

import models
from common.registry import Registry
from train.formats.base import ExportFormat, Runner, Written
from train.formats.gates import FLOAT_TOLERANCE, verify
from train.formats.litert import LiteRTFormat, LiteRTInt8Format
from train.formats.onnx import OnnxFormat
from train.formats.saved_model import SavedModelFormat, export_saved_model, serving_signature

_FORMATS = Registry("export format", "name",
                    "unknown export format {name!r}; formats are: {known}")
register = _FORMATS.register
unregister = _FORMATS.unregister
names = _FORMATS.names
get_format = _FORMATS.get


def check_format(name, model_name=None):
    """`name`, or ValueError listing the formats; with `model_name`, also
    ValueError saying why that model does not go to that format."""
    get_format(name)
    if model_name is not None:
        models.get_family(model_name).check_export(name)
    return name


def supported_formats(model_name):
    """The formats `model_name` exports to."""
    family = models.get_family(model_name)
    return tuple(name for name in names() if name not in family.export_refusals)


def signature_batch_size(format_name, model):
    """The batch size a format's signature fixes for `model`, or None."""
    return get_format(format_name).signature_batch_size(model)


def write(format_name, model, model_name, folder, calibration=None, source=None):
    """Writes `model` in `format_name` into the version folder `folder`
    (see `ExportFormat.write`); returns a `Written`."""
    return get_format(format_name).write(model, model_name, folder, calibration, source)


def load_runner(format_name, folder, threads=None):
    """The export in `folder` reloaded in its own runtime (see `Runner`)."""
    return get_format(format_name).load_runner(folder, threads)


register(SavedModelFormat())
register(LiteRTFormat())
register(LiteRTInt8Format())
register(OnnxFormat())

__all__ = [
    "FLOAT_TOLERANCE",
    "ExportFormat",
    "Runner",
    "Written",
    "check_format",
    "export_saved_model",
    "get_format",
    "load_runner",
    "names",
    "register",
    "serving_signature",
    "signature_batch_size",
    "supported_formats",
    "unregister",
    "verify",
    "write",
]
