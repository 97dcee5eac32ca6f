"""What a trained model looked at: `train.predict --explain`.

`explainer_for(model, record)` gives, per model family, a callable from a
batch of model inputs to one explanation per example:

- bilstm_attention: the attention-pooling weights, a curve over the
  sequence's steps (they sum to 1 over the real steps; padding gets 0);
- keyframe_transformer: the attention every frame receives in the global
  attention layer (`global_attention`), averaged over its heads and over the
  real query frames: a curve over the sampled frames that sums to 1;
- r2plus1d_perceiver: the Perceiver's cross-attention from its latents to
  the (T', H', W') tokens of the backbone's last feature map, averaged over
  heads, latents and cross-attention blocks: a heat map per token frame;
- convlstm and r2plus1d: Grad-CAM (Selvaraju et al., 2017) of the predicted
  class on a late feature map: the channels of the map weighted by the mean
  gradient of the class logit over time and space, summed, ReLU. r2plus1d
  uses the backbone's output [T', H', W', C] (the average pool's input);
  convlstm the input of its last ConvLSTM2D layer, the latest map that
  still has a time axis (the last layer returns only its final state). A
  one-layer ConvLSTM has no such map (only its input frames), so it has no
  explanation.

Heat maps are [T', H', W'] at the feature map's resolution, scaled so the
largest value of the clip is 1 (0 everywhere when the class has no positive
evidence); `resample` brings them to the model's frames. The logit of a
softmax layer is recomputed from its input and kernel (the softmax itself
saturates and would give vanishing gradients); a sigmoid output's logit is
the logit of class 1 and its negation for class 0.

Everything is model surgery on the saved functional model: sub-models from
the model's inputs to intermediate tensors (`layer.input`), then the
layers' own weights (`keras.ops`), with TensorFlow's GradientTape for the
gradients of Grad-CAM, as elsewhere in train/.

Rendering: `overlay_heat` colours a frame by a heat map (OpenCV's jet
colour map, 45% opacity), `overlay_curve` draws a frame's weight as a bar;
`write_strip` writes a PNG strip of up to `STRIP_FRAMES` frames (a curve
model's strip also plots the whole curve); `write_overlay_video` a VP9 MP4
that browsers play.
"""

import os

import cv2
import numpy as np

from common.files import pyplot, save_figure, write_json

STRIP_FRAMES = 8
DISPLAY_SHORT_SIDE = 240
OVERLAY_FPS = 8.0
HEAT_OPACITY = 0.45
CURVE_FAMILIES = ("bilstm_attention", "keyframe_transformer")


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


def _layer(model, name, family):
    try:
        return model.get_layer(name)
    except ValueError:
        raise ValueError(f"the {family} model has no layer {name!r} to explain with") from None


def _first_input(layer):
    """The tensor a layer was called on (its first argument)."""
    value = layer.input
    return value[0] if isinstance(value, (list, tuple)) else value


def _numpy(value):
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


class AttentionPoolingWeights(Explainer):
    """bilstm_attention: the softmax weights of its `attention_pooling` layer,
    recomputed from the layer's input and its own scoring layers exactly as
    `AttentionPooling.call` does (masked softmax over the real steps)."""

    method = "attention-pooling weights"

    def __init__(self, model):
        import keras

        self.pooling = _layer(model, "attention_pooling", "bilstm_attention")
        self.sub = keras.Model(model.input, _first_input(self.pooling))

    def __call__(self, inputs):
        from keras import ops

        values = self.sub(inputs, training=False)
        scores = ops.squeeze(self.pooling.score(self.pooling.hidden(values)), axis=-1)
        mask = ops.cast(inputs["mask"], "bool")
        scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        weights = ops.exp(scores - ops.max(scores, axis=1, keepdims=True))
        weights = weights * ops.cast(mask, weights.dtype)
        weights = weights / ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1e-9)
        return _numpy(weights).astype(np.float32)


class GlobalAttentionReceived(Explainer):
    """keyframe_transformer: the attention each frame receives in the
    `global_attention` layer, recomputed with its MultiHeadAttention and the
    mask `TemporalSelfAttention.call` builds (real keys, or itself)."""

    method = "global attention received (mean over heads and real query frames)"

    def __init__(self, model):
        import keras

        self.layer = _layer(model, "global_attention", "keyframe_transformer")
        self.sub = keras.Model(model.input, _first_input(self.layer))

    def __call__(self, inputs):
        from keras import ops

        values = self.sub(inputs, training=False)
        mask = ops.cast(inputs["mask"], "bool")
        steps = ops.arange(ops.shape(values)[1])
        itself = ops.expand_dims(ops.equal(steps[:, None], steps[None, :]), 0)
        attention_mask = ops.logical_or(ops.expand_dims(mask, 1), itself)
        _, scores = self.layer.attention(
            values, values, attention_mask=attention_mask, return_attention_scores=True,
            training=False,
        )  # [B, heads, queries, keys]
        queries = ops.cast(mask, scores.dtype)[:, None, :, None]
        received = ops.sum(scores * queries, axis=(1, 2))
        received = received * ops.cast(mask, received.dtype)
        received = received / ops.maximum(ops.sum(received, axis=1, keepdims=True), 1e-9)
        return _numpy(received).astype(np.float32)


