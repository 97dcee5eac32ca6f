"""Streaming ConvLSTM: one frame in, the probabilities so far out.

A ConvLSTM clip classifier reads its frames in order, so it can run on a
live video frame by frame: `models.convlstm.build_convlstm_step` is that
form of the model, built from the same weights (frame and recurrent
states in, probabilities and new states out). After the last frame of a
clip it gives exactly the clip model's output; after frame `t`, the clip
model's output on the first `t` frames.

- `stream_video(model, record, video)`: a trained run's probabilities after
  every frame of a video file, decoded one frame at a time (what
  `train.predict --stream` prints).
- Exports (`python -m train.export --run DIR --streaming [--format litert]`):
  a SavedModel with two signatures, `init_state(batch_size)` -> zero states
  and `step(frame, h_1, c_1, ...)` -> `probabilities` and the new states
  under the input names, and a LiteRT file with the same two signatures.
  A client calls `init_state` once and feeds each step's states to the
  next. `export_and_verify` checks an export against Keras: per frame
  against the Keras step model, and after the last frame against the clip
  model.

Example:

>>> import models
>>> config = models.get_config("convlstm", preset="tiny")
>>> model = models.build_from_config("convlstm", config)
>>> clips = np.random.default_rng(0).uniform(size=(2, *config.input_shape)).astype("float32")
>>> per_frame = stream_clips(KerasStepper(model, config), clips)
>>> per_frame.shape
(2, 4, 1)
>>> bool(np.allclose(per_frame[:, -1], model({"frames": clips}), atol=1e-5))
True
"""

import dataclasses
import os
import tempfile

import numpy as np

from train import export_formats

STREAMING_MODELS = ("convlstm",)
STREAMING_FORMATS = ("saved_model", "litert")


def check_streaming(model_name, format_name):
    """Refuses a model without a frame-by-frame form or a format the
    streaming export does not write."""
    if model_name not in STREAMING_MODELS:
        raise ValueError(
            f"--streaming: {model_name} has no frame-by-frame form; streaming models: "
            f"{', '.join(STREAMING_MODELS)}"
        )
    if format_name not in STREAMING_FORMATS:
        raise ValueError(
            f"--streaming exports {' or '.join(STREAMING_FORMATS)}, not {format_name}"
        )


def step_model(model, config):
    """The frame-by-frame Keras model holding `model`'s weights."""
    from models.convlstm import convlstm_step_from

    return convlstm_step_from(model, config)


def state_shapes(config):
    from models.convlstm import convlstm_state_shapes

    return convlstm_state_shapes(config)


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

    def __init__(self, model, config):
        self.config = config
        self.model = step_model(model, config)

    def init(self, batch_size):
        from models.convlstm import zero_states

        return zero_states(self.config, batch_size)

    def step(self, frames, states):
        outputs = self.model({"frame": frames, **states}, training=False)
        return (np.asarray(outputs["probabilities"]),
                {name: np.asarray(outputs[name]) for name in states})


class SavedModelStepper(Stepper):
    """A streaming SavedModel's `init_state` and `step` signatures."""

    def __init__(self, folder, threads=None):
        import tensorflow as tf

        loaded = tf.saved_model.load(folder)
        self.init_function = loaded.signatures["init_state"]
        self.step_function = loaded.signatures["step"]

    def init(self, batch_size):
        import tensorflow as tf

        states = self.init_function(batch_size=tf.constant(batch_size, tf.int32))
        return {name: value.numpy() for name, value in states.items()}

    def step(self, frames, states):
        import tensorflow as tf

        outputs = self.step_function(
            frame=tf.constant(frames), **{k: tf.constant(v) for k, v in states.items()}
        )
        return outputs["probabilities"].numpy(), {name: outputs[name].numpy() for name in states}

    def signature(self):
        specs = self.step_function.structured_input_signature[1]
        return (
            {key: (spec.shape.as_list(), spec.dtype.name) for key, spec in specs.items()},
            {key: (spec.shape.as_list(), spec.dtype.name)
             for key, spec in self.step_function.structured_outputs.items()},
        )


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


def export_saved_model(step, config, path):
    """Writes the step model with `init_state` and `step` signatures.

    `step` is added first: the first endpoint also becomes
    `serving_default`, and a server's default call should be a step.
    """
    import keras
    import tensorflow as tf

    shapes = state_shapes(config)
    # Variables are tracked from the endpoints' traces (see
    # `export_formats.export_saved_model`).
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


def write(format_name, model, config, folder):
    """Writes the streaming form of `model` into `folder` (see the module doc)."""
    step = step_model(model, config)
    if format_name == "saved_model":
        export_saved_model(step, config, folder)
        return export_formats.Written(folder, ["frame-by-frame step model"], None)
    path = os.path.join(folder, export_formats.FILE_NAMES["litert"])
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=folder) as scratch:
        source = os.path.join(scratch, "saved_model")
        export_saved_model(step, config, source)
        export_formats.convert_litert(source, path, signature_keys=("init_state", "step"))
    return export_formats.Written(path, ["frame-by-frame step model"], None)


