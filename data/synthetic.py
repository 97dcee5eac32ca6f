"""The embedded default data: deterministic synthetic videos.

Every clip is one shape moving over a noisy background and bouncing off the
frame's edges. The label is the kind of motion (`task="motion"`, which a
model can only tell from several frames) or the kind of shape
(`task="shape"`, visible in one frame). The same arguments always give the
same clips, byte for byte.

Example:

>>> clips, labels, names = synthetic_clips(4, frames=8, height=32, width=32)
>>> clips.shape, clips.dtype, names
((4, 8, 32, 32, 3), dtype('uint8'), ['horizontal', 'vertical'])
"""

import numpy as np

MOTIONS = ("horizontal", "vertical", "diagonal", "anti_diagonal", "circular", "static")
SHAPES = ("square", "disk", "triangle", "cross")

# The defaults of the embedded data set: small enough that the README's main
# command trains convlstm in minutes on 2 CPU cores.
DEFAULT_CLIP_SHAPE = (16, 48, 64, 4)
DEFAULT_SPLIT_SIZES = {"train": 192, "val": 48, "test": 64}


TASKS = {"motion": MOTIONS, "shape": SHAPES}


def class_names(num_classes: int, task: str = "motion"):
    """The class names of a task; binary tasks keep the first two."""
    pool = TASKS.get(task)
    if pool is None:
        raise ValueError(f"task must be 'motion' or 'shape', got {task!r}")
    count = max(num_classes, 2)
    if count > len(pool):
        raise ValueError(
            f"task {task!r} has at most {len(pool)} classes, asked for {num_classes}"
        )
    return list(pool[:count])


def synthetic_clips(
    num_clips: int,
    frames: int = 16,
    height: int = 48,
    width: int = 64,
    channels: int = 3,
    num_classes: int = 2,
    task: str = "motion",
    seed: int = 0,
):
    """Generates labelled clips.

    Args:
        num_clips: number of clips.
        frames, height, width, channels: the clip shape (any sizes >= 1;
            height and width >= 8).
        num_classes: number of classes; 1 and 2 both give a binary task.
        task: `"motion"` or `"shape"`: what the label encodes.
        seed: the same seed gives the same clips.

    Returns:
        `(clips, labels, class_names)`: uint8 [N, T, H, W, C], int64 [N]
        balanced over the classes, and the list of class names.
    """
    if min(height, width) < 8 or frames < 1 or channels < 1:
        raise ValueError(
            f"clip shape must be at least 1x8x8x1, got {frames}x{height}x{width}x{channels}"
        )
    names = class_names(num_classes, task)
    rng = np.random.default_rng(seed)
    labels = np.arange(num_clips) % len(names)
    rng.shuffle(labels)
    clips = np.empty((num_clips, frames, height, width, channels), dtype=np.uint8)
    for index, label in enumerate(labels):
        if task == "motion":
            motion, shape = MOTIONS[label], SHAPES[rng.integers(len(SHAPES))]
        else:
            motion, shape = MOTIONS[rng.integers(len(MOTIONS) - 1)], SHAPES[label]
        clips[index] = render_clip(rng, motion, shape, frames, height, width, channels)
    return clips, labels.astype(np.int64), names


def render_clip(rng, motion, shape, frames, height, width, channels):
    """Renders one clip: `shape` moving by `motion` over a noisy background."""
    size = rng.uniform(0.18, 0.28) * min(height, width)
    speed = rng.uniform(0.05, 0.09) * min(height, width)
    center = rng.uniform([size, size], [height - size, width - size])
    direction = {
        "horizontal": (0.0, 1.0),
        "vertical": (1.0, 0.0),
        "diagonal": (0.7071, 0.7071),
        "anti_diagonal": (0.7071, -0.7071),
        "circular": (0.0, 0.0),
        "static": (0.0, 0.0),
    }[motion]
    velocity = np.array(direction) * speed * rng.choice([-1.0, 1.0])
    phase = rng.uniform(0, 2 * np.pi)

    background = rng.uniform(40, 90, size=channels)
    color = rng.uniform(170, 250, size=channels)
    noise = rng.normal(0.0, 12.0, size=(frames, height, width, channels))
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)

    clip = np.empty((frames, height, width, channels), dtype=np.float32)
    position = center.copy()
    for t in range(frames):
        if motion == "circular":
            angle = phase + t * speed / size
            position = center + 0.6 * size * np.array([np.sin(angle), np.cos(angle)])
        mask = shape_mask(shape, rows - position[0], cols - position[1], size / 2)
        clip[t] = background + mask[..., None] * (color - background)
        position, velocity = bounce(position + velocity, velocity, size / 2, height, width)
    clip += noise
    return np.clip(clip, 0, 255).astype(np.uint8)


def shape_mask(shape, dy, dx, radius):
    if shape == "square":
        return (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
    if shape == "disk":
        return dy**2 + dx**2 <= radius**2
    if shape == "triangle":
        return (dy <= radius) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) / 2)
    if shape == "cross":
        thin = radius / 3
        return ((np.abs(dy) <= thin) & (np.abs(dx) <= radius)) | (
            (np.abs(dx) <= thin) & (np.abs(dy) <= radius)
        )
    raise ValueError(f"unknown shape {shape!r}")


def bounce(position, velocity, radius, height, width):
    """Reflects the position and velocity off the frame's edges."""
    position, velocity = position.copy(), velocity.copy()
    for axis, limit in enumerate((height, width)):
        if position[axis] < radius:
            position[axis] = 2 * radius - position[axis]
            velocity[axis] = -velocity[axis]
        elif position[axis] > limit - 1 - radius:
            position[axis] = 2 * (limit - 1 - radius) - position[axis]
            velocity[axis] = -velocity[axis]
    return position, velocity


def synthetic_splits(
    clip_shape=DEFAULT_CLIP_SHAPE,
    sizes=None,
    num_classes: int = 2,
    task: str = "motion",
    seed: int = 0,
):
    """Train, validation and test splits drawn from disjoint seeds.

    Returns:
        `({"train": (clips, labels), "val": ..., "test": ...}, class_names)`.
    """
    sizes = dict(DEFAULT_SPLIT_SIZES if sizes is None else sizes)
    frames, height, width, channels = clip_shape
    splits, names = {}, None
    for offset, (split, count) in enumerate(sizes.items()):
        clips, labels, names = synthetic_clips(
            count, frames, height, width, channels, num_classes, task,
            seed=seed * 1000 + offset,
        )
        splits[split] = (clips, labels)
    return splits, names
