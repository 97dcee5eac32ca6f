"""Features of the embedded synthetic videos, for the feature-sequence models.

The synthetic clips (`data/synthetic.py`) are written as real video files
(once, into a cache folder), and their features extracted with the same
writer and schema as `python -m data.extract`, by a fixed weightless frame
encoder (`BlockMeanExtractor`) instead of an ImageNet backbone. The cached
file is named by a hash of every setting the features depend on, so a
change of settings makes a new file and a rerun reads the old one.
"""

import contextlib
import hashlib
import json
import os
import sys

import numpy as np

from common.files import atomic_folder
from data.features import FeatureWriter, FrameFeatureExtractor, scale_lengths
from data.video import normalize_size, write_video

# The embedded videos: the synthetic clip size, RGB, written as MPEG-4.
SYNTHETIC_FRAMES = 16
SYNTHETIC_SIZE = (48, 64)
SYNTHETIC_GRID = (6, 8)
SYNTHETIC_CODEC = ("mp4v", ".mp4")
# Bumped whenever the synthetic features change for the same settings.
SYNTHETIC_CACHE_VERSION = 1


class BlockMeanExtractor(FrameFeatureExtractor):
    """A fixed, weightless frame encoder for the embedded synthetic videos.

    Each RGB frame is averaged over a grid of blocks (6 x 8 blocks of 8 x 8
    pixels for 48 x 64 frames), then each channel is standardised over the
    blocks (mean 0, standard deviation 1, plus 1 gray level in the
    denominator so a flat frame stays flat), giving 6 * 8 * 3 = 144 values
    per frame: where the bright shape is, independent of the clip's
    background and shape colours. Everything else, sampling frames from the
    video files and averaging the temporal scales, is the
    `FrameFeatureExtractor`'s.

    Why not a keras.applications backbone: offline there are no ImageNet
    weights, and with random weights the pooled features carry almost
    nothing about the motion. Measured on the 4-class motion set (chance
    0.25): random EfficientNetB0 features have magnitude 1e-7 and a linear
    probe on them reaches 0.41-0.52; a small BiLSTM on random ResNet50
    (32 x 32) features stays at 0.25 after 20 epochs; on these block
    features the default command reaches 0.81-0.86.

    Args:
        size: (height, width) the frames are read at.
        grid: (rows, columns) of blocks; must divide `size`.

    Example:

    >>> extractor = BlockMeanExtractor((48, 64), (6, 8))
    >>> extractor.frame_features(np.zeros((2, 48, 64, 3), np.uint8)).shape
    (2, 144)
    """

    def __init__(self, size=SYNTHETIC_SIZE, grid=SYNTHETIC_GRID):
        # No Keras backbone to build: the parent's __init__ is not called.
        self.size = normalize_size(size)
        self.grid = tuple(int(g) for g in grid)
        if self.size[0] % self.grid[0] or self.size[1] % self.grid[1]:
            raise ValueError(f"grid {self.grid} must divide the frame size {self.size}")
        self.batch_size = 1
        self.model = None
        self.feature_dim = self.grid[0] * self.grid[1] * 3

    @property
    def name(self):
        return f"block_mean_{self.grid[0]}x{self.grid[1]}"

    def frame_features(self, frames):
        frames = np.asarray(frames, np.float32)
        (rows, cols), (height, width) = self.grid, self.size
        blocks = frames.reshape(len(frames), rows, height // rows, cols, width // cols, 3)
        blocks = blocks.mean(axis=(2, 4))
        blocks -= blocks.mean(axis=(1, 2), keepdims=True)
        blocks /= blocks.std(axis=(1, 2), keepdims=True) + 1.0
        return blocks.reshape(len(frames), -1).astype(np.float32)


def synthetic_settings(count, task, num_classes, data_seed):
    """Everything the synthetic feature file depends on.

    Args:
        count: training videos (validation and test get a quarter and a
            third of it).
        task: what the label encodes, "motion" or "shape".
        num_classes: classes of the task to use.
        data_seed: seed of the videos.
    """
    count = int(count)
    if count < 2:
        raise ValueError(f"--synthetic-clips must be >= 2, got {count}")
    return {
        "version": SYNTHETIC_CACHE_VERSION,
        "sizes": {"train": count, "val": max(count // 4, 2), "test": max(count // 3, 2)},
        "task": task,
        "num_classes": int(num_classes),
        "seed": int(data_seed),
        "frames": SYNTHETIC_FRAMES,
        "size": list(SYNTHETIC_SIZE),
        "grid": list(SYNTHETIC_GRID),
        "multi_scale": True,
        "scale_source": "sampled",
        "codec": SYNTHETIC_CODEC[0],
    }


def synthetic_feature_file(settings, cache):
    """The cached feature file of the embedded videos, made if missing.

    Args:
        settings: from `synthetic_settings`.
        cache: the folder of cached files.

    Returns:
        (path, settings): the complete HDF5 file and what it was made from.
    """
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(cache, f"features-{key}.h5")
    settings = dict(settings, cache=os.path.abspath(path))
    if os.path.isfile(path):
        return path, settings
    os.makedirs(cache, exist_ok=True)
    # Two runs started together on the embedded data wait for one another
    # here instead of the second being refused by the extraction's lock.
    with _waiting_lock(path + ".make.lock"):
        if not os.path.isfile(path):
            print(f"extracting features of the embedded synthetic videos into {path}",
                  file=sys.stderr)
            videos = render_synthetic_videos(os.path.join(cache, f"videos-{key}"), settings)
            extract_synthetic_features(videos, path, settings)
    return path, settings


@contextlib.contextmanager
def _waiting_lock(path):
    """An exclusive `flock` on `path`, waited for (no lock where the
    platform has no flock)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def render_synthetic_videos(folder, settings):
    """Writes the synthetic splits as video files (once) and lists them.

    The folder is built under a temporary name and renamed into place, so a
    folder under the final name is always complete.

    Returns:
        A `data.datasets.VideoDataset` with the splits marked.
    """
    # TensorFlow (tf.data): only when the videos are written.
    from data import synthetic
    from data.datasets import VideoDataset

    frames, (height, width) = settings["frames"], settings["size"]
    splits, class_names = synthetic.synthetic_splits(
        (frames, height, width, 3), settings["sizes"], num_classes=settings["num_classes"],
        task=settings["task"], seed=settings["seed"],
    )
    fourcc, extension = SYNTHETIC_CODEC
    paths, labels, names = [], [], []
    for split, (clips, split_labels) in splits.items():
        for index, (clip, label) in enumerate(zip(clips, split_labels)):
            paths.append(os.path.join(folder, split, f"{split}_{index:04d}{extension}"))
            labels.append(int(label))
            names.append(split)
    if not os.path.isdir(folder):
        with atomic_folder(folder) as temporary:
            position = 0
            for split, (clips, _) in splits.items():
                os.makedirs(os.path.join(temporary, split))
                for clip in clips:
                    target = paths[position].replace(folder, temporary, 1)
                    write_video(target, clip, fps=10.0, fourcc=fourcc)
                    position += 1
    return VideoDataset(
        tuple(os.path.abspath(p) for p in paths), tuple(labels), tuple(class_names), tuple(names)
    )


def extract_synthetic_features(videos, out, settings):
    """One row per video into `out`, through the extractor's writer.

    Resumes an interrupted extraction (`out.partial`) and renames the file
    into place only when every video is in it.
    """
    extractor = BlockMeanExtractor(settings["size"], settings["grid"])
    writer_settings = {
        "backbone": extractor.name,
        "weights": "none",
        "frames": settings["frames"],
        "size": list(settings["size"]),
        "multi_scale": settings["multi_scale"],
        "scale_source": settings["scale_source"],
        "steps": max(scale_lengths(settings["frames"], settings["multi_scale"])),
    }
    writer = FeatureWriter(
        out, writer_settings, videos.class_names, extractor.feature_dim,
        log=lambda line: print(line, file=sys.stderr),
    )
    try:
        done, _ = writer.open()
        for path, label, split in zip(videos.paths, videos.labels, videos.splits):
            if path in done:
                continue
            sequence, _ = extractor.video_features(
                path, settings["frames"], settings["multi_scale"], settings["scale_source"]
            )
            writer.append(sequence, label, path, split)
        writer.finish()
    finally:
        writer.close()
    return out
