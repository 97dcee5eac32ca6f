"""What a trained model looked at: `train.predict --explain`.

A family declares what its explanation looks at
(`models.capabilities`, `Family.explain`); `explainer_for(model, record)`
turns that declaration into a callable from a batch of model inputs to
one explanation per example:

- `AttentionCurve` (bilstm_attention's attention-pooling weights, the
  keyframe transformer's global attention received): a weight per step
  that sums to 1 over the real steps, computed by the model's own layer;
- `AttentionMap` (the Perceiver's cross-attention): a heat map per token
  frame, scaled so the clip's largest value is 1;
- `GradCamTarget` (the convolutional classifiers): Grad-CAM (Selvaraju et
  al., 2017) of the predicted class on the declared feature map: the
  channels of the map weighted by the mean gradient of the class logit
  over time and space, summed, ReLU.

Heat maps are [T', H', W'] at the feature map's resolution, scaled so the
largest value of the clip is 1 (0 everywhere when the class has no positive
evidence); `resample` brings them to the model's frames. The logit of a
softmax layer is recomputed from its input and kernel (the softmax itself
saturates and would give vanishing gradients); a sigmoid output's logit is
the logit of class 1 and its negation for class 0. Gradients use
TensorFlow's GradientTape, as elsewhere in train/.

Rendering: `overlay_heat` colours a frame by a heat map (OpenCV's jet
colour map, 45% opacity), `overlay_curve` draws a frame's weight as a bar;
`write_strip` writes a PNG strip of up to `STRIP_FRAMES` frames (a curve
model's strip also plots the whole curve); `write_overlay_video` a VP9 MP4
that browsers play.
"""

import os

import cv2
import keras
import numpy as np
import tensorflow as tf
from keras import ops

import models
from common.files import pyplot, save_figure, write_json
from data.stream import FrameStream, rgb, short_side_size
from models.capabilities import AttentionCurve, AttentionMap, GradCamTarget
from train.serving.media import write_browser_video
from train.serving.prediction import FrameSpool, SpooledFrames

STRIP_FRAMES = 8
DISPLAY_SHORT_SIDE = 240
OVERLAY_FPS = 8.0
HEAT_OPACITY = 0.45


class Explainer:
    """Inputs -> one explanation per example.

    Attributes:
        kind: "curve" (a weight per step, [B, T]) or "heatmap" ([B, T', H', W']).
        method: what the values are, for the result and the plots.
    """

    kind = "curve"
    method = ""

    def __call__(self, inputs):
        raise NotImplementedError


def _numpy(value):
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def _scale_to_max(maps):
    """[B, ...] non-negative maps scaled so each example's maximum is 1."""
    maps = np.maximum(np.asarray(maps, np.float32), 0.0)
    peak = maps.reshape(len(maps), -1).max(axis=1)
    return maps / np.where(peak > 0, peak, 1.0).reshape(-1, *([1] * (maps.ndim - 1)))


class CurveExplainer(Explainer):
    """An `AttentionCurve`: the model's own weights per step."""

    def __init__(self, declared):
        self.declared = declared
        self.method = declared.method

    def __call__(self, inputs):
        return _numpy(self.declared.weights(inputs)).astype(np.float32)


class MapExplainer(Explainer):
    """An `AttentionMap`: heat maps per token frame, scaled to a peak of 1."""

    kind = "heatmap"

    def __init__(self, declared):
        self.declared = declared
        self.method = declared.method

    def __call__(self, inputs):
        return _scale_to_max(_numpy(self.declared.maps(inputs)))


