"""Train-step speed of each model beside the speed of its input pipeline.

`measure(name, repeats)` builds one model at its benchmark size
(its "benchmark" preset), times `train_on_batch` on a fixed random batch (median after
warm-up), counts its forward FLOPs per sample (`benchmarks.flops`) and
times the input pipeline of its kind for the same batch; `measure_xla`
times the same step compiled with XLA. Every step time has its CPU
seconds beside it (`benchmarks.timing`). `python -m benchmarks` (see
`benchmarks/report.py`) turns these into the report.

Project modules are imported inside the functions that use them: a
benchmark child sets its threads and Keras backend before TensorFlow loads,
and the GPU machines run the JAX backend without TensorFlow.
"""

import time

import numpy as np

from benchmarks.timing import load_average, median_seconds, median_times, timed

# A step clearly slower than this many times the step without XLA ends the
# XLA measurement after one timed step: the choice is off either way.
XLA_GIVE_UP_RATIO = 3.0


def row_label(name, preset="benchmark"):
    return name if preset == "benchmark" else f"{name} ({preset})"


def benchmark_config(name, preset="benchmark"):
    """`(config, batch_size)` of the model's benchmark row: its "benchmark"
    preset (the size its documentation quotes), else its defaults; or the
    preset `preset`."""
    import models  # see the module doc: imported when needed

    preset = preset if preset in models.presets(name) else None
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
    from train import tasks  # see the module doc: imported when needed

    dataset = tasks.get_task(type(config).input_kind).example_pipeline(config, batch_size)
    iterator = iter(dataset.repeat())
    seconds = median_seconds(lambda: next(iterator), repeats=batches)
    return batch_size / seconds


def _compiled_model(name, config, jit_compile, xla_update=False):
    import models  # see the module doc: imported when needed
    from train import engine  # see the module doc: imported when needed
    from train.engine import distribute  # see the module doc: imported when needed

    family = models.get_family(name)
    model = models.build_from_config(name, config)
    spec = family.training(config, steps_per_epoch=100)
    model.compile(optimizer=spec.optimizer, loss=spec.loss, jit_compile=jit_compile)
    if xla_update:
        engine.build_optimizer(model)
        distribute.compile_optimizer_update(model.optimizer)
    return model


def measure(name, repeats, pipeline=True, before=True, bfloat16=True, preset="benchmark",
            xla_update=None):
    """One row of the report for `name` (train step without XLA on TF).

    On the TensorFlow backend the step is timed interleaved with the
    model's earlier implementation (`before`), its bfloat16 variant
    (`bfloat16`) and the step with the optimizer's update under XLA
    (`xla_update`; None: for the families whose `benchmark_xla_update`
    says so), see `measure_variants`."""
    import keras

    import models  # see the module doc: imported when needed
    from benchmarks.flops import train_flops  # see the module doc: imported when needed

    family = models.get_family(name)
    config, batch_size = benchmark_config(name, preset)
    keras.utils.set_random_seed(0)
    jit = keras.backend.backend() == "jax"  # jit is JAX's compiled path
    model = _compiled_model(name, config, jit_compile=jit)
    inputs, targets = family.example_batch(config, batch_size, seed=0)
    one = {key: value[:1] for key, value in inputs.items()}
    forward, train = train_flops(model, one)
    variants = {}
    if jit:
        step, step_cpu = median_times(lambda: model.train_on_batch(inputs, targets), repeats)
    else:
        if xla_update is None:
            xla_update = family.benchmark_xla_update
        variants = measure_variants(name, repeats, before, bfloat16, model, preset, xla_update)
        step, step_cpu = variants["after_s"], variants["after_cpu_s"]
    row = {
        "model": row_label(name, preset),
        "name": name,
        "preset": preset,
        "input": "x".join(str(d) for d in config.input_shape),
        "batch": batch_size,
        "params": model.count_params(),
        "forward GFLOPs/sample": forward / 1e9,
        "train GFLOPs/sample": train / 1e9,
        "train step (s)": step,
        "step CPU (s)": step_cpu,
        "model samples/s": batch_size / step,
        "load": load_average(),
    }
    if variants.get("before_s") is not None:
        row["step before (s)"] = variants["before_s"]
        row["speedup"] = ratio_text(variants["before_s"], step, variants["before_cpu_s"], step_cpu)
    if variants.get("xla_update_s") is not None:
        row["XLA update step (s)"] = variants["xla_update_s"]
        row["XLA update CPU (s)"] = variants["xla_update_cpu_s"]
        row["XLA update speedup"] = ratio_text(step, variants["xla_update_s"], step_cpu,
                                               variants["xla_update_cpu_s"])
    if variants:
        if variants["bf16_s"] is not None:
            row["bf16 step (s)"] = variants["bf16_s"]
            row["bf16 speedup"] = f"{variants['bf16_speedup']:.2f}x"
        else:
            row["bf16 step (s)"] = "-"
            row["bf16 speedup"] = variants["bf16_note"]
    if pipeline:
        rate = pipeline_rate(config, batch_size)
        if rate is not None:
            row["pipeline samples/s"] = rate
    keras.backend.clear_session()
    return row


def ratio_text(before_s, after_s, before_cpu_s, after_cpu_s):
    """"1.10x (CPU 1.12x)": how many times faster `after` is, in wall and
    in CPU time."""
    return f"{before_s / after_s:.2f}x (CPU {before_cpu_s / after_cpu_s:.2f}x)"