def load_stepper(format_name, folder, threads=None):
    if format_name == "saved_model":
        return SavedModelStepper(folder, threads)
    return LiteRTStepper(os.path.join(folder, export_formats.FILE_NAMES["litert"]), threads)


def verify(model, config, stepper, batches, tolerance=export_formats.FLOAT_TOLERANCE):
    """Streams held-out clips through a reloaded export; the gate is the
    largest difference of the probabilities, per frame against the Keras
    step model and after the last frame against the clip model."""
    keras_stepper = KerasStepper(model, config)
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
        "gate": {
            "metric": "max_abs_diff[probabilities]", "value": value,
            "threshold": tolerance, "passed": bool(value <= tolerance),
        },
    }


def export_and_verify(format_name, model, config, folder, batches, threads=None):
    """(Written, stepper, report) of one streaming export into `folder`."""
    written = write(format_name, model, config, folder)
    stepper = load_stepper(format_name, folder, threads)
    return written, stepper, verify(model, config, stepper, batches)


# ---------------------------------------------------------------------------
# A video file, frame by frame.


@dataclasses.dataclass
class StreamResult:
    """Probabilities after every streamed frame of a video.

    Args:
        video: the file.
        fps: the video's frame rate (0 when the file gives none).
        frames: index of every streamed frame in the video.
        probabilities: [len(frames), K], the model's output after each
            frame (K = 1 for one sigmoid output).
        class_names: the run's class names.
    """

    video: str
    fps: float
    frames: np.ndarray
    probabilities: np.ndarray
    class_names: list

    @property
    def times(self):
        """Seconds of every streamed frame (None when the fps is unknown)."""
        if self.fps <= 0:
            return [None] * len(self.frames)
        return [round(float(index) / self.fps, 3) for index in self.frames]

    def to_json(self):
        return {
            "video": self.video,
            "fps": self.fps,
            "class_names": list(self.class_names),
            "frames": [
                {"frame": int(index), "time": time,
                 "probabilities": [round(float(p), 6) for p in row]}
                for index, time, row in zip(self.frames, self.times, self.probabilities)
            ],
        }


def video_frames(path, size, fps=None):
    """Yields `(frame index, RGB float32 frame [H, W, 3] in [0, 1])` of a
    video, decoded one at a time and resized to `size` (height, width) as
    the training data's frames are (`data.video`: area interpolation when
    shrinking). With `fps`, only the first frame of every 1/fps seconds.

    Raises:
        VideoError: the file cannot be read as a video.
    """
    import cv2

    from data.video import convert_frame, probe_video

    info = probe_video(path)
    capture = cv2.VideoCapture(os.fspath(path))
    try:
        index, last_slot = 0, -1
        while capture.grab():
            slot = int(index * fps / info.fps) if fps and info.fps > 0 else index
            if slot != last_slot:
                last_slot = slot
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    break
                rgb = convert_frame(frame, size)
                yield index, rgb.astype(np.float32) / 255.0
            index += 1
    finally:
        capture.release()


def stream_video(model, record, video, fps=None, stepper=None):
    """A trained streaming-capable run's probabilities after every frame
    of `video`, decoded and fed one frame at a time.

    Args:
        model: the run's clip model (`train.evaluate.load_run`).
        record: the run's `config.json` record.
        video: a video file.
        fps: stream this many frames per second of video (None: every
            frame). The clip model saw `T` frames spread over each training
            video, so a rate near `T / video length` matches its training.
        stepper: another runtime of the step model (e.g. a reloaded
            streaming export, `load_stepper`); default the Keras step model.

    Returns:
        `StreamResult`.

    Raises:
        ValueError: the run's model has no streaming form, its frames are
            not RGB, or `fps` is not positive.
        VideoError: the video cannot be read.
    """
    import models

    check_streaming(record["model"], "saved_model")
    if not os.path.isfile(video):
        raise FileNotFoundError(f"--video {video}: no such file")
    if fps is not None and not fps > 0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    config = models.get_family(record["model"]).config.with_overrides(**record["config"])
    channels = config.input_shape[-1]
    if channels != 3:
        raise ValueError(
            f"the run's model takes {channels}-channel frames; video frames are RGB (3 "
            "channels): stream a run trained on videos"
        )
    stepper = stepper or KerasStepper(model, config)
    states = stepper.init(1)
    indices, rows = [], []
    for index, frame in video_frames(video, tuple(config.input_shape[1:3]), fps):
        probabilities, states = stepper.step(frame[None], states)
        indices.append(index)
        rows.append(probabilities[0])
    if not rows:
        raise ValueError(f"{video}: no frame could be decoded")
    from data.video import probe_video

    return StreamResult(
        video=os.path.abspath(video),
        fps=probe_video(video).fps,
        frames=np.asarray(indices),
        probabilities=np.stack(rows),
        class_names=list(record.get("class_names") or []),
    )
