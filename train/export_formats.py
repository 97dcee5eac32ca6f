"""Export formats: how a Keras model becomes a file, and how the file runs again.

| format        | file                       | runtime that reloads it          | made by |
|---------------|----------------------------|----------------------------------|---------|
| `saved_model` | `saved_model.pb`, `variables/` | TensorFlow (`tf.saved_model.load`) | `keras.export.ExportArchive` |
| `litert`      | `model.tflite`             | `ai_edge_litert` interpreter     | `tf.lite.TFLiteConverter.from_saved_model`, builtin ops only |
| `litert-int8` | `model.tflite`             | `ai_edge_litert` interpreter     | the same, full-integer post-training quantization |
| `onnx`        | `model.onnx`               | `onnxruntime`                    | tf2onnx from the SavedModel, opset 17 |

Why these routes (TensorFlow 2.21, Keras 3.15):

- No runtime on PyPI runs LiteRT's Select-TF ("Flex") ops, so LiteRT files
  use builtin ops only. Keras' own `model.export(format="litert")` turns
  Select-TF ops on; the converter is called directly instead.
- LiteRT has no 3-D max pool and lowers an RNN's while loop to builtins only
  when every tensor in it has a static shape. `inference_copy` therefore
  rewrites a copy of the model, same weights, before conversion:
  `MaxPool3D((1, k, k))` becomes `TimeDistributed(MaxPool2D((k, k)))` (the
  same per-frame pooling), RNN dropout becomes 0 (inference ignores it, but a
  layer with dropout traces a seed update that the converter cannot lower),
  and RNNs over a fixed number of steps are unrolled; a `FusedLSTM` runs
  Keras' LSTM loop in the copy (its own scan does not convert to ONNX). An
  RNN over an open number of steps keeps its loop and the LiteRT signature
  fixes the batch at 1 (one video at a time, as on a phone).
- int8 is full-integer post-training quantization calibrated on examples of
  the run's own training data, with float32 inputs and outputs, so callers
  feed the same arrays as to the float model. Ops without an int8 kernel
  (CONV_3D) stay float. Dynamic-range quantization was measured too: it
  leaves layers under 1024 weights in float and ran slower than float.
- tf2onnx has no converter for TensorFlow's `Erfc`, which Keras' exact
  `gelu` lowers to; `erfc(x) = 1 - erf(x)` is registered here. Converting
  from the SavedModel (rather than from a traced function) keeps
  preprocessing constants such as a `Normalization` layer's mean inside the
  graph. tf2onnx's einsum optimizer is left out: it benchmarks einsum
  decompositions and took most of the conversion time (onnxruntime runs
  `Einsum` as it is).

Every format is reloaded by `load_runner(format, folder)`: a callable from a
dict of NumPy inputs (with a batch axis) to a dict of named NumPy outputs,
whatever batch size the file's signature fixes.
"""

import contextlib
import dataclasses
import io
import os
import tempfile

import numpy as np

FORMATS = ("saved_model", "litert", "litert-int8", "onnx")
FILE_NAMES = {"litert": "model.tflite", "litert-int8": "model.tflite", "onnx": "model.onnx"}
ONNX_OPSET = 17
# The gates (see `verify`).
FLOAT_TOLERANCE = 1e-4
INT8_MIN_TOP1_AGREEMENT = 0.99
INT8_MIN_SPEARMAN = 0.98

