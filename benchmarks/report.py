"""The benchmark report: one table of every registered model.

`python -m benchmarks [--models NAME ...] [--repeats N] [--results FILE]`
prints, per model at its benchmark size (its "benchmark" preset):
parameters, forward GFLOPs per sample, the median train-step time,
samples/s, the arithmetic rate that implies and its fraction of this
machine's fp32 matmul peak, measured here with a large matmul, then what
the input pipeline delivers beside what the step consumes, and whether
that is at least 3x. A train step costs about 3x the forward pass (the
backward pass computes gradients for inputs and for weights); layers with
frozen weights at the input end, such as a frozen backbone, cost only
their forward pass (`benchmarks.flops.FlopCount`).

Every step time is a median wall time with the median CPU seconds of the
same steps beside it ("step CPU (s)": the process's user + system time,
all threads), and each row gives the load average it was measured at: on a
shared machine the wall time moves with the load, the CPU time much less.

On the TensorFlow backend each model's step is timed interleaved (one
step each in turn, same process) with the implementation it had before the
speed-ups (the family's `speedup_baseline`: "step before (s)", "speedup"),
for the families that ask for it (`benchmark_xla_update`) with the
optimizer's update compiled by XLA ("XLA update step (s)", "XLA update
speedup", see `train.engine.distribute.compile_optimizer_update`), and with
the `mixed_bfloat16` policy where that is measurable ("bf16 step
(s)", "bf16 speedup" over float32): on a CPU with native bfloat16
(AVX-512 BF16 or AMX) and for models that train correctly in it (not
R(2+1)D's Conv3D, see `train.engine.distribute.bfloat16_conv3d_hazards`); elsewhere
the column says why it is empty. Speedups read "1.10x (CPU 1.12x)": wall
and CPU time. `--no-before`, `--no-xla-update` and `--no-bf16` skip them.

`python -m benchmarks --measure-jit` also times every model's train step
with XLA (`jit_compile=True`) where its layers allow it, and writes the
step times and the choice into `train/engine/jit_choices.json`, which
`train.run --jit-compile auto` follows. `--measure-update` times the step
with the XLA-compiled optimizer update for every model measured and
records that choice there too, for `train.run --xla-update auto`.

The machine may be shared: every step time is a median of several steps
after warm-up, the matmul peak the best of ten, and rows measured in
different invocations can be merged into one table with `--results FILE`.

Runs on the TensorFlow and on the JAX backend (`KERAS_BACKEND=jax`); on a
machine without TensorFlow the input-pipeline columns read n/a.

Project modules are imported inside the functions that use them: a
benchmark child sets its threads and Keras backend before TensorFlow loads,
and the GPU machines run the JAX backend without TensorFlow.
"""

import datetime
import json
import os
import sys

from benchmarks import train_step
from benchmarks.train_step import row_label
from benchmarks.timing import best_seconds, machine_description
from common.tables import markdown_table
from common.cli import ArgumentParser, run_main
from common.files import write_json

COLUMNS = [
    "model", "input", "batch", "params", "forward GFLOPs/sample", "train GFLOPs/sample",
    "train step (s)", "step CPU (s)", "step before (s)", "speedup", "XLA update step (s)",
    "XLA update CPU (s)", "XLA update speedup", "bf16 step (s)", "bf16 speedup",
    "model samples/s", "train GFLOP/s", "peak GFLOP/s", "of peak",
    "pipeline samples/s", "pipeline >= 3x", "load",
]
JIT_COLUMNS = ["model", "device", "batch", "step (s)", "XLA step (s)", "XLA step CPU (s)",
               "XLA first call (s)", "choice", "note"]
UPDATE_COLUMNS = ["model", "device", "step (s)", "step CPU (s)", "XLA update step (s)",
                  "XLA update CPU (s)", "choice"]

# A train step does the forward pass and a backward pass of about twice its
# arithmetic (gradients with respect to activations and to weights); used
# when a row has no counted train FLOPs.
TRAIN_FLOPS_PER_FORWARD = 3
# The pipeline must deliver this many times what a train step consumes.
PIPELINE_HEADROOM = 3.0
# XLA is chosen only when its median step is at least this much faster:
# without it is Keras's default on CPU and costs no compile time.
XLA_MARGIN = 0.9
# The XLA-compiled optimizer update is chosen when its step takes at most
# this share of the plain step's CPU seconds and no more wall time: the
# CPU time is the steadier figure on a shared machine, and the wall time
# guards against an update that saves CPU by running on fewer threads.
UPDATE_MARGIN = 0.95