class GradCam(Explainer):
    """Grad-CAM of the predicted class on a `GradCamTarget`'s feature map
    [B, T', H', W', C], through its output `Dense` layer's logit.

    Args:
        model: the classifier.
        target: the family's `GradCamTarget`.
    """

    kind = "heatmap"

    def __init__(self, model, target):
        try:
            self.output = model.get_layer(target.output_layer)
        except ValueError:
            raise ValueError(f"--explain: the model has no layer {target.output_layer!r}") from None
        self.sub = keras.Model(model.input, [target.features, self.output.input])
        self.grid = tuple(int(s) for s in target.features.shape[1:4])
        self.method = f"which regions raise the predicted class (Grad-CAM on {target.where})"

    def logits(self, pooled):
        logits = ops.matmul(pooled, ops.cast(self.output.kernel, pooled.dtype))
        logits = logits + ops.cast(self.output.bias, pooled.dtype)
        if self.output.units == 1:
            logits = ops.concatenate([-logits, logits], axis=-1)
        return logits

    def __call__(self, inputs, classes=None):
        with tf.GradientTape() as tape:
            features, pooled = self.sub(inputs, training=False)
            logits = self.logits(ops.cast(pooled, "float32"))
            chosen = ops.argmax(logits, axis=-1) if classes is None else ops.convert_to_tensor(classes)
            score = ops.sum(ops.take_along_axis(logits, ops.cast(chosen[:, None], "int32"), axis=1))
        gradients = tape.gradient(score, features)
        features = ops.cast(features, "float32")
        weights = ops.mean(ops.cast(gradients, "float32"), axis=(1, 2, 3), keepdims=True)
        return _scale_to_max(_numpy(ops.relu(ops.sum(features * weights, axis=-1))))


def explainer_for(model, record):
    """The `Explainer` of a run's model, from what its family declares.

    Raises:
        ValueError: the model has no explanation (the message says why).
    """
    declared = models.get_family(record["model"]).explain(model)
    if isinstance(declared, AttentionCurve):
        return CurveExplainer(declared)
    if isinstance(declared, AttentionMap):
        return MapExplainer(declared)
    if isinstance(declared, GradCamTarget):
        return GradCam(model, declared)
    raise TypeError(f"{record['model']}: unknown explanation {type(declared).__name__}")