RNN_CLASSES = ("LSTM", "FusedLSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


# Model and format pairs that do not pass their gate with TensorFlow 2.21,
# and why (measured by `python -m train.export_check`, briefly trained tiny
# models; see the README's matrix). They are refused before any work.
UNSUPPORTED = {
    ("bilstm_attention", "litert-int8"): (
        "full-integer int8 changes its decisions (top-1 agreement 0.95 with Keras, flipped "
        "examples had float margins above 0.99): the int8 LSTM, masked attention and "
        "LayerNorm kernels of TFLite lose the signal; export litert (float) instead"
    ),
    ("keyframe_transformer", "litert-int8"): (
        "full-integer int8 scrambles its frame ranking (Spearman rho 0.37 with Keras): the "
        "attention matmuls of two int8 activations and the LayerNorms lose the signal, and "
        "keeping the attention layers in float still gives only 0.95; export litert (float) "
        "instead"
    ),
}


def check_format(name, model_name=None):
    """`name`, or ValueError listing the formats; with `model_name`, also
    ValueError saying why that model does not go to that format."""
    if name not in FORMATS:
        raise ValueError(f"unknown export format {name!r}; formats are: {', '.join(FORMATS)}")
    if (model_name, name) in UNSUPPORTED:
        raise ValueError(f"{model_name} does not export to {name}: {UNSUPPORTED[model_name, name]}")
    return name


def supported_formats(model_name):
    """The formats `model_name` exports to."""
    return tuple(name for name in FORMATS if (model_name, name) not in UNSUPPORTED)


# ---------------------------------------------------------------------------
# SavedModel: the TF Serving export, and the source of the other formats.


def serving_signature(model, batch_size=None):
    """One `tf.TensorSpec` per named model input; the batch axis is open
    unless `batch_size` fixes it.

    Every model in the suite takes a dict of named inputs, so the names are
    the dict's keys.
    """
    import tensorflow as tf

    return {
        key: tf.TensorSpec((batch_size, *tensor.shape[1:]), tensor.dtype, name=key)
        for key, tensor in model.input.items()
    }


def export_saved_model(model, model_name: str, path: str, batch_size=None):
    """Writes `model` to `path` with a `serving_default` signature.

    The signature takes the model's named inputs and returns the family's
    named outputs (for example `frames` -> `probabilities`).
    """
    import keras
    import tensorflow as tf

    import models

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


# ---------------------------------------------------------------------------
# The copy of a model that LiteRT's builtin ops cover.


def _rnn_config(config, unroll):
    config = {**config, "dropout": 0.0, "recurrent_dropout": 0.0,
              "unroll": unroll or config.get("unroll", False)}
    if "fused" in config:
        # FusedLSTM's scan carries its state packed in one tensor, a loop
        # tf2onnx cannot map to ONNX's Loop; Keras' LSTM loop, same
        # weights and function, converts to both formats.
        config["fused"] = False
    return config


def inference_copy(model):
    """(model, rewrites): a copy of `model` in ops that LiteRT's builtins
    cover, with the same weights and the same outputs, and the list of what
    was rewritten; `model` itself when nothing needs rewriting.

    See the module docstring for the rewrites. Steps count as fixed when
    every model input has a static second axis.
    """
    import keras

    fixed_steps = all(tensor.shape[1] is not None for tensor in model.inputs)
    rewrites = []

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.MaxPool3D):
            strides = config["strides"] or config["pool_size"]
            if config["pool_size"][0] == 1 and strides[0] == 1:
                rewrites.append(f"{layer.name}: MaxPool3D{tuple(config['pool_size'])} -> "
                                f"TimeDistributed(MaxPool2D{tuple(config['pool_size'][1:])})")
                return keras.layers.TimeDistributed(
                    keras.layers.MaxPool2D(
                        config["pool_size"][1:], strides=tuple(strides[1:]),
                        padding=config["padding"], data_format=config["data_format"],
                    ),
                    name=layer.name,
                )
        if type(layer).__name__ in RNN_CLASSES:
            rewrites.append(f"{layer.name}: dropout 0" + (", unrolled" if fixed_steps else ""))
            return type(layer).from_config(_rnn_config(config, fixed_steps))
        if isinstance(layer, keras.layers.Bidirectional):
            for key in ("layer", "backward_layer"):
                if config.get(key):
                    config[key] = {**config[key], "config": _rnn_config(config[key]["config"], fixed_steps)}
            rewrites.append(f"{layer.name}: dropout 0" + (", unrolled" if fixed_steps else ""))
            return keras.layers.Bidirectional.from_config(config)
        return type(layer).from_config(config)

    needs_copy = any(
        isinstance(layer, (keras.layers.MaxPool3D, keras.layers.Bidirectional))
        or type(layer).__name__ in RNN_CLASSES
        for layer in model.layers
    )
    if not needs_copy:
        return model, []
    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy, rewrites