def matmul_peak_gflops(size=None, repeats=10):
    """fp32 GFLOP/s of one large square matmul on the default device.

    The best of `repeats` calls (a peak; the model times are medians). The
    size is 2048 on a CPU and 8192 on a GPU, large enough to reach the
    matrix units' steady rate. On GPUs the backend may run fp32 matmuls
    with TF32 tensor cores by default (JAX does); the models' matmuls run
    the same way, so the fraction compares like with like.
    """
    import keras
    import numpy as np

    from train.engine.distribute import device_kind  # see the module doc: imported when needed

    size = size or (8192 if device_kind() == "gpu" else 2048)
    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((size, size), dtype=np.float32))
    b = keras.ops.convert_to_tensor(rng.standard_normal((size, size), dtype=np.float32))
    # Reading one element back waits for the product on asynchronous
    # backends.
    seconds = best_seconds(lambda: float(keras.ops.matmul(a, b)[0, 0]), repeats)
    return 2 * size**3 / seconds / 1e9


def derive(row, peak_gflops):
    """Adds the columns computed from the measured ones."""
    row = dict(row)
    rate = row["model samples/s"]
    forward = row.get("forward GFLOPs/sample")
    if forward is not None:
        train = row.get("train GFLOPs/sample", TRAIN_FLOPS_PER_FORWARD * forward)
        row["train GFLOP/s"] = train * rate
        row["peak GFLOP/s"] = peak_gflops
        row["of peak"] = row["train GFLOP/s"] / peak_gflops
    pipeline = row.get("pipeline samples/s")
    if pipeline is None:
        row["pipeline >= 3x"] = "n/a"
    else:
        ratio = pipeline / rate
        row["pipeline >= 3x"] = f"{'yes' if ratio >= PIPELINE_HEADROOM else 'NO'} ({ratio:.1f}x)"
    return row


ABOUT_CHOICES = (
    "Median train-step seconds without and with XLA (jit_compile) per model and "
    "device kind, written by `python -m benchmarks --measure-jit` on the TensorFlow "
    f"backend. XLA is chosen when its step is at most {XLA_MARGIN:g}x the step without. "
    "'update': the step with only the optimizer's update compiled by XLA, beside the "
    "plain step measured interleaved with it, in wall and CPU seconds, per preset the "
    "report measured, written by `python -m benchmarks --measure-update`; chosen when "
    f"at one preset its CPU time is at most {UPDATE_MARGIN:g}x the plain step's and its "
    "wall time no longer, and at no preset is it slower in either."
)


def choose_jit(step_s, xla_step_s):
    """`"on"` when the XLA step is clearly faster, else `"off"`."""
    if xla_step_s is None or xla_step_s > XLA_MARGIN * step_s:
        return "off"
    return "on"


def choose_update(step_s, step_cpu_s, update_s, update_cpu_s):
    """`"on"` when the step with the XLA-compiled update is clearly cheaper
    in CPU time and not slower in wall time, else `"off"`."""
    if update_s is None or update_cpu_s is None:
        return "off"
    if update_cpu_s <= UPDATE_MARGIN * step_cpu_s and update_s <= step_s:
        return "on"
    return "off"


def format_row(row):
    row = dict(row)
    if "of peak" in row:
        row["of peak"] = f"{100 * row['of peak']:.1f}%"
    return row


def read_results(path):
    """The rows saved in a results file, {model: row}; {} when it is absent.

    Checked before anything is measured, so a bad file costs no measurement.

    Raises:
        ValueError: the file is not JSON, not `{"rows": {model: row}}`, or
            lies in a folder that does not exist (it could not be written).
    """
    if not path:
        return {}
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{path}: folder {folder} does not exist")
    if not os.path.exists(path):
        return {}
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder; --results takes a JSON file")
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}); expected a results file") from None
    expected = 'expected a JSON object {"rows": {model: row}}'
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: {expected}, got a {_json_type(saved)}")
    rows = saved.get("rows", {})
    if not isinstance(rows, dict):
        raise ValueError(f"{path}: 'rows' must map model names to rows, got a {_json_type(rows)}")
    for model, row in rows.items():
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {model!r} must be an object, got {_json_type(row)}")
    return rows


