"""Train-step speed of each model beside the speed of its input pipeline.

`measure(name, repeats)` builds one model at its benchmark size
(`SETTINGS`), times `train_on_batch` on a fixed random batch (median after
warm-up), counts its forward FLOPs per sample (`benchmarks.flops`) and
times the input pipeline of its kind for the same batch; `measure_xla`
times the same step compiled with XLA. `python -m benchmarks` (see
`benchmarks/report.py`) turns these into the report;
`python -m benchmarks.train_step` is the same command.
"""

import time

import numpy as np

from benchmarks.timing import median_seconds

# Per model: config overrides and batch size of the benchmark row, the sizes
# the model's documentation quotes. Models not listed run at their default
# config and batch size.
SETTINGS = {
    # 30x120x160x4, the design notes' clip.
    "convlstm": dict(overrides={}, batch_size=4),
    # 64 frames of 1280-d EfficientNet features.
    "bilstm_attention": dict(overrides=dict(input_shape=(64, 1280)), batch_size=8),
    # The full 8-block backbone on 8 frames of 112x112; the Perceiver with
    # 1 cross- and 1 self-attention block.
    "r2plus1d": dict(overrides=dict(input_shape=(8, 112, 112, 3), cnn_blocks=8), batch_size=2),
    "r2plus1d_perceiver": dict(
        overrides=dict(input_shape=(8, 112, 112, 3), cnn_blocks=8, cross_blocks=1, self_blocks=1),
        batch_size=2,
    ),
    # One 60-frame 224x224 clip through EfficientNet-B0 (random weights),
    # frozen as in the first training stage.
    "keyframe_transformer": dict(
        overrides=dict(input_mode="frames", input_shape=(60, 224, 224, 3), backbone_weights=None),
        batch_size=1,
    ),
}

# A step clearly slower than this many times the step without XLA ends the
# XLA measurement after one timed step: the choice is off either way.
XLA_GIVE_UP_RATIO = 3.0


def benchmark_config(name):
    """`(config, batch_size)` of the model's benchmark row."""
    import models

    family = models.get_family(name)
    setting = SETTINGS.get(name, dict(overrides={}, batch_size=family.config.batch_size))
    return models.get_config(name, **setting["overrides"]), setting["batch_size"]


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


def feature_pipeline_rate(config, batch_size, batches=6):
    """Samples/s of the feature-sequence pipeline (shuffled, padded, masked)."""
    from data import sequences

    steps, dim = config.input_shape[0] or 64, config.input_shape[1]
    count = batch_size * 4
    rng = np.random.default_rng(0)
    features = rng.standard_normal((count, steps, dim), dtype=np.float32)
    lengths = rng.integers(steps // 2, steps + 1, size=count)
    dataset = sequences.sequence_dataset(
        features, lengths, rng.integers(0, config.num_classes, size=count), batch_size,
        shuffle=True, seed=0, augmentation=sequences.SequenceAugmentation(noise_std=0.01),
    ).repeat()
    iterator = iter(dataset)
    seconds = median_seconds(lambda: next(iterator), repeats=batches)
    return batch_size / seconds


def frame_score_pipeline_rate(config, batch_size, batches=6):
    """Samples/s of the keyframe scorer's padded video pipeline."""
    from data import summarization

    steps = config.input_shape[0] or 60
    shape = (steps, *config.input_shape[1:])
    rng = np.random.default_rng(0)
    videos = [rng.uniform(0, 255, size=shape).astype(np.float32) for _ in range(2)]
    scores = [rng.uniform(size=steps).astype(np.float32) for _ in videos]
    name = "frames" if config.input_mode == "frames" else "features"
    dataset = summarization.sequence_dataset(
        videos, scores, input_name=name, batch_size=batch_size, shuffle=True, seed=0
    ).repeat()
    iterator = iter(dataset)
    seconds = median_seconds(lambda: next(iterator), repeats=batches)
    return batch_size / seconds


# Per input kind: `(config, batch_size) -> samples/s` of its training pipeline.
PIPELINE_RATES = {
    "clips": lambda config, batch: clip_pipeline_rate(config.input_shape, batch),
    "features": feature_pipeline_rate,
    "frame_scores": frame_score_pipeline_rate,
}


def pipeline_rate(config, batch_size):
    """Samples/s of the input pipeline of the config's kind, or None when
    there is no benchmark for that kind or TensorFlow (tf.data) is absent."""
    rate = PIPELINE_RATES.get(type(config).input_kind)
    if rate is None:
        return None
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return None
    return rate(config, batch_size)


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