def litert_batch_size(model):
    """1 when an RNN in `model` keeps its while loop (open steps), else
    None (an open batch axis)."""
    fixed_steps = all(tensor.shape[1] is not None for tensor in model.inputs)
    has_rnn = any(
        type(layer).__name__ in RNN_CLASSES or type(layer).__name__ == "Bidirectional"
        for layer in _all_layers(model)
    )
    return 1 if has_rnn and not fixed_steps else None


def _all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


# ---------------------------------------------------------------------------
# Writing each format.


@dataclasses.dataclass
class Written:
    """What `write` made: the file (or folder), the rewrites of the model
    it was converted from, and the batch size its signature fixes."""

    path: str
    rewrites: list
    batch_size: int | None


def signature_batch_size(format_name, model):
    """The batch size a format's signature fixes for `model`, or None."""
    return litert_batch_size(model) if format_name in ("litert", "litert-int8") else None


def write_source(model, model_name, path, batch_size=None):
    """Writes the SavedModel the LiteRT and ONNX files are converted from:
    `inference_copy(model)` with a batch axis of `batch_size` (None: open).
    Returns a `Written`; one source serves every format whose
    `signature_batch_size` equals its batch size."""
    copy, rewrites = inference_copy(model)
    export_saved_model(copy, model_name, path, batch_size=batch_size)
    return Written(path, rewrites, batch_size)


def write(format_name, model, model_name, folder, calibration=None, source=None):
    """Writes `model` in `format_name` into `folder` (which must exist).

    Args:
        format_name: one of `FORMATS`.
        model: the Keras model.
        model_name: its registered name (names the signature's outputs).
        folder: the version folder being built; a SavedModel fills it, the
            other formats put `FILE_NAMES[format_name]` in it.
        calibration: for `litert-int8`, a callable returning an iterator of
            input dicts with a batch of one, drawn from the training data.
        source: a `write_source` result to convert from (to convert one
            model to several formats); by default one is written to a
            scratch folder and removed.

    Returns:
        `Written`.
    """
    check_format(format_name)
    if format_name == "saved_model":
        export_saved_model(model, model_name, folder)
        return Written(folder, [], None)
    if format_name == "litert-int8" and calibration is None:
        raise ValueError("litert-int8 needs calibration examples from the training data")
    batch_size = signature_batch_size(format_name, model)
    path = os.path.join(folder, FILE_NAMES[format_name])
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=folder) as scratch:
        if source is None:
            source = write_source(model, model_name, os.path.join(scratch, "saved_model"), batch_size)
        elif source.batch_size != batch_size:
            raise ValueError(
                f"{format_name} needs a source of batch size {batch_size}, got {source.batch_size}"
            )
        if format_name == "onnx":
            convert_onnx(source.path, path)
        else:
            convert_litert(source.path, path, calibration if format_name == "litert-int8" else None)
    return Written(path, source.rewrites, batch_size)


def convert_litert(saved_model, path, calibration=None, signature_keys=("serving_default",)):
    """Converts a SavedModel to a `.tflite` file of builtin ops only.

    With `calibration` (a callable returning an iterator of input dicts),
    full-integer post-training quantization with float inputs and outputs.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model, signature_keys=list(signature_keys)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            {key: np.asarray(value) for key, value in example.items()} for example in calibration()
        )
    data = _quiet(converter.convert)
    with open(path, "wb") as file:
        file.write(data)
    return path


def convert_onnx(saved_model, path, opset=ONNX_OPSET):
    """Converts a SavedModel's `serving_default` to an ONNX file."""
    from collections import OrderedDict

    import tensorflow as tf
    from tf2onnx import convert, optimizer, tf_loader

    _register_erfc()
    graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
        saved_model, None, None, signatures=["serving_default"],
        return_initialized_tables=True, return_tensors_to_rename=True,
    )
    optimizers = OrderedDict(
        (name, factory) for name, factory in optimizer._get_optimizers().items()
        if name != "einsum_optimizer"
    )
    with tf.device("/cpu:0"):
        _quiet(
            convert._convert_common,
            graph_def, name=os.path.basename(path), opset=opset, input_names=inputs,
            output_names=outputs, tensors_to_rename=renames, initialized_tables=tables,
            optimizers=optimizers, output_path=path,
        )
    return path


