"""The streaming export: a frame-by-frame model in SavedModel and LiteRT.

A family that reads its frames in order declares a `Streaming` form
(`models.capabilities.Streaming`: a step model built from the clip model's
weights, frame and recurrent states in, probabilities and new states out).
`python -m train.export --run DIR --streaming [--format litert]` writes it
with two signatures, `init_state(batch_size)` -> zero states and
`step(frame, h_1, c_1, ...)` -> `probabilities` and the new states under
the input names. A client calls `init_state` once and feeds each step's
states to the next. `export_and_verify` checks an export against Keras:
per frame against the Keras step model, and after the last frame against
the clip model.

Example:

>>> import models
>>> family = models.get_family("convlstm")
>>> config = family.get_config("tiny")
>>> model = family.build(config)
>>> clips = np.random.default_rng(0).uniform(size=(2, *config.input_shape)).astype("float32")
>>> per_frame = stream_clips(KerasStepper(model, config, family.streaming), clips)
>>> per_frame.shape
(2, 4, 1)
>>> bool(np.allclose(per_frame[:, -1], model({"frames": clips}), atol=1e-5))
True
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import models
from train.formats.base import Written
from train.formats.gates import FLOAT_TOLERANCE, decision
from train.formats.litert import LiteRTFormat, convert_litert
from train.formats.saved_model import describe_signature

STREAMING_FORMATS = ("saved_model", "litert")
LITERT_FILE = LiteRTFormat.file_name


def streaming_form(model_name, flag="--streaming"):
    """The family's `Streaming` form; ValueError naming `flag` and the
    models that have one when it has none."""
    family = models.get_family(model_name)
    if family.streaming is None:
        having = [name for name in models.names() if models.get_family(name).streaming is not None]
        raise ValueError(
            f"{flag}: a {model_name} run has no frame-by-frame form; streaming models: "
            f"{', '.join(having) or 'none'}"
        )
    return family.streaming


def check_format(format_name):
    if format_name not in STREAMING_FORMATS:
        raise ValueError(
            f"--streaming exports {' or '.join(STREAMING_FORMATS)}, not {format_name}"
        )
    return format_name


# ---------------------------------------------------------------------------
# Steppers: the same loop over any runtime.


class Stepper:
    """One runtime of the step model: `init(batch_size) -> states`,
    `step(frames [B, H, W, C], states) -> (probabilities [B, K], states)`."""

    def init(self, batch_size):
        raise NotImplementedError

    def step(self, frames, states):
        raise NotImplementedError


class KerasStepper(Stepper):
    """The Keras step model built from a clip model."""

    def __init__(self, model, config, streaming):
        self.config = config
        self.streaming = streaming
        self.model = streaming.step_model(model, config)

    def init(self, batch_size):
        return self.streaming.zero_states(self.config, batch_size)

    def step(self, frames, states):
        outputs = self.model({"frame": frames, **states}, training=False)
        return (np.asarray(outputs["probabilities"]),
                {name: np.asarray(outputs[name]) for name in states})


class SavedModelStepper(Stepper):
    """A streaming SavedModel's `init_state` and `step` signatures."""

    def __init__(self, folder, threads=None):
        loaded = tf.saved_model.load(folder)
        self.init_function = loaded.signatures["init_state"]
        self.step_function = loaded.signatures["step"]

    def init(self, batch_size):
        states = self.init_function(batch_size=tf.constant(batch_size, tf.int32))
        return {name: value.numpy() for name, value in states.items()}

    def step(self, frames, states):
        outputs = self.step_function(
            frame=tf.constant(frames), **{k: tf.constant(v) for k, v in states.items()}
        )
        return outputs["probabilities"].numpy(), {name: outputs[name].numpy() for name in states}

    def signature(self):
        return describe_signature(self.step_function)


class LiteRTStepper(Stepper):
    """A streaming `.tflite` file's `init_state` and `step` signatures."""

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.init_runner = self.interpreter.get_signature_runner("init_state")
        self.step_runner = self.interpreter.get_signature_runner("step")

    def init(self, batch_size):
        states = self.init_runner(batch_size=np.array(batch_size, np.int32))
        return {name: np.array(value) for name, value in states.items()}

    def step(self, frames, states):
        outputs = self.step_runner(frame=np.ascontiguousarray(frames, np.float32), **states)
        return (np.array(outputs["probabilities"]),
                {name: np.array(outputs[name]) for name in states})

    def signature(self):
        def describe(details):
            return {key: ([int(d) if d > 0 else None for d in value["shape_signature"]],
                          np.dtype(value["dtype"]).name) for key, value in details.items()}

        return (describe(self.step_runner.get_input_details()),
                describe(self.step_runner.get_output_details()))