def _scale_to_max(maps):
    """[B, ...] non-negative maps scaled so each example's maximum is 1."""
    maps = np.maximum(np.asarray(maps, np.float32), 0.0)
    peak = maps.reshape(len(maps), -1).max(axis=1)
    return maps / np.where(peak > 0, peak, 1.0).reshape(-1, *([1] * (maps.ndim - 1)))


class PerceiverCrossAttention(Explainer):
    """r2plus1d_perceiver: cross-attention from the latents to the tokens,
    replayed block by block through the `perceiver` layer's own sublayers as
    `Perceiver.call` runs them."""

    kind = "heatmap"
    method = "Perceiver cross-attention (mean over heads, latents and cross blocks)"

    def __init__(self, model):
        import keras

        self.perceiver = _layer(model, "perceiver", "r2plus1d_perceiver")
        if not self.perceiver.cross_blocks:
            raise ValueError(
                "--explain: this r2plus1d_perceiver has no cross-attention (cross_blocks=0: "
                "self-attention on the tokens), so it has no explanation"
            )
        grid = _layer(model, "tokens", "r2plus1d_perceiver").input
        self.grid = tuple(int(s) for s in grid.shape[1:4])
        self.sub = keras.Model(model.input, _first_input(self.perceiver))

    def __call__(self, inputs):
        from keras import ops

        perceiver = self.perceiver
        tokens = self.sub(inputs, training=False)
        batch = ops.shape(tokens)[0]
        x = ops.broadcast_to(
            ops.cast(perceiver.latents, tokens.dtype)[None],
            (batch, perceiver.num_latents, perceiver.latent_dim),
        )
        per_cross = perceiver.self_blocks // perceiver.cross_blocks
        maps = []
        for index, cross in enumerate(perceiver.cross_layers):
            normed = cross.token_norm(tokens)
            _, scores = cross.attention(
                cross.latent_norm(x), normed, normed, return_attention_scores=True, training=False
            )  # [B, heads, latents, tokens]
            maps.append(ops.mean(scores, axis=(1, 2)))
            x = cross(x, tokens, training=False)
            for block in perceiver.self_layers[index * per_cross:(index + 1) * per_cross]:
                x = block(x, training=False)
        attention = _numpy(ops.mean(ops.stack(maps), axis=0))
        return _scale_to_max(attention.reshape(-1, *self.grid))


class GradCam(Explainer):
    """Grad-CAM of the predicted class on `features`, a tensor of the model's
    graph [B, T', H', W', C], through the `probabilities` Dense layer's logit.

    Args:
        model: the classifier.
        features: the feature map (a symbolic tensor of `model`).
        where: the map's name, for `method`.
    """

    kind = "heatmap"

    def __init__(self, model, features, where):
        import keras

        self.output = _layer(model, "probabilities", model.name)
        self.sub = keras.Model(model.input, [features, self.output.input])
        self.grid = tuple(int(s) for s in features.shape[1:4])
        self.method = f"Grad-CAM of the predicted class on {where}"

    def logits(self, pooled):
        from keras import ops

        logits = ops.matmul(pooled, ops.cast(self.output.kernel, pooled.dtype))
        logits = logits + ops.cast(self.output.bias, pooled.dtype)
        if self.output.units == 1:
            logits = ops.concatenate([-logits, logits], axis=-1)
        return logits

    def __call__(self, inputs, classes=None):
        import tensorflow as tf
        from keras import ops

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
    """The `Explainer` of a run's model.

    Raises:
        ValueError: the model has no explanation.
    """
    name = record["model"]
    if name == "bilstm_attention":
        return AttentionPoolingWeights(model)
    if name == "keyframe_transformer":
        return GlobalAttentionReceived(model)
    if name == "r2plus1d_perceiver":
        return PerceiverCrossAttention(model)
    if name == "r2plus1d":
        return GradCam(model, _layer(model, "average_pool", name).input,
                       "the backbone's last feature map")
    if name == "convlstm":
        stack = [layer for layer in model.layers if layer.name.startswith("conv_lstm_")]
        if len(stack) < 2:
            raise ValueError(
                "--explain: a one-layer convlstm has no feature map over time before its last "
                "state, so it has no explanation"
            )
        last = stack[-1]
        return GradCam(model, _first_input(last), f"the input of {last.name}")
    raise ValueError(f"--explain: model {name!r} has no explanation")


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


