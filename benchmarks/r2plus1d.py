"""Train-step time and clips/s of `r2plus1d` and `r2plus1d_perceiver`.

Both models use the full 8-block backbone; the Perceiver has 1 cross- and 1
self-attention block. Each model is compiled with its family's optimizer
and loss (XLA as Keras' "auto" picks it), warmed up for a few steps (tracing
and compilation), then timed step by step; the table reports the median.

    python -m benchmarks.r2plus1d                  # batch 2, 8x112x112x3
    python -m benchmarks.r2plus1d --repeats 9 --frames 16
"""

import numpy as np

from benchmarks.timing import machine_description, markdown_table, median_seconds
from data.cli import ArgumentParser, run_main

CASES = {
    "r2plus1d": dict(cnn_blocks=8),
    "r2plus1d_perceiver": dict(cnn_blocks=8, cross_blocks=1, self_blocks=1),
}


def measure(name, shape, batch_size, repeats, warmup):
    import keras

    import models
    from models import r2plus1d

    keras.utils.set_random_seed(0)
    family = models.get_family(name)
    config = models.get_config(name, input_shape=shape, **CASES[name])
    model = models.build_from_config(name, config)
    spec = family.training(config, steps_per_epoch=100)
    model.compile(optimizer=spec.optimizer, loss=spec.loss)
    inputs, targets = family.example_batch(config, batch_size, seed=0)

    def step():
        # Reading the loss back waits for the step to finish.
        np.asarray(model.train_on_batch(inputs, targets))

    seconds = median_seconds(step, repeats, warmup=warmup)
    attention = r2plus1d.attention_params(model)
    row = {
        "model": f"{name} (8 blocks{', 1+1' if attention else ''})",
        "input": "x".join(str(d) for d in shape),
        "batch": batch_size,
        "CNN params": r2plus1d.cnn_params(model),
        "attention params": attention,
        "train step (s)": seconds,
        "clips/s": batch_size / seconds,
    }
    keras.backend.clear_session()
    return row


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.r2plus1d", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112, help="frame height and width")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    args = parser.parse_args(argv)
    shape = (args.frames, args.size, args.size, 3)
    rows = [measure(name, shape, args.batch_size, args.repeats, args.warmup) for name in args.models]
    print(f"machine: {machine_description()}\n")
    print(markdown_table(rows, [
        "model", "input", "batch", "CNN params", "attention params", "train step (s)", "clips/s",
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
