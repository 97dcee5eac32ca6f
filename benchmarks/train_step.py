"""Train-step speed of each model beside the speed of its input pipeline.

`python -m benchmarks.train_step [--models convlstm ...] [--repeats N]`
prints one Markdown row per model: parameters, median train-step time,
samples/s of the model, and samples/s the input pipeline delivers for the
same batch. A pipeline slower than the step would starve the model.
"""

import numpy as np

from benchmarks.timing import machine_description, markdown_table, median_seconds
from data.cli import ArgumentParser

# Per model: config overrides and batch size of the benchmark row. Models
# not listed run at their default config and batch size.
SETTINGS = {
    "convlstm": dict(overrides={}, batch_size=4),
}


def clip_pipeline_rate(shape, batch_size, batches=6):
    """Samples/s of the clip pipeline (augmentation on) at `shape`."""
    from data import pipeline

    frames = shape[0]
    clips = np.random.default_rng(0).integers(
        0, 255, size=(batch_size * 2, frames + 4, *shape[1:]), dtype=np.uint8
    )
    dataset = pipeline.clip_batches(
        pipeline.from_arrays(clips, np.zeros(len(clips), np.int64)).repeat(),
        batch_size, num_frames=frames, training=True, seed=0,
    )
    iterator = iter(dataset)
    seconds = median_seconds(lambda: next(iterator), repeats=batches)
    return batch_size / seconds


PIPELINE_RATES = {"clips": clip_pipeline_rate}


def measure(name, repeats):
    import keras

    import models

    family = models.get_family(name)
    setting = SETTINGS.get(name, dict(overrides={}, batch_size=family.config.batch_size))
    config = models.get_config(name, **setting["overrides"])
    batch_size = setting["batch_size"]
    model = models.build_from_config(name, config)
    spec = family.training(config, steps_per_epoch=100)
    model.compile(optimizer=spec.optimizer, loss=spec.loss)
    inputs, targets = family.example_batch(config, batch_size, seed=0)
    step = median_seconds(lambda: model.train_on_batch(inputs, targets), repeats)
    row = {
        "model": name,
        "input": "x".join(str(d) for d in config.input_shape),
        "batch": batch_size,
        "params": model.count_params(),
        "train step (s)": step,
        "model samples/s": batch_size / step,
    }
    rate = PIPELINE_RATES.get(type(config).input_kind)
    if rate is not None:
        row["pipeline samples/s"] = rate(config.input_shape, batch_size)
    keras.backend.clear_session()
    return row


def main(argv=None):
    import models

    parser = ArgumentParser(prog="python -m benchmarks.train_step", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SETTINGS), choices=models.NAMES)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model (median)")
    args = parser.parse_args(argv)
    rows = [measure(name, args.repeats) for name in args.models]
    print(f"machine: {machine_description()}\n")
    print(markdown_table(rows, [
        "model", "input", "batch", "params", "train step (s)", "model samples/s", "pipeline samples/s",
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