def _json_type(value):
    return {list: "list", dict: "object", str: "string"}.get(type(value), type(value).__name__)


def merge_results(path, rows, machine, peak):
    """Merges `rows` into the results file at `path`; returns every row."""
    saved = read_results(path)
    for row in rows:
        saved[row["model"]] = dict(row, machine=machine, peak_gflops=peak)
    if path:
        write_json(path, {"rows": saved})
    return list(saved.values())


def measure_jit(names, rows, repeats, path, timeout_s=150):
    """Times the XLA train step per model and records the choices."""
    from train.engine import distribute  # see the module doc: imported when needed

    check_jit_backend()
    device = distribute.device_kind()
    choices = distribute.read_jit_choices(path)
    choices.setdefault("models", {})
    table = []
    by_name = {row["model"]: row for row in rows}
    for name in names:
        step = by_name[name]["train step (s)"]
        record = train_step.measure_xla(name, repeats, reference_step_s=step, timeout_s=timeout_s)
        previous = choices["models"].get(name, {}).get(device, {})
        entry = {
            "batch": by_name[name]["batch"],
            "input": by_name[name]["input"],
            "step_s": round(step, 4),
            "xla_step_s": None if record["step_s"] is None else round(record["step_s"], 4),
            "xla_first_call_s": record.get("first_call_s"),
            "xla_cpu_s": None if record.get("cpu_s") is None else round(record["cpu_s"], 4),
            "choice": choose_jit(step, record["step_s"]),
            "note": record["note"],
            "measured": datetime.date.today().isoformat(),
            "machine": machine_description(),
        }
        if "update" in previous:  # `--measure-update`'s record stays
            entry["update"] = previous["update"]
        choices["models"].setdefault(name, {})[device] = entry
        table.append({
            "model": name, "device": device, "batch": entry["batch"], "step (s)": step,
            "XLA step (s)": entry["xla_step_s"] or "-",
            "XLA step CPU (s)": entry["xla_cpu_s"] or "-",
            "XLA first call (s)": entry["xla_first_call_s"] or "-",
            "choice": entry["choice"], "note": entry["note"],
        })
    choices["about"] = ABOUT_CHOICES
    write_json(path, choices)
    return table


def measure_update(rows, path):
    """Records each model's XLA-update choice beside its XLA choice in
    `path`, from every row that timed it (a model may have rows at several
    presets, e.g. the keyframe transformer on frames and on features: see
    `choose_model_update`); returns the table of what was recorded."""
    from train.engine import distribute  # see the module doc: imported when needed

    check_jit_backend()
    device = distribute.device_kind()
    choices = distribute.read_jit_choices(path)
    choices.setdefault("models", {})
    by_model = {}
    for row in rows:
        if row.get("XLA update step (s)") is None:
            continue
        by_model.setdefault(row.get("name", row["model"]), {})[row.get("preset", "benchmark")] = {
            "step_s": round(row["train step (s)"], 4),
            "step_cpu_s": round(row["step CPU (s)"], 4),
            "xla_update_step_s": round(row["XLA update step (s)"], 4),
            "xla_update_cpu_s": round(row["XLA update CPU (s)"], 4),
            "load": row.get("load"),
        }
    table = []
    for name, presets in by_model.items():
        record = {
            "choice": choose_model_update(presets),
            "presets": presets,
            "measured": datetime.date.today().isoformat(),
            "machine": machine_description(),
        }
        choices["models"].setdefault(name, {}).setdefault(device, {})["update"] = record
        for preset, numbers in presets.items():
            table.append({"model": row_label(name, preset), "device": device,
                          "step (s)": numbers["step_s"], "step CPU (s)": numbers["step_cpu_s"],
                          "XLA update step (s)": numbers["xla_update_step_s"],
                          "XLA update CPU (s)": numbers["xla_update_cpu_s"],
                          "choice": record["choice"]})
    choices["about"] = ABOUT_CHOICES
    write_json(path, choices)
    return table


