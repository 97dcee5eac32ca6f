"""A video file through a streaming model, one frame at a time.

`stream_video(model, record, video)`: a trained run's probabilities after
every frame of a video file, decoded one frame at a time (what
`train.predict --stream` prints), through the family's `Streaming` form
(see `train.formats.streaming`). After the last frame of a clip it gives
exactly the clip model's output; after frame `t`, the clip model's output
on the first `t` frames.
"""

import dataclasses
import os

import cv2
import numpy as np

import models
from data.video import convert_frame, probe_video
from train.formats.streaming import KerasStepper, streaming_form


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

    @property
    def columns(self):
        """The class each probability column is of: every class, or for one
        sigmoid output the positive class (the second name; the first
        class's probability is one minus it)."""
        names = list(self.class_names)
        width = int(np.shape(self.probabilities)[-1]) if np.size(self.probabilities) else len(names)
        if width == 1:
            return [names[1] if len(names) == 2 else "1"]
        return names if len(names) == width else [str(index) for index in range(width)]

    def to_json(self):
        result = {
            "video": self.video,
            "fps": self.fps,
            "class_names": list(self.class_names),
            "columns": self.columns,
            "frames": [
                {"frame": int(index), "time": time,
                 "probabilities": [round(float(p), 6) for p in row]}
                for index, time, row in zip(self.frames, self.times, self.probabilities)
            ],
        }
        if len(result["columns"]) == 1:
            negative = self.class_names[0] if len(self.class_names) == 2 else "0"
            result["note"] = (f"one sigmoid output: each probability is of class "
                              f"{result['columns'][0]!r}; {negative!r} has one minus it")
        return result


def video_frames(path, size, fps=None):
    """Yields `(frame index, RGB float32 frame [H, W, 3] in [0, 1])` of a
    video, decoded one at a time and resized to `size` (height, width) as
    the training data's frames are (`data.video`: area interpolation when
    shrinking). With `fps`, only the first frame of every 1/fps seconds.

    Raises:
        VideoError: the file cannot be read as a video.
    """
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
    streaming = streaming_form(record["model"], flag="--stream")
    if not os.path.isfile(video):
        raise FileNotFoundError(f"--video {video}: no such file")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"--stream-fps must be a number of frames per second > 0, got {fps}")
    config = models.get_family(record["model"]).config.with_overrides(**record["config"])
    channels = config.input_shape[-1]
    if channels != 3:
        raise ValueError(
            f"the run's model takes {channels}-channel frames; video frames are RGB (3 "
            "channels): stream a run trained on videos"
        )
    stepper = stepper or KerasStepper(model, config, streaming)
    states = stepper.init(1)
    indices, rows = [], []
    for index, frame in video_frames(video, tuple(config.input_shape[1:3]), fps):
        probabilities, states = stepper.step(frame[None], states)
        indices.append(index)
        rows.append(probabilities[0])
    if not rows:
        raise ValueError(f"{video}: no frame could be decoded")
    return StreamResult(
        video=os.path.abspath(video),
        fps=probe_video(video).fps,
        frames=np.asarray(indices),
        probabilities=np.stack(rows),
        class_names=list(record.get("class_names") or []),
    )
