"""Run folders and real videos for the prediction tests.

`make_run` writes a run folder the way `train.run` leaves one (a model
saved as `best.keras`, `config.json`, `class_names.json`) around a tiny
model with random weights, without training: prediction only needs the
files. `write_scene_video` writes a real video of distinct scenes.
"""

import json
import os

import cv2
import numpy as np

import models

# Background colours (RGB) of the scenes, far apart in hue.
SCENE_COLOURS = [(200, 40, 40), (40, 170, 60), (40, 60, 200), (220, 200, 40), (150, 40, 170)]


def make_run(folder, model_name, data, class_names=None, preset="tiny", **overrides):
    """A run folder holding a freshly built `model_name` model.

    Args:
        folder: the run folder to write.
        model_name: a registered model.
        data: what the run records about its data (`config.json` "data").
        class_names: the run's classes (default: `c0`, `c1`, ... as many as
            the model tells apart, none for a model of scores).
        preset, overrides: the model's config.
    """
    from train.run_folder import model_classes

    config = models.get_config(model_name, preset, **overrides)
    model = models.build_from_config(model_name, config)
    if class_names is None:
        class_names = [f"c{index}" for index in range(model_classes(model) or 0)]
    os.makedirs(folder, exist_ok=True)
    model.save(os.path.join(folder, "best.keras"))
    record = {
        "model": model_name, "preset": preset, "seed": 0, "config": config.to_dict(),
        "data": data, "data_options": {},
    }
    with open(os.path.join(folder, "config.json"), "w") as file:
        json.dump(record, file)
    with open(os.path.join(folder, "class_names.json"), "w") as file:
        json.dump(list(class_names), file)
    return os.fspath(folder)


def keyframe_run(folder):
    """A features-mode keyframe_transformer run on the embedded set's features."""
    return make_run(
        folder, "keyframe_transformer",
        {"data": "synthetic", "features": "synthetic_projection", "frame_size": [32, 32],
         "feature_dim": 12},
    )


def scene_frames(seconds=10.0, fps=25.0, scenes=5, size=(144, 256), seed=0):
    """RGB frames [n, H, W, 3] of `scenes` equal scenes, each a plain
    background of its own colour with a disk moving across it, and the first
    frame of every scene."""
    rng = np.random.default_rng(seed)
    height, width = size
    count = int(round(seconds * fps))
    starts = [int(round(i * count / scenes)) for i in range(scenes)]
    frames = np.empty((count, height, width, 3), np.uint8)
    for index in range(count):
        scene = max(i for i, start in enumerate(starts) if start <= index)
        frame = np.empty((height, width, 3), np.uint8)
        frame[...] = SCENE_COLOURS[scene % len(SCENE_COLOURS)]
        progress = (index - starts[scene]) / max(1, count / scenes)
        centre = (int(width * (0.15 + 0.7 * progress)), int(height * (0.3 + 0.4 * (scene % 2))))
        cv2.circle(frame, centre, height // 8, (245, 245, 245), -1)
        frames[index] = np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)
    return frames, starts


def write_scene_video(path, seconds=10.0, fps=25.0, scenes=5, size=(144, 256)):
    """Writes a scene video (MPEG-4, like a phone's file); returns the first
    frame of every scene."""
    from data.video import write_video

    frames, starts = scene_frames(seconds, fps, scenes, size)
    write_video(path, frames, fps=fps)
    return starts
