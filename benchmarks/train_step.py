"""Train-step speed of each model beside the speed of its input pipeline.

`measure(name, repeats)` builds one model at its benchmark size
(its "benchmark" preset), times `train_on_batch` on a fixed random batch (median after
warm-up), counts its forward FLOPs per sample (`benchmarks.flops`) and
times the input pipeline of its kind for the same batch; `measure_xla`
times the same step compiled with XLA. `python -m benchmarks` (see
`benchmarks/report.py`) turns these into the report;
`python -m benchmarks.train_step` is the same command.
"""

import time

import numpy as np

from benchmarks.timing import median_seconds

# A step clearly slower than this many times the step without XLA ends the
# XLA measurement after one timed step: the choice is off either way.
XLA_GIVE_UP_RATIO = 3.0


def benchmark_config(name):
    """`(config, batch_size)` of the model's benchmark row: its "benchmark"
    preset (the size its documentation quotes), else its defaults."""
    import models

    preset = "benchmark" if "benchmark" in models.presets(name) else None
    config = models.get_config(name, preset=preset)
    return config, config.batch_size


def pipeline_rate(config, batch_size, batches=6):
    """Samples/s of the training pipeline of the config's task on example
    data of the config's shapes (`Task.example_pipeline`), or None when
    TensorFlow (tf.data) is absent."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return None
    from train import tasks

    dataset = tasks.get_task(type(config).input_kind).example_pipeline(config, batch_size)
    iterator = iter(dataset.repeat())
    seconds = median_seconds(lambda: next(iterator), repeats=batches)
    return batch_size / seconds


def _compiled_model(name, config, jit_compile):
    import models

    family = models.get_family(name)
    model = models.build_from_config(name, config)
    spec = family.training(config, steps_per_epoch=100)
    model.compile(optimizer=spec.optimizer, loss=spec.loss, jit_compile=jit_compile)
    return model


def measure(name, repeats, pipeline=True):
    """One row of the report for `name` (train step without XLA on TF)."""
    import keras

    import models
    from benchmarks.flops import train_flops

    family = models.get_family(name)
    config, batch_size = benchmark_config(name)
    keras.utils.set_random_seed(0)
    jit = keras.backend.backend() == "jax"  # jit is JAX's compiled path
    model = _compiled_model(name, config, jit_compile=jit)
    inputs, targets = family.example_batch(config, batch_size, seed=0)
    step = median_seconds(lambda: model.train_on_batch(inputs, targets), repeats)
    one = {key: value[:1] for key, value in inputs.items()}
    forward, train = train_flops(model, one)
    row = {
        "model": name,
        "input": "x".join(str(d) for d in config.input_shape),
        "batch": batch_size,
        "params": model.count_params(),
        "forward GFLOPs/sample": forward / 1e9,
        "train GFLOPs/sample": train / 1e9,
        "train step (s)": step,
        "model samples/s": batch_size / step,
    }
    if pipeline:
        rate = pipeline_rate(config, batch_size)
        if rate is not None:
            row["pipeline samples/s"] = rate
    keras.backend.clear_session()
    return row


def measure_xla(name, repeats, reference_step_s=None, timeout_s=150):
    """Median train-step seconds of `name` compiled with XLA.

    Runs in a child process so that a compilation that takes too long can
    be stopped and its memory is given back. Returns `{"step_s",
    "first_call_s", "note"}`; `step_s` is None when the model's layers keep
    XLA off (`train.distribute.jit_blockers`) or when compilation and two
    steps did not finish within `timeout_s`. The first call includes the
    compilation. When one timed step is already more than
    `XLA_GIVE_UP_RATIO` times `reference_step_s`, that step is the answer.
    """
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import json; from benchmarks.train_step import xla_step; "
        f"print(json.dumps(xla_step({name!r}, {repeats}, {reference_step_s!r})))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {
            "step_s": None, "first_call_s": None,
            "note": f"XLA compilation and two steps did not finish in {timeout_s:g} s",
        }
    if done.returncode != 0:
        raise RuntimeError(f"XLA measurement of {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def xla_step(name, repeats, reference_step_s=None):
    """`measure_xla`'s work, in the child process."""
    import keras

    import models
    from train.distribute import jit_blockers

    family = models.get_family(name)
    config, batch_size = benchmark_config(name)
    keras.utils.set_random_seed(0)
    model = _compiled_model(name, config, jit_compile=False)
    blockers = jit_blockers(model)
    if blockers:
        return {
            "step_s": None, "first_call_s": None,
            "note": f"not compiled: {', '.join(blockers[:2])} keep XLA off",
        }
    model = _compiled_model(name, config, jit_compile=True)
    inputs, targets = family.example_batch(config, batch_size, seed=0)
    started = time.perf_counter()
    model.train_on_batch(inputs, targets)
    first_call = time.perf_counter() - started
    started = time.perf_counter()
    model.train_on_batch(inputs, targets)
    once = time.perf_counter() - started
    if reference_step_s is not None and once > XLA_GIVE_UP_RATIO * reference_step_s:
        step, note = once, f"one timed step, over {XLA_GIVE_UP_RATIO:g}x slower"
    else:
        step = median_seconds(lambda: model.train_on_batch(inputs, targets), repeats, warmup=0)
        note = f"median of {repeats} steps"
    return {"step_s": step, "first_call_s": round(first_call, 2), "note": note}


def main(argv=None):
    from benchmarks import report

    return report.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