def choose_model_update(presets):
    """A model's XLA-update choice from its rows, `{preset: {"step_s",
    "step_cpu_s", "xla_update_step_s", "xla_update_cpu_s"}}`: `"on"` when
    at least one row chooses it (`choose_update`) and no row is slower with
    it, in wall or in CPU time; else `"off"`."""
    chosen = [choose_update(p["step_s"], p["step_cpu_s"], p["xla_update_step_s"],
                            p["xla_update_cpu_s"]) for p in presets.values()]
    slower = any(p["xla_update_step_s"] > p["step_s"] or p["xla_update_cpu_s"] > p["step_cpu_s"]
                 for p in presets.values())
    return "on" if "on" in chosen and not slower else "off"


def check_jit_backend():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "--measure-jit measures the TensorFlow backend, where jit_compile is a "
            f"choice; on {keras.backend.backend()!r} train.run decides without it"
        )


def build_parser():
    """The command line of `main`."""
    import models  # see the module doc: imported when needed

    from train.engine.distribute import JIT_CHOICES_PATH  # see the module doc: imported when needed

    parser = ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(models.names()), choices=models.names(),
                        help="models to measure, each at its benchmark presets")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model (median)")
    parser.add_argument(
        "--measure-jit", action="store_true",
        help=f"also time the XLA train step and write {os.path.relpath(JIT_CHOICES_PATH)}",
    )
    parser.add_argument(
        "--jit-timeout", type=float, default=150,
        help="seconds allowed for one model's XLA compilation and first steps",
    )
    parser.add_argument(
        "--results", default=None,
        help="JSON file the rows are merged into (checked before anything is measured); "
             "the table then shows every model in it",
    )
    parser.add_argument("--no-pipeline", action="store_true", help="skip the input-pipeline columns")
    parser.add_argument("--no-before", action="store_true",
                        help="skip timing the implementation before the speed-ups")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 columns")
    parser.add_argument("--no-xla-update", action="store_true",
                        help="skip timing the step with the XLA-compiled optimizer update")
    parser.add_argument(
        "--measure-update", action="store_true",
        help="time the XLA-compiled optimizer update for every model measured and write "
             f"the choice into {os.path.relpath(JIT_CHOICES_PATH)}",
    )
    return parser


def main(argv=None):
    import models  # see the module doc: imported when needed

    from train.engine.distribute import JIT_CHOICES_PATH  # see the module doc: imported when needed

    args = build_parser().parse_args(argv)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.measure_jit or args.measure_update:
        check_jit_backend()
    if args.measure_update and args.no_xla_update:
        raise ValueError("--measure-update times the XLA update; drop --no-xla-update")
    read_results(args.results)

    machine = machine_description()
    peak = matmul_peak_gflops()
    print(f"machine: {machine}", flush=True)
    print(f"fp32 matmul peak (measured): {peak:,.0f} GFLOP/s\n", flush=True)
    rows = []
    for name in args.models:
        for preset in models.get_family(name).benchmark_presets:
            xla_update = (False if args.no_xla_update else
                          True if args.measure_update else None)
            row = train_step.measure(name, args.repeats, pipeline=not args.no_pipeline,
                                     before=not args.no_before, bfloat16=not args.no_bf16,
                                     preset=preset, xla_update=xla_update)
            rows.append(derive(row, peak))
            print(f"  measured {row['model']}: {row['train step (s)']:.3g} s/step",
                  file=sys.stderr, flush=True)
    shown = merge_results(args.results, rows, machine, peak)
    print(markdown_table([format_row(r) for r in shown], COLUMNS))
    if args.measure_jit:
        table = measure_jit(args.models, rows, args.repeats, JIT_CHOICES_PATH, args.jit_timeout)
        print(f"\nXLA choices written to {os.path.relpath(JIT_CHOICES_PATH)}:\n")
        print(markdown_table(table, JIT_COLUMNS))
    if args.measure_update:
        table = measure_update(rows, JIT_CHOICES_PATH)
        print(f"\nXLA update choices written to {os.path.relpath(JIT_CHOICES_PATH)}:\n")
        print(markdown_table(table, UPDATE_COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