def write_strip(path, frames, times, title, heat=None, weights=None, curve_times=None):
    """A PNG strip: frames with their heat maps, or for a curve the whole
    curve over time above frames marked with their weights."""
    plt = pyplot()
    chosen = strip_positions(len(frames))
    height, width = frames[0].shape[:2]
    columns = len(chosen)
    curve = weights is not None
    figure = plt.figure(figsize=(1.9 * columns, 1.9 * height / width + 0.5 + (1.8 if curve else 0)))
    grid = figure.add_gridspec(2 if curve else 1, columns,
                               height_ratios=[1.0, 1.9 * height / width / 1.8] if curve else None)
    if curve:
        axis = figure.add_subplot(grid[0, :])
        axis.plot(curve_times, weights, color="tab:orange", linewidth=1.2, marker="o", markersize=2)
        axis.scatter(np.asarray(curve_times)[chosen], np.asarray(weights)[chosen], color="black",
                     s=10, zorder=3)
        axis.set_xlabel("time (s)", fontsize=8)
        axis.set_ylabel("weight", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.set_ylim(bottom=0)
    for column, index in enumerate(chosen):
        axis = figure.add_subplot(grid[-1, column])
        image = overlay_heat(frames[index], heat[index]) if heat is not None else frames[index]
        axis.imshow(image)
        axis.axis("off")
        caption = f"{times[index]:.2f}s"
        if curve:
            caption += f"  {weights[index]:.3f}"
        axis.set_title(caption, fontsize=7)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
    return path


def write_overlay_video(path, frames):
    """RGB frames as a VP9 MP4 (browsers play it); returns (path, codec, note)."""
    from data.video import write_video
    from train.tasks.keyframes import FALLBACK_FOURCC, SUMMARY_FOURCC

    try:
        write_video(path, frames, fps=OVERLAY_FPS, fourcc=SUMMARY_FOURCC)
        return SUMMARY_FOURCC, None
    except RuntimeError:
        write_video(path, frames, fps=OVERLAY_FPS, fourcc=FALLBACK_FOURCC)
        return FALLBACK_FOURCC, ("this OpenCV has no VP9 encoder; the explanation video is "
                                 "MPEG-4 Part 2, which browsers do not play")


def read_frames(video, indices, short_side=DISPLAY_SHORT_SIDE):
    """{index: RGB uint8 frame at most `short_side` on its short side} for
    the wanted frame indices, decoding the video once."""
    from data.stream import FrameStream, rgb, short_side_size

    wanted = set(int(i) for i in indices)
    stream = FrameStream(video)
    size = short_side_size(stream.info.height, stream.info.width, short_side)
    found = {}
    for index, frame in stream:
        if index in wanted:
            found[index] = rgb(frame, size)
    return found


def window_positions(record):
    """`frames in a window -> the window's frame index of every model step`,
    the way the run's window encoder samples: a clips run samples its frame
    count uniformly over the window; a features run's step s is the frame of
    step s of its longest temporal scale (the shorter scales averaged into
    the first steps come from frames of the same window). With features
    rescaled from the sampled frames (`scale_source` "sampled"), that is
    sampled frame `rescale_indices(frames, longest)[s]`.

    Example:

    >>> window_positions({"model": "convlstm", "config": {"input_shape": [4, 8, 8, 1]}})(10)
    array([0, 3, 6, 9])
    """
    import models
    from data.video import sample_frame_indices

    family = models.get_family(record["model"])
    if type(family.config).input_kind == "features":
        from data.features import rescale_indices, scale_lengths
        from train.tasks.features import extraction_settings

        settings = extraction_settings(record)
        sampled = settings["frames"]
        longest = max(scale_lengths(sampled, settings["multi_scale"]))
        if settings["scale_source"] == "sampled":
            steps = rescale_indices(sampled, longest)
            return lambda frames: sample_frame_indices(frames, sampled)[steps]
        return lambda frames: sample_frame_indices(frames, longest)
    config = family.config.with_overrides(**record["config"])
    count = config.input_shape[0]
    return lambda frames: sample_frame_indices(frames, count)


def write_explanation(out, explainer, frames, times, values, title, extra=None, strip=None):
    """Writes `explanation.mp4`, `explanation.png` and `explanation.json`.

    Args:
        out: the result folder.
        explainer: the `Explainer` that made `values`.
        frames: [N] RGB display frames, in order.
        times: [N] their times in seconds.
        values: a weight per frame [N] (curves) or a heat map per frame [N, h, w].
        title: the strip's title.
        extra: more fields of `explanation.json`.
        strip: (frames, times, values) of the PNG strip, when it should show
            only part of them (a classifier's strip shows its best window).

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
    if explainer.kind == "curve":
        peak = float(values.max()) if len(values) else 0.0
        rendered = [overlay_curve(frame, weight, peak) for frame, weight in zip(frames, values)]
        write_strip(files["explanation_strip"], strip_frames, strip_times, title,
                    weights=strip_values, curve_times=strip_times)
    else:
        rendered = [overlay_heat(frame, heat) for frame, heat in zip(frames, values)]
        write_strip(files["explanation_strip"], strip_frames, strip_times, title,
                    heat=strip_values)
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
    "AttentionPoolingWeights",
    "Explainer",
    "GlobalAttentionReceived",
    "GradCam",
    "PerceiverCrossAttention",
    "explainer_for",
    "overlay_curve",
    "overlay_heat",
    "read_frames",
    "resample",
    "write_explanation",
    "write_strip",
]
