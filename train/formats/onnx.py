"""ONNX (`model.onnx`), reloaded with onnxruntime.

Converted with tf2onnx from a SavedModel of the model's inference copy,
opset 17. Converting from the SavedModel (rather than from a traced
function) keeps preprocessing constants such as a `Normalization` layer's
mean inside the graph. tf2onnx has no converter for TensorFlow's `Erfc`,
which Keras' exact `gelu` lowers to; `erfc(x) = 1 - erf(x)` is registered
here. tf2onnx's einsum optimizer is left out: it benchmarks einsum
decompositions and took most of the conversion time (onnxruntime runs
`Einsum` as it is).
"""

import os
from collections import OrderedDict

import numpy as np

from train.formats.base import Runner, quiet
from train.formats.converted import ConvertedFormat

ONNX_OPSET = 17


def convert_onnx(saved_model, path, opset=ONNX_OPSET):
    """Converts a SavedModel's `serving_default` to an ONNX file.

    tf2onnx's public `convert.from_graph_def` runs every optimizer; the
    einsum optimizer is left out through the two private functions the
    public ones are built from (`optimizer._get_optimizers`,
    `convert._convert_common`); tests/test_private_apis.py fails loudly if
    an upgrade changes them.
    """
    import tensorflow as tf
    from tf2onnx import convert, optimizer, tf_loader

    register_erfc()
    graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
        saved_model, None, None, signatures=["serving_default"],
        return_initialized_tables=True, return_tensors_to_rename=True,
    )
    optimizers = OrderedDict(
        (name, factory) for name, factory in optimizer._get_optimizers().items()
        if name != "einsum_optimizer"
    )
    with tf.device("/cpu:0"):
        quiet(
            convert._convert_common,
            graph_def, name=os.path.basename(path), opset=opset, input_names=inputs,
            output_names=outputs, tensors_to_rename=renames, initialized_tables=tables,
            optimizers=optimizers, output_path=path,
        )
    return path


_ERFC_REGISTERED = []


def register_erfc():
    """Teaches tf2onnx TensorFlow's `Erfc` (from Keras' exact gelu) as
    `1 - Erf(x)`; ONNX has `Erf` since opset 9."""
    if _ERFC_REGISTERED:
        return
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:  # noqa: F841  (the decorator registers it)
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            node.type = "Erf"
            one = ctx.make_const(utils.make_name(node.name + "_one"), np.array(1, dtype=dtype))
            complement = ctx.insert_new_node_on_output(
                "Sub", node.output[0], name=utils.make_name(node.name + "_erfc")
            )
            ctx.replace_inputs(complement, [one.output[0], node.output[0]])
            ctx.copy_shape(node.output[0], complement.output[0])
            ctx.set_dtype(complement.output[0], ctx.get_dtype(node.output[0]))

    _ERFC_REGISTERED.append(True)


class OnnxRunner(Runner):
    def __init__(self, path, threads=None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs):
        values = self.session.run(None, {name: inputs[_plain(name)] for name in self.input_names})
        return {_plain(name): value for name, value in zip(self.output_names, values)}

    def signature(self):
        def describe(nodes):
            return {_plain(n.name): ([d if isinstance(d, int) else None for d in n.shape],
                                     n.type.replace("tensor(", "").rstrip(")"))
                    for n in nodes}

        return describe(self.session.get_inputs()), describe(self.session.get_outputs())


def _plain(name):
    return name.split(":")[0]


class OnnxFormat(ConvertedFormat):
    """`model.onnx`, opset 17, for onnxruntime."""

    name = "onnx"
    runtime = "onnxruntime"
    packages = ("tf2onnx", "onnx", "onnxruntime")
    file_name = "model.onnx"

    def convert(self, saved_model, path, calibration=None):
        convert_onnx(saved_model, path)

    def load_runner(self, folder, threads=None):
        return OnnxRunner(self.path_in(folder), threads)
