"""Train-step time and clips/s of `r2plus1d` and `r2plus1d_perceiver`.

Both models use the 8-block backbone; the Perceiver has 1 cross and 1
self-attention block. Each model is compiled with its family's optimizer and
loss, run for a few warm-up steps (tracing, XLA compilation), then timed
step by step; the table reports the median.

    python -m benchmarks.r2plus1d                # batch 2, 8x112x112x3
    python -m benchmarks.r2plus1d --steps 10 --frames 16
"""

import argparse
import os
import platform
import statistics
import time

import keras
import numpy as np

import models
from models import r2plus1d

CASES = {
    "r2plus1d": dict(cnn_blocks=8),
    "r2plus1d_perceiver": dict(cnn_blocks=8, cross_blocks=1, self_blocks=1),
}


def device_name():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return details.get("device_name", "GPU")
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def time_train_steps(name, overrides, batch_size, steps, warmup, jit_compile, seed=0):
    """Median seconds of one `train_on_batch` step, and the model's sizes."""
    keras.utils.set_random_seed(seed)
    family = models.get_family(name)
    config = models.get_config(name, **overrides)
    model = models.build_from_config(name, config)
    spec = family.training(config, steps_per_epoch=100)
    model.compile(optimizer=spec.optimizer, loss=spec.loss, jit_compile=jit_compile)
    inputs, targets = family.example_batch(config, batch_size, seed=seed)
    for _ in range(warmup):
        model.train_on_batch(inputs, targets)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = model.train_on_batch(inputs, targets)
        np.asarray(loss)  # wait for the step to finish
        times.append(time.perf_counter() - start)
    return statistics.median(times), r2plus1d.cnn_params(model), r2plus1d.attention_params(model)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112, help="height and width")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--jit-compile", choices=("auto", "on", "off"), default="auto",
        help="XLA compilation of the train step",
    )
    args = parser.parse_args(argv)
    jit = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
    shape = (args.frames, args.size, args.size, 3)
    print(f"device: {device_name()}; input {'x'.join(map(str, shape))}, batch {args.batch_size}, "
          f"median of {args.steps} steps after {args.warmup} warm-up steps")
    print()
    print("| model | CNN params | attention params | train step (ms) | clips/s |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models:
        seconds, cnn, attention = time_train_steps(
            name, dict(CASES[name], input_shape=shape), args.batch_size,
            args.steps, args.warmup, jit,
        )
        print(f"| {name} (8 blocks{', 1+1' if attention else ''}) | {cnn:,} | {attention:,} | "
              f"{seconds * 1000:.0f} | {args.batch_size / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    from data.cli import run_main

    run_main(main)