_ERFC_REGISTERED = []


def _register_erfc():
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


def _quiet(function, *args, **kwargs):
    """Runs a converter with its progress prints on stdout swallowed; a
    command's stdout stays its result."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args, **kwargs)


# ---------------------------------------------------------------------------
# Reloading each format in its own runtime.


class Runner:
    """A reloaded export: `runner(inputs) -> outputs`, NumPy dicts with a
    batch axis. `signature()` describes its inputs and outputs."""

    batch_size = None

    def __call__(self, inputs):
        inputs = {key: np.asarray(value) for key, value in inputs.items()}
        count = len(next(iter(inputs.values())))
        if self.batch_size is None or count == self.batch_size:
            return self.run(inputs)
        # A signature of a fixed batch: the examples go through in chunks.
        parts = [
            self.run({key: value[start:start + self.batch_size] for key, value in inputs.items()})
            for start in range(0, count, self.batch_size)
        ]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def run(self, inputs):
        raise NotImplementedError

    def signature(self):
        raise NotImplementedError


class SavedModelRunner(Runner):
    def __init__(self, folder, threads=None):
        import tensorflow as tf

        self.function = tf.saved_model.load(folder).signatures["serving_default"]

    def run(self, inputs):
        import tensorflow as tf

        outputs = self.function(**{key: tf.constant(value) for key, value in inputs.items()})
        return {key: value.numpy() for key, value in outputs.items()}

    def signature(self):
        specs = self.function.structured_input_signature[1]
        return (
            {key: (spec.shape.as_list(), spec.dtype.name) for key, spec in specs.items()},
            {key: (spec.shape.as_list(), spec.dtype.name)
             for key, spec in self.function.structured_outputs.items()},
        )


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


def load_runner(format_name, folder, threads=None):
    """The export in `folder` reloaded in its own runtime (see `Runner`)."""
    check_format(format_name)
    if format_name == "saved_model":
        return SavedModelRunner(folder, threads)
    path = os.path.join(folder, FILE_NAMES[format_name])
    if format_name == "onnx":
        return OnnxRunner(path, threads)
    return LiteRTRunner(path, threads)


# ---------------------------------------------------------------------------
# The gates.


def verify(format_name, model, model_name, runner, batches, float_tolerance=FLOAT_TOLERANCE):
    """Compares a reloaded export with Keras on held-out inputs.

    Every format reports the largest absolute difference of every output
    (at the real steps of per-step outputs). The gate:

    - float formats: the largest difference of `probabilities` / `scores`
      at most `float_tolerance` (1e-4);
    - `litert-int8`, classifiers: the top-1 class agrees with Keras on at
      least 99% of the held-out examples (a single sigmoid output counts as
      two classes, p > 0.5);
    - `litert-int8`, frame scorers: Spearman's rho between the Keras and the
      int8 scores of each video's real frames, averaged over the videos, at
      least 0.98 (per video, as the summarization protocol correlates
      scores; ties get average ranks, since int8 outputs repeat values).

    Args:
        batches: an iterable of input dicts (each a batch).

    Returns:
        The report: `{"examples", "max_abs_diff", "gate": {"metric",
        "value", "threshold", "passed"}, ...}`.
    """
    import models

    family = models.get_family(model_name)
    quantized = format_name == "litert-int8"
    worst = {}
    gated_key = None
    agreement = []  # 1/0 per example (classifiers)
    margins = []  # the float top-1 margin of every example (classifiers)
    flipped_margins = []
    correlations = []  # one rho per video (frame scorers)
    examples = 0
    for inputs in batches:
        inputs = {key: np.asarray(value) for key, value in inputs.items()}
        expected = {
            key: np.asarray(value)
            for key, value in family.name_outputs(model, model(inputs, training=False)).items()
        }
        actual = runner(inputs)
        missing = sorted(set(expected) - set(actual))
        if missing:
            raise ValueError(f"the {format_name} export has outputs {sorted(actual)}, not {missing}")
        mask = inputs.get("mask")
        examples += len(next(iter(inputs.values())))
        for key, value in expected.items():
            got = np.asarray(actual[key], dtype=np.float64)
            difference = np.abs(got - value)
            if mask is not None and value.shape[:2] == mask.shape:
                difference = difference[np.asarray(mask, bool)]
            worst[key] = max(worst.get(key, 0.0), float(difference.max(initial=0.0)))
        gated_key = "scores" if "scores" in expected else "probabilities"
        if gated_key not in expected:
            raise ValueError(f"{model_name}: no probabilities or scores output to gate on")
        if not quantized:
            continue
        if gated_key == "probabilities":
            reference = two_columns(expected[gated_key])
            quantized_probabilities = two_columns(actual[gated_key])
            ordered = np.sort(reference, axis=-1)
            margin = ordered[:, -1] - ordered[:, -2]
            same = reference.argmax(-1) == quantized_probabilities.argmax(-1)
            agreement += same.tolist()
            margins += margin.tolist()
            flipped_margins += margin[~same].tolist()
        else:
            real = np.ones(expected[gated_key].shape, bool) if mask is None else np.asarray(mask, bool)
            for row in range(len(real)):
                rho = spearman(expected[gated_key][row][real[row]], actual[gated_key][row][real[row]])
                if rho is not None:
                    correlations.append(rho)
    if examples == 0:
        raise ValueError("no held-out examples to check the export on")
    report = {"examples": examples, "max_abs_diff": worst}
    if not quantized:
        value = worst[gated_key]
        report["gate"] = {
            "metric": f"max_abs_diff[{gated_key}]", "value": value,
            "threshold": float_tolerance, "passed": bool(value <= float_tolerance),
        }
    elif gated_key == "probabilities":
        value = float(np.mean(agreement))
        report["float_top1_margin"] = {
            "median": float(np.median(margins)), "min": float(np.min(margins)),
        }
        report["flipped_examples_float_margins"] = sorted(flipped_margins)
        report["gate"] = {
            "metric": "top1_agreement", "value": value,
            "threshold": INT8_MIN_TOP1_AGREEMENT, "passed": bool(value >= INT8_MIN_TOP1_AGREEMENT),
        }
    else:
        if not correlations:
            raise ValueError("no held-out video has two frames of different scores to rank")
        value = float(np.mean(correlations))
        report["spearman_min"] = float(np.min(correlations))
        report["videos"] = len(correlations)
        report["gate"] = {
            "metric": "mean_spearman_rho", "value": value,
            "threshold": INT8_MIN_SPEARMAN, "passed": bool(value >= INT8_MIN_SPEARMAN),
        }
    return report


def two_columns(probabilities):
    """[N, 1] sigmoid outputs as [N, 2] class probabilities; others unchanged."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[-1] == 1:
        return np.concatenate([1.0 - probabilities, probabilities], axis=-1)
    return probabilities


def average_ranks(values):
    """Ranks from 1, ties sharing their average rank.

    Example:

    >>> average_ranks([0.5, 0.1, 0.5, 0.9]).tolist()
    [2.5, 1.0, 2.5, 4.0]
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    unique, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def spearman(a, b):
    """Spearman's rho of two score vectors (Pearson's r of their average
    ranks); None when either is constant or has fewer than two values.

    Example:

    >>> round(spearman([0.1, 0.4, 0.3, 0.9], [0.2, 0.5, 0.5, 0.7]), 4)
    0.9487
    """
    if len(a) < 2:
        return None
    ranks_a, ranks_b = average_ranks(a), average_ranks(b)
    if ranks_a.std() == 0 or ranks_b.std() == 0:
        return None
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])
