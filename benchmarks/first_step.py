"""Time to the first trained batches: the optimizer built before `fit` or not.

    python -m benchmarks.first_step [--models convlstm,...] [--repeats 3]
        [--preset tiny]

For each model at `--preset`, a fresh process builds the model, compiles it
with its recipe's first-stage optimizer, loss and metrics (no XLA), and
times `fit` over 2 batches of its example data with 2 validation batches:
with `train.engine.build_optimizer` before `fit` (what the engine does) and
without it (Keras creates the optimizer's variables inside the first traced
step, and TensorFlow traces the step again). The two variants alternate
within each round, so the machine's load hits them alike; the table gives
the median wall and CPU seconds of `--repeats` rounds, their ratios and
the load average.

Project modules are imported inside the functions that use them: a
benchmark child sets its threads and Keras backend before TensorFlow loads,
and the GPU machines run the JAX backend without TensorFlow.
"""

import json
import statistics
import subprocess
import sys

from benchmarks.timing import load_average
from common.cli import ArgumentParser, run_main

CHILD = """
import json, sys, time
import tensorflow as tf
import models
from train import engine
name, preset, build = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
family = models.get_family(name)
config = models.get_config(name, preset)
model = models.build_from_config(name, config)
spec = family.training(config, steps_per_epoch=2)
stage = (spec.stages or [models.Stage("train", 1, spec.optimizer)])[0]
if stage.prepare is not None:
    stage.prepare(model)
inputs, targets = family.example_batch(config, 4, seed=1)
data = tf.data.Dataset.from_tensors((inputs, targets)).repeat(2)
start, cpu_start = time.perf_counter(), time.process_time()
model.compile(optimizer=stage.optimizer, loss=spec.loss, metrics=list(spec.metrics),
              jit_compile=False)
if build:
    engine.build_optimizer(model)
model.fit(data, validation_data=data, epochs=1, verbose=0)
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}))
"""


def time_once(name, preset, build):
    result = subprocess.run(
        [sys.executable, "-c", CHILD, name, preset, "1" if build else "0"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode:
        raise RuntimeError(f"{name}: the timing process failed:\n{result.stderr[-2000:]}")
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    return timing["seconds"], timing["cpu"]


def build_parser():
    """The command line of `main`."""
    parser = ArgumentParser(prog="python -m benchmarks.first_step", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="convlstm,bilstm_attention,r2plus1d_perceiver,keyframe_transformer",
                        help="comma-separated model names")
    parser.add_argument("--preset", default="tiny", help="the preset every model is built at")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the table gives their medians")
    return parser


def main(argv=None):
    import models  # see the module doc: imported when needed

    args = build_parser().parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in models.names()]
    if unknown or not names:
        raise ValueError(f"--models: unknown {unknown or args.models!r}; choose from {', '.join(models.names())}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    print("| model | optimizer built in the first step (s) | built before fit (s) | ratio "
          "| CPU (s), first step | CPU (s), before fit | CPU ratio | load |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for build in (False, True):
                times[build].append(time_once(name, args.preset, build))
        before, after = (statistics.median(w for w, _ in times[b]) for b in (False, True))
        before_cpu, after_cpu = (statistics.median(c for _, c in times[b]) for b in (False, True))
        print(f"| {name} | {before:.1f} | {after:.1f} | {before / after:.2f}x | {before_cpu:.1f} "
              f"| {after_cpu:.1f} | {before_cpu / after_cpu:.2f}x | {load_average():.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