def measure_xla(name, repeats, reference_step_s=None, timeout_s=150):
    """Median train-step seconds of `name` compiled with XLA.

    Runs in a child process so that a compilation that takes too long can
    be stopped and its memory is given back. Returns `{"step_s",
    "first_call_s", "note"}`; `step_s` is None when the model's layers keep
    XLA off (`train.engine.distribute.jit_blockers`) or when compilation and two
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

    import models  # see the module doc: imported when needed
    from train.engine.distribute import jit_blockers  # see the module doc: imported when needed

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
    started, cpu_started = time.perf_counter(), time.process_time()
    model.train_on_batch(inputs, targets)
    once = time.perf_counter() - started
    if reference_step_s is not None and once > XLA_GIVE_UP_RATIO * reference_step_s:
        step, note = once, f"one timed step, over {XLA_GIVE_UP_RATIO:g}x slower"
        cpu = time.process_time() - cpu_started
    else:
        step, cpu = median_times(lambda: model.train_on_batch(inputs, targets), repeats, warmup=0)
        note = f"median of {repeats} steps"
    return {"step_s": step, "cpu_s": cpu, "first_call_s": round(first_call, 2), "note": note}


def interleaved_times(models_by_label, inputs, targets, repeats, warmup=2):
    """`{label: (median wall seconds, median CPU seconds)}` of a train step
    of models whose timed steps alternate (a, b, a, b, ...), so that load
    on a shared machine falls on every variant alike and their ratio is
    fair."""
    import statistics

    times = {label: [] for label in models_by_label}
    for index in range(warmup + repeats):
        for label, model in models_by_label.items():
            wall, cpu = timed(lambda: model.train_on_batch(inputs, targets))
            if index >= warmup:
                times[label].append((wall, cpu))
    return {label: (statistics.median(w for w, _ in values),
                    statistics.median(c for _, c in values))
            for label, values in times.items()}


def interleaved_medians(models_by_label, inputs, targets, repeats, warmup=2):
    """`{label: median train-step wall seconds}`, see `interleaved_times`."""
    times = interleaved_times(models_by_label, inputs, targets, repeats, warmup)
    return {label: wall for label, (wall, _) in times.items()}


def bfloat16_unavailable(name, config):
    """Why the bfloat16 column of `name` stays empty here, or None when it
    can be measured: a CPU without native bfloat16 (emulated bfloat16
    would be slower than float32 and says nothing of a CPU that has it), a
    GPU (its mixed policy is float16, not this column), or TensorFlow's
    wrong bfloat16 Conv3D kernel gradients (`train.engine.distribute`'s guard)."""
    import keras

    import models  # see the module doc: imported when needed
    from train.engine import distribute  # see the module doc: imported when needed

    if distribute.device_kind() == "gpu":
        return "GPU: mixed precision is float16 there"
    if not distribute.cpu_bfloat16_flags():
        return (f"this CPU has no native bfloat16 ({' / '.join(distribute.BFLOAT16_CPU_FLAGS)} "
                "absent)")
    if keras.backend.backend() == "tensorflow":
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            hazards = distribute.bfloat16_conv3d_hazards(models.build_from_config(name, config))
        finally:
            keras.config.set_dtype_policy(policy)
        if hazards:
            return "refused: TensorFlow's bfloat16 Conv3D gets kernel gradients wrong here"
    return None


def measure_variants(name, repeats, before=True, bfloat16=True, after_model=None,
                     preset="benchmark", xla_update=False):
    """The step times of `name` measured in one process, interleaved.

    Builds the model as it is ("after"), as it was (the family's
    `speedup_baseline` config fields, when `before` and it has any), under
    the `mixed_bfloat16` policy (when `bfloat16` and `bfloat16_unavailable`
    gives no reason) and with its optimizer's update compiled by XLA (when
    `xla_update`),
    each from the same seed (`after_model`, when given, is the first,
    already compiled), and times their steps alternately. Returns
    `{"after_s", "after_cpu_s", "before_s", "before_cpu_s", "speedup",
    "bf16_s", "bf16_speedup", "bf16_note", "xla_update_s",
    "xla_update_cpu_s"}` (seconds are medians of wall or CPU time), the
    absent ones None.
    """
    import keras

    import models  # see the module doc: imported when needed

    family = models.get_family(name)
    config, batch_size = benchmark_config(name, preset)
    variants = {}
    keras.utils.set_random_seed(0)
    variants["after"] = after_model or _compiled_model(name, config, jit_compile=False)
    if before and family.speedup_baseline:
        keras.utils.set_random_seed(0)
        variants["before"] = _compiled_model(
            name, config.with_overrides(**family.speedup_baseline), jit_compile=False
        )
    bf16_note = bfloat16_unavailable(name, config) if bfloat16 else "not measured"
    if bf16_note is None:
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            keras.utils.set_random_seed(0)
            variants["bf16"] = _compiled_model(name, config, jit_compile=False)
        finally:
            keras.config.set_dtype_policy(policy)
    if xla_update:
        keras.utils.set_random_seed(0)
        variants["xla_update"] = _compiled_model(name, config, jit_compile=False, xla_update=True)
    inputs, targets = family.example_batch(config, batch_size, seed=0)
    times = interleaved_times(variants, inputs, targets, repeats)
    keras.backend.clear_session()
    medians = {label: wall for label, (wall, _) in times.items()}
    after = medians["after"]
    result = {"after_s": after, "after_cpu_s": times["after"][1],
              "before_s": medians.get("before"), "speedup": None,
              "before_cpu_s": times.get("before", (None, None))[1],
              "bf16_s": medians.get("bf16"), "bf16_speedup": None, "bf16_note": bf16_note,
              "xla_update_s": medians.get("xla_update"),
              "xla_update_cpu_s": times.get("xla_update", (None, None))[1]}
    if result["before_s"] is not None:
        result["speedup"] = result["before_s"] / after
    if result["bf16_s"] is not None:
        result["bf16_speedup"] = after / result["bf16_s"]
    return result

