"""Keyframes of one video from a trained frame-scoring run.

`predict_keyframes(run, video)` samples frames uniformly over the video,
turns them into the model's input the way the run's training data was made,
scores every sampled frame, and keeps the best-scored `ratio` of them as
keyframes (at least one), listed in time order with frame index, timestamp
and score. It writes `keyframes.json`, a contact sheet of the keyframes and
a plot of the score over time with the keyframes marked.

How frames become model input:

- frames-mode runs take the frames resized to the model's frame size;
- features-mode runs trained on the embedded synthetic set use the same
  projection features (`data.summarization.frame_features`) at the frame
  size recorded in the run;
- features-mode runs trained on a feature file need the backbone that made
  those features (`backbone=`); its feature size must match the model's.
  The public TVSum/SumMe files hold GoogLeNet features, which no
  keras.applications backbone reproduces.
"""

import math
import os

import numpy as np

from common.files import pyplot, save_figure, write_json

DISPLAY_WIDTH = 240


def model_inputs(record, config, video, num_frames, backbone=None, backbone_weights=None, run=""):
    """Samples the video and builds the model's inputs.

    Returns:
        (inputs dict with a batch of one, frame indices [T], VideoInfo).
    """
    from data import summarization
    from data.video import read_frames, sample_frame_indices

    if num_frames < 1:
        raise ValueError(f"--frames must be >= 1, got {num_frames}")

    def sampler(count):
        return np.unique(sample_frame_indices(count, min(num_frames, count)))

    data = record.get("data", {})
    if config.input_mode == "frames":
        frames, indices, info = read_frames(video, sampler, tuple(config.input_shape[1:3]))
        values, name = frames.astype(np.float32), "frames"
    elif data.get("features") == "synthetic_projection":
        frames, indices, info = read_frames(video, sampler, tuple(data["frame_size"]))
        values = summarization.frame_features(frames, feature_dim=config.input_shape[-1])
        name = "features"
    else:
        if backbone is None:
            raise ValueError(
                f"--run {run} was trained on features from {data.get('data', 'a file')}; "
                "give --backbone (and --backbone-weights) of the extractor that made them"
            )
        from data.features import FrameFeatureExtractor

        extractor = FrameFeatureExtractor(backbone, weights=backbone_weights, size=(224, 224))
        if extractor.feature_dim != config.input_shape[-1]:
            raise ValueError(
                f"--backbone {backbone} gives {extractor.feature_dim}-d features but the "
                f"model expects {config.input_shape[-1]}-d features"
            )
        frames, indices, info = read_frames(video, sampler, extractor.size)
        values, name = extractor.frame_features(frames), "features"
    inputs = {name: values[None], "mask": np.ones((1, len(indices)), dtype=bool)}
    return inputs, indices, info


def select_keyframes(scores, ratio):
    """Positions of the best `ratio` of the scores (at least one), in order."""
    scores = np.asarray(scores, dtype=np.float64)
    count = max(1, int(math.floor(ratio * scores.size)))
    return np.sort(np.argsort(-scores, kind="stable")[:count])


def predict_keyframes(model, record, video, out, ratio=0.15, num_frames=60, backbone=None,
                      backbone_weights=None, run=""):
    """Scores one video and writes its keyframes, contact sheet and plot.

    Returns:
        The JSON-able result: video, fps, frame count, the scored frames,
        the keyframes (frame, time in seconds, score) and the written files.
    """
    import models

    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"--ratio must be in (0, 1], got {ratio}")
    if not os.path.isfile(video):
        raise FileNotFoundError(f"--video {video}: no such file")
    config = models.get_family(record["model"]).config.with_overrides(**record["config"])
    inputs, indices, info = model_inputs(
        record, config, video, num_frames, backbone, backbone_weights, run
    )
    scores = np.asarray(model.predict_on_batch(inputs))[0]
    chosen = select_keyframes(scores, ratio)
    fps = info.fps if info.fps > 0 else None

    def seconds(frame):
        return round(float(frame) / fps, 3) if fps else None

    os.makedirs(out, exist_ok=True)
    keyframes = [
        {"frame": int(indices[i]), "time": seconds(indices[i]), "score": round(float(scores[i]), 4)}
        for i in chosen
    ]
    files = {
        "keyframes": os.path.join(out, "keyframes.json"),
        "contact_sheet": os.path.join(out, "contact_sheet.png"),
        "score_plot": os.path.join(out, "scores.png"),
    }
    write_contact_sheet(video, keyframes, info, files["contact_sheet"])
    write_score_plot(indices, scores, chosen, fps, files["score_plot"])
    result = {
        "video": os.path.abspath(video),
        "run": os.path.abspath(run) if run else None,
        "fps": info.fps,
        "frame_count": info.frame_count,
        "frames_scored": int(len(indices)),
        "ratio": ratio,
        "keyframes": keyframes,
        "files": files,
    }
    write_json(files["keyframes"], result)
    return result


def write_contact_sheet(video, keyframes, info, path):
    """A grid of the keyframes at a readable size, captioned."""
    from data.video import read_frames

    width = DISPLAY_WIDTH
    height = max(1, int(round(width * info.height / max(info.width, 1))))
    frames, _, _ = read_frames(video, [k["frame"] for k in keyframes], (height, width))
    columns = min(5, len(keyframes))
    rows = math.ceil(len(keyframes) / columns)
    plt = pyplot()
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns, rows * (2.6 * height / width + 0.45) + 0.3),
        squeeze=False,
    )
    for axis in axes.ravel():
        axis.axis("off")
    for axis, frame, keyframe in zip(axes.ravel(), frames, keyframes):
        axis.imshow(frame)
        when = f"{keyframe['time']:.2f}s" if keyframe["time"] is not None else "?"
        axis.set_title(f"#{keyframe['frame']}  {when}  {keyframe['score']:.2f}", fontsize=8)
    figure.suptitle(os.path.basename(video), fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def write_score_plot(indices, scores, chosen, fps, path):
    """Importance over time, the keyframes marked."""
    plt = pyplot()
    x = np.asarray(indices, dtype=np.float64) / fps if fps else np.asarray(indices)
    figure, axis = plt.subplots(figsize=(8, 3))
    axis.plot(x, scores, color="tab:blue", linewidth=1.2, label="importance")
    axis.scatter(x[chosen], np.asarray(scores)[chosen], color="tab:red", zorder=3, s=18,
                 label="keyframes")
    for position in x[chosen]:
        axis.axvline(position, color="tab:red", alpha=0.15, linewidth=1)
    axis.set_xlabel("time (s)" if fps else "frame")
    axis.set_ylabel("score")
    axis.set_ylim(0, 1)
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
