"""Latency of scoring one clip with `keyframe_transformer` on this machine.

`python -m benchmarks.keyframe_transformer [--frames 60] [--size 224] [--repeats 5]`
prints one Markdown row per measurement, each the median over `--repeats`
calls after a warm-up call:

1. frames mode, model only: a [1, T, 224, 224, 3] clip already in memory
   through EfficientNet-B0 (random weights, nothing is downloaded), the
   Transformer and the scorer, as one traced TensorFlow graph;
2. frames mode, end to end: the same plus decoding and resizing T frames of
   a 320x240 video file written for the benchmark;
3. features mode, model only: [1, T, 1024] features (the public files'
   input) through the Transformer and the scorer.

Wall time grows when other processes share the cores; the CPU-time column
(summed over threads) does not, and on an idle machine the latency is about
that divided by the cores in use. The design notes quote about 1.8 s for scoring a 60-frame 224x224 clip on
an RTX 3060 GPU.

Project modules are imported inside the functions that use them: a
benchmark child sets its threads and Keras backend before TensorFlow loads,
and the GPU machines run the JAX backend without TensorFlow.
"""

import os
import statistics
import tempfile
import time

import numpy as np

from benchmarks.timing import machine_description, median_seconds
from common.tables import markdown_table
from common.cli import ArgumentParser

NOTES_GPU_SECONDS = 1.8


def write_video(path, frames, width=320, height=240, fps=30.0):
    from data import video  # see the module doc: imported when needed

    rng = np.random.default_rng(0)

    def frame(index):
        image = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
        image[:, : (index * 5) % width] //= 2
        return image

    video.write_video(str(path), (frame(i) for i in range(frames)), fps=fps, fourcc="mp4v")


def measure(frames=60, size=224, repeats=5):
    import keras

    import models  # see the module doc: imported when needed
    from data.video import read_clip  # see the module doc: imported when needed

    rows = []
    keras.utils.set_random_seed(0)
    model = models.build(
        "keyframe_transformer", input_mode="frames", input_shape=(None, size, size, 3),
        backbone="efficientnet_b0", backbone_weights=None,
    )
    clip = np.random.default_rng(0).uniform(0, 255, (1, frames, size, size, 3)).astype("float32")
    mask = np.ones((1, frames), dtype=bool)

    serve = compiled(model)

    def score(values):
        return np.asarray(serve({"frames": values, "mask": mask}))

    seconds = median_seconds(lambda: score(clip), repeats, warmup=1)
    rows.append(_row("frames, model only", f"1x{frames}x{size}x{size}x3", model, seconds,
                     median_cpu_seconds(lambda: score(clip), repeats)))

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "clip.mp4")
        write_video(path, frames + 30)

        def end_to_end():
            decoded = read_clip(path, num_frames=frames, size=(size, size))
            return score(decoded[None].astype("float32"))

        seconds = median_seconds(end_to_end, repeats, warmup=1)
        cpu = median_cpu_seconds(end_to_end, repeats)
    rows.append(_row("frames, decode + score", f"mp4 320x240 -> {frames} frames", model, seconds, cpu))

    features_model = models.build("keyframe_transformer")
    features = np.random.default_rng(1).normal(size=(1, frames, 1024)).astype("float32")
    serve_features = compiled(features_model)

    def score_features():
        return np.asarray(serve_features({"features": features, "mask": mask}))

    seconds = median_seconds(score_features, repeats, warmup=1)
    rows.append(_row("features, model only", f"1x{frames}x1024", features_model, seconds,
                     median_cpu_seconds(score_features, repeats)))
    return rows


def compiled(model):
    """The inference call as one traced graph, as a serving endpoint runs it.

    (XLA's `jit_compile` was tried and is many times slower on this CPU.)
    """
    import tensorflow as tf

    signature = {
        name: tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype)
        for name, tensor in model.input.items()
    }
    return tf.function(lambda inputs: model(inputs, training=False), input_signature=[signature])


def median_cpu_seconds(step, repeats):
    """Median CPU time (all threads) of `step()`: unlike wall time it does
    not grow when other processes share the cores."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        step()
        times.append(time.process_time() - started)
    return statistics.median(times)


def _row(what, shape, model, seconds, cpu_seconds):
    return {
        "model": "keyframe_transformer",
        "measurement": what,
        "input": shape,
        "params": model.count_params(),
        "latency (s)": seconds,
        "CPU time (s)": cpu_seconds,
        "vs notes' 1.8 s GPU": f"{NOTES_GPU_SECONDS / seconds:.1f}x faster"
        if seconds < NOTES_GPU_SECONDS else f"{seconds / NOTES_GPU_SECONDS:.1f}x slower",
    }


def build_parser():
    """The command line of `main`."""
    parser = ArgumentParser(prog="python -m benchmarks.keyframe_transformer",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per clip")
    parser.add_argument("--size", type=int, default=224, help="frame height and width")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (median)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    rows = measure(args.frames, args.size, args.repeats)
    print(f"machine: {machine_description()}; load average {os.getloadavg()[0]:.1f}")
    print(markdown_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