def stream_clips(stepper, clips):
    """Runs whole clips [B, T, H, W, C] frame by frame from zero states;
    returns the probabilities after every frame, [B, T, K]."""
    clips = np.asarray(clips, np.float32)
    states = stepper.init(len(clips))
    per_frame = []
    for t in range(clips.shape[1]):
        probabilities, states = stepper.step(clips[:, t], states)
        per_frame.append(probabilities)
    return np.stack(per_frame, axis=1)


# ---------------------------------------------------------------------------
# Exports.


def export_step_saved_model(step, shapes, path):
    """Writes the step model with `init_state` and `step` signatures;
    `shapes` are the states' shapes without the batch axis.

    `step` is added first: the first endpoint also becomes
    `serving_default`, and a server's default call should be a step.
    """
    # Variables are tracked from the endpoints' traces (see
    # `train.formats.saved_model.export_saved_model`).
    archive = keras.export.ExportArchive()
    step_spec = {
        name: tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=name)
        for name, tensor in step.input.items()
    }

    @tf.function(input_signature=[step_spec], autograph=False)
    def step_function(inputs):
        return step(inputs, training=False)

    @tf.function(input_signature=[tf.TensorSpec((), tf.int32, name="batch_size")], autograph=False)
    def init_state(batch_size):
        return {
            name: tf.zeros(tf.concat([[batch_size], list(shape)], 0), tf.float32)
            for name, shape in shapes.items()
        }

    archive.add_endpoint("step", step_function)
    archive.add_endpoint("init_state", init_state)
    archive.write_out(str(path), verbose=False)


def write(format_name, model, config, streaming, folder):
    """Writes the streaming form of `model` into `folder` (see the module doc)."""
    check_format(format_name)
    step = streaming.step_model(model, config)
    shapes = streaming.state_shapes(config)
    if format_name == "saved_model":
        export_step_saved_model(step, shapes, folder)
        return Written(folder, ["frame-by-frame step model"], None)
    path = os.path.join(folder, LITERT_FILE)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=folder) as scratch:
        source = os.path.join(scratch, "saved_model")
        export_step_saved_model(step, shapes, source)
        convert_litert(source, path, signature_keys=("init_state", "step"))
    return Written(path, ["frame-by-frame step model"], None)


def load_stepper(format_name, folder, threads=None):
    check_format(format_name)
    if format_name == "saved_model":
        return SavedModelStepper(folder, threads)
    return LiteRTStepper(os.path.join(folder, LITERT_FILE), threads)


def verify(model, config, streaming, stepper, batches, tolerance=FLOAT_TOLERANCE):
    """Streams held-out clips through a reloaded export; the gate is the
    largest difference of the probabilities, per frame against the Keras
    step model and after the last frame against the clip model."""
    keras_stepper = KerasStepper(model, config, streaming)
    per_frame, last_frame, examples = 0.0, 0.0, 0
    for inputs in batches:
        clips = np.asarray(inputs["frames"], np.float32)
        exported = stream_clips(stepper, clips)
        reference = stream_clips(keras_stepper, clips)
        clip_output = np.asarray(model({"frames": clips}, training=False))
        per_frame = max(per_frame, float(np.abs(exported - reference).max()))
        last_frame = max(last_frame, float(np.abs(exported[:, -1] - clip_output).max()))
        examples += len(clips)
    if examples == 0:
        raise ValueError("no held-out clips to check the streaming export on")
    value = max(per_frame, last_frame)
    return {
        "examples": examples,
        "max_abs_diff": {
            "probabilities_per_frame_vs_keras_step": per_frame,
            "probabilities_last_frame_vs_clip_model": last_frame,
        },
        "gate": decision("max_abs_diff[probabilities]", value, tolerance, at_most=True),
    }


def export_and_verify(format_name, model, config, streaming, folder, batches, threads=None):
    """(Written, stepper, report) of one streaming export into `folder`."""
    written = write(format_name, model, config, streaming, folder)
    stepper = load_stepper(format_name, folder, threads)
    return written, stepper, verify(model, config, streaming, stepper, batches)