def resample(maps, frames, height, width):
    """Heat maps [T', H', W'] -> [frames, height, width]: each frame takes the
    map of the time step it falls in, bilinearly resized.

    Example:

    >>> resample(np.arange(8, dtype="float32").reshape(2, 2, 2), 4, 2, 2)[:, 0, 0].tolist()
    [0.0, 0.0, 4.0, 4.0]
    """
    maps = np.asarray(maps, np.float32)
    steps = np.minimum((np.arange(frames) * len(maps)) // max(frames, 1), len(maps) - 1)
    return np.stack([
        cv2.resize(maps[step], (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
        for step in steps
    ])


def overlay_heat(frame, heat):
    """An RGB uint8 frame with `heat` ([H, W] in [0, 1]) laid over it in jet colours."""
    heat = cv2.resize(np.asarray(heat, np.float32), (frame.shape[1], frame.shape[0]))
    colours = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    mixed = (1 - HEAT_OPACITY) * frame.astype(np.float32) + HEAT_OPACITY * colours
    return np.clip(mixed, 0, 255).astype(np.uint8)


def overlay_curve(frame, weight, peak):
    """An RGB uint8 frame with its weight drawn as a bar along the bottom
    (full width at the curve's peak) and written as a number."""
    frame = np.ascontiguousarray(frame.copy())
    height, width = frame.shape[:2]
    bar = max(4, height // 16)
    share = 0.0 if peak <= 0 else float(weight) / peak
    frame[height - bar:] = (frame[height - bar:] * 0.4).astype(np.uint8)
    frame[height - bar:, :int(round(share * width))] = (255, 140, 0)
    cv2.putText(frame, f"{weight:.3f}", (4, height - bar - 4), cv2.FONT_HERSHEY_SIMPLEX,
                max(0.35, height / 480), (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def strip_positions(count, wanted=STRIP_FRAMES):
    """Up to `wanted` positions spread evenly over `count` frames."""
    return np.unique(np.linspace(0, count - 1, min(count, wanted)).astype(np.int64))


# Text in the strips is at least this many points: 10 pt at the strips' 100
# dpi is about 14 pixels, readable when the PNG is shown at its own size.
STRIP_FONT = 10


def write_strip(path, frames, times, title, heat=None, weights=None, curve_times=None):
    """A PNG strip: frames with their heat maps and a colour scale, or for a
    curve the whole curve over time, with the uniform weight drawn as a
    reference line, above frames marked with their weights.

    Text is `STRIP_FONT` points (about 14 pixels at the PNG's own size);
    each frame is drawn about 240 pixels wide."""
    plt = pyplot()
    chosen = strip_positions(len(frames))
    height, width = frames[0].shape[:2]
    columns = len(chosen)
    curve = weights is not None
    panel = 2.4  # inches per frame: 240 pixels at 100 dpi
    figure = plt.figure(figsize=(panel * columns + (1.2 if heat is not None else 0),
                                 panel * height / width + 0.9 + (2.2 if curve else 0)),
                        layout="constrained")
    grid = figure.add_gridspec(2 if curve else 1, columns,
                               height_ratios=[1.0, panel * height / width / 2.2] if curve else None)
    if curve:
        axis = figure.add_subplot(grid[0, :])
        axis.plot(curve_times, weights, color="tab:orange", linewidth=1.4, marker="o",
                  markersize=3, label="weight of each frame")
        axis.scatter(np.asarray(curve_times)[chosen], np.asarray(weights)[chosen], color="black",
                     s=14, zorder=3, label="frames shown below")
        uniform = 1.0 / max(1, int(np.count_nonzero(np.asarray(weights) > 0)) or len(weights))
        axis.axhline(uniform, color="grey", linestyle="--", linewidth=1,
                     label=f"uniform weight (1/{round(1 / uniform)}): no preference")
        axis.set_xlabel("time in the video (s)", fontsize=STRIP_FONT)
        axis.set_ylabel("weight", fontsize=STRIP_FONT)
        axis.tick_params(labelsize=STRIP_FONT)
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=STRIP_FONT - 1, loc="upper right", frameon=False)
    for column, index in enumerate(chosen):
        axis = figure.add_subplot(grid[-1, column])
        shown = overlay_heat(frames[index], heat[index]) if heat is not None else frames[index]
        axis.imshow(shown)
        axis.axis("off")
        caption = f"{times[index]:.2f} s"
        if curve:
            caption += f", weight {weights[index]:.3f}"
        axis.set_title(caption, fontsize=STRIP_FONT)
    if heat is not None:
        scale = plt.cm.ScalarMappable(cmap="jet", norm=plt.Normalize(0, 1))
        bar = figure.colorbar(scale, ax=figure.axes, fraction=0.02, pad=0.01, shrink=0.9)
        bar.set_label("relative evidence", fontsize=STRIP_FONT)
        bar.ax.tick_params(labelsize=STRIP_FONT)
    figure.suptitle(title, fontsize=STRIP_FONT + 1)
    save_figure(figure, path)
    return path


def write_overlay_video(path, frames):
    """RGB frames as a video browsers play; returns (codec, note)."""
    return write_browser_video(path, frames, OVERLAY_FPS, what="explanation video")


class DisplayFrames:
    """Display frames of one video by frame index, kept as JPEG on disk
    (`FrameSpool`), so an explanation of a long video holds none of them in
    memory. Use as a context manager, or `close()` it.

    `frames[index]` is the RGB frame of that frame index;
    `frames.sequence(indices)` a lazy sequence of several (`SpooledFrames`).
    """

    def __init__(self):
        self.spool = FrameSpool()
        self.position = {}

    def add(self, index, frame_rgb):
        self.position[int(index)] = self.spool.append(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))

    def __getitem__(self, index):
        return cv2.cvtColor(self.spool[self.position[int(index)]], cv2.COLOR_BGR2RGB)

    def __contains__(self, index):
        return int(index) in self.position

    def __len__(self):
        return len(self.position)

    def sequence(self, indices):
        return SpooledFrames(self.spool, [self.position[int(i)] for i in indices])

    def close(self):
        self.spool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_display_frames(video, indices, short_side=DISPLAY_SHORT_SIDE):
    """The wanted frames of a video, at most `short_side` on their short
    side, decoding the video once, as `DisplayFrames` (on disk)."""
    wanted = set(int(i) for i in indices)
    stream = FrameStream(video)
    size = short_side_size(stream.info.height, stream.info.width, short_side)
    found = DisplayFrames()
    try:
        for index, frame in stream:
            if index in wanted:
                found.add(index, rgb(frame, size))
    except BaseException:
        found.close()
        raise
    return found


def caption_frame(frame, text):
    """An RGB frame with `text` written on a dark band along its top."""
    frame = np.ascontiguousarray(frame.copy())
    height = frame.shape[0]
    scale = max(0.4, height / 400)
    band = int(22 * scale) + 4
    frame[:band] = (frame[:band] * 0.35).astype(np.uint8)
    cv2.putText(frame, text, (4, band - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return frame


def write_explanation(out, explainer, frames, times, values, title, extra=None, strip=None,
                      captions=None):
    """Writes `explanation.mp4`, `explanation.png` and `explanation.json`.

    Args:
        out: the result folder.
        explainer: the `Explainer` that made `values`.
        frames: [N] RGB display frames, in order: a list or a lazy
            sequence (`SpooledFrames`), read once per use.
        times: [N] their times in seconds.
        values: a weight per frame [N] (curves) or a heat map per frame [N, h, w].
        title: the strip's title.
        extra: more fields of `explanation.json`.
        strip: (frames, times, values) of the PNG strip, when it should show
            only part of them (a classifier's strip shows its best window).
        captions: per frame, text written on the explanation video (e.g.
            which window and its time span); default: the frame's time.

    Returns:
        (files, summary, notes): the written files by name, what the result
        records of the explanation, and notes.
    """
    files = {
        "explanation_video": os.path.join(out, "explanation.mp4"),
        "explanation_strip": os.path.join(out, "explanation.png"),
        "explanation": os.path.join(out, "explanation.json"),
    }
    values = np.asarray(values, np.float32)
    strip_frames, strip_times, strip_values = strip or (frames, times, values)
    strip_values = np.asarray(strip_values, np.float32)
    captions = captions or [f"{time:.2f} s" for time in times]
    # The video is rendered frame by frame as it is written: `frames` may be
    # a lazy sequence (`SpooledFrames`) of a long video's frames.
    if explainer.kind == "curve":
        peak = float(values.max()) if len(values) else 0.0

        def overlay(frame, value):
            return overlay_curve(frame, value, peak)

        write_strip(files["explanation_strip"], strip_frames, strip_times, title,
                    weights=strip_values, curve_times=strip_times)
    else:
        overlay = overlay_heat
        write_strip(files["explanation_strip"], strip_frames, strip_times, title,
                    heat=strip_values)

    def rendered():
        return (caption_frame(overlay(frame, value), text)
                for frame, value, text in zip(frames, values, captions))

    codec, note = write_overlay_video(files["explanation_video"], rendered)
    record = {"method": explainer.method, "kind": explainer.kind,
              "times": np.round(np.asarray(times, np.float64), 3).tolist(), **(extra or {})}
    if explainer.kind == "curve":
        record["weights"] = np.round(values, 5).tolist()
    else:
        record["heat_map_shape"] = list(values.shape)
        record["frame_heat"] = np.round(values.reshape(len(values), -1).mean(axis=1), 4).tolist()
    write_json(files["explanation"], record)
    summary = {"method": explainer.method, "kind": explainer.kind, "codec": codec}
    return files, summary, [note] if note else []


__all__ = [
    "CurveExplainer",
    "DisplayFrames",
    "Explainer",
    "GradCam",
    "MapExplainer",
    "explainer_for",
    "overlay_curve",
    "overlay_heat",
    "read_display_frames",
    "resample",
    "write_explanation",
    "write_strip",
]
