"""Train-step time and throughput of `bilstm_attention` on this machine.

Builds the model at its default sizes (D = 1280, 4 x BiLSTM 768), compiles
it with its own training defaults (AdamW, focal loss), and times
`train_on_batch` on a fixed random batch after a warm-up that traces the
step. Half of the rows are right-padded so the masked LSTM path is the one
measured. Prints one table row per measurement; the median over the timed
steps is reported.

    python -m benchmarks.bilstm_attention                 # batch 8, T 64
    python -m benchmarks.bilstm_attention --steps 3 --frames 32
"""

import argparse
import platform
import statistics
import time

import keras
import numpy as np

import models


def measure(batch_size=8, frames=64, dim=1280, warmup=2, steps=5, seed=0, **overrides):
    """Times train and inference steps; returns a dict of medians.

    Returns:
        `{"train_step_ms", "train_sequences_per_s", "predict_step_ms",
        "predict_sequences_per_s", "parameters"}`.
    """
    keras.utils.set_random_seed(seed)
    config = models.get_config("bilstm_attention", input_shape=(None, dim), **overrides)
    model = models.build_from_config("bilstm_attention", config)
    spec = models.get_family("bilstm_attention").training(config, steps_per_epoch=100)
    model.compile(optimizer=spec.optimizer, loss=spec.loss, metrics=spec.metrics)

    rng = np.random.default_rng(seed)
    lengths = np.where(np.arange(batch_size) % 2 == 0, frames, max(1, frames * 3 // 4))
    mask = np.arange(frames)[None, :] < lengths[:, None]
    features = rng.normal(size=(batch_size, frames, dim)).astype("float32") * mask[..., None]
    labels = rng.integers(0, config.num_classes, size=batch_size)
    inputs = {"features": features, "mask": mask}

    def timed(step, count):
        times = []
        for _ in range(count):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def train():
        model.train_on_batch(inputs, labels)

    def predict():
        np.asarray(model.predict_on_batch(inputs))

    timed(train, warmup)
    train_s = timed(train, steps)
    timed(predict, warmup)
    predict_s = timed(predict, steps)
    return {
        "train_step_ms": 1000 * train_s,
        "train_sequences_per_s": batch_size / train_s,
        "predict_step_ms": 1000 * predict_s,
        "predict_sequences_per_s": batch_size / predict_s,
        "parameters": model.count_params(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64, help="sequence length T")
    parser.add_argument("--dim", type=int, default=1280, help="feature dimension D")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    args = parser.parse_args(argv)
    result = measure(args.batch_size, args.frames, args.dim, args.warmup, args.steps)
    machine = f"{platform.processor() or platform.machine()}, {keras.backend.backend()}"
    print(f"machine: {machine}; parameters: {result['parameters']:,}")
    print("| model | input (B, T, D) | train step (ms) | train seq/s | predict step (ms) | predict seq/s |")
    print("|---|---|---:|---:|---:|---:|")
    print(
        f"| bilstm_attention | ({args.batch_size}, {args.frames}, {args.dim}) "
        f"| {result['train_step_ms']:.0f} | {result['train_sequences_per_s']:.2f} "
        f"| {result['predict_step_ms']:.0f} | {result['predict_sequences_per_s']:.2f} |"
    )


if __name__ == "__main__":
    main()
