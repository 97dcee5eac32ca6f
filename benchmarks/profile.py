"""Where a train step's time goes: TensorFlow's profiler, ops by self time.

`python -m benchmarks.profile --model NAME [--preset PRESET] [--set FIELD=VALUE ...]`
builds the model as the benchmark report does (its "benchmark" preset by
default), runs a few warm-up train steps, records `--steps` more with
`tf.profiler.experimental` and prints the TensorFlow op types that took
the most time, by self time: an op's time minus the time of the ops
nested inside it on the same thread, so a `While` loop counts only its own
bookkeeping and each matmul inside it counts as a `MatMul`. The trace is
kept in `--logdir` for TensorBoard's profile plugin.

`--set` overrides config fields (values read as Python literals, else as
strings), so the variants of a model compare in two calls:

    python -m benchmarks.profile --model bilstm_attention --set lstm_implementation=keras
    python -m benchmarks.profile --model bilstm_attention --set lstm_implementation=fused

TensorFlow backend only (the profiler is TensorFlow's).

Project modules are imported inside the functions that use them: a
benchmark child sets its threads and Keras backend before TensorFlow loads,
and the GPU machines run the JAX backend without TensorFlow.
"""

import ast
import collections
import glob
import os
import tempfile

from common.cli import ArgumentParser, run_main

# Events of the executor itself, not of an op: their self time is the
# scheduling cost between ops.
EXECUTOR_EVENTS = {"ExecutorState::Process": "(executor: scheduling between ops)"}


def parse_overrides(items):
    """`["field=value", ...]` -> `{field: value}`; values are Python
    literals where they parse as one (`3`, `0.5`, `None`, `(1, 2)`), else
    strings."""
    overrides = {}
    for item in items or ():
        field, separator, text = item.partition("=")
        if not separator or not field:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            overrides[field] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[field] = text
    return overrides


def self_times(events):
    """Self time per event of one thread: `[(name, self_ps), ...]`.

    `events` are `(name, start_ps, duration_ps)`. An event's children are
    the events that start and end inside it; its self time is its duration
    minus its direct children's durations.
    """
    ordered = sorted(events, key=lambda e: (e[1], -e[2]))
    result = []
    stack = []  # [name, end, self]
    for name, start, duration in ordered:
        while stack and stack[-1][1] <= start:
            result.append((stack[-1][0], stack.pop()[2]))
        if stack:
            stack[-1][2] -= min(duration, stack[-1][1] - start)
        stack.append([name, start + duration, duration])
    result.extend((name, own) for name, _, own in stack)
    return result


def op_label(event_name, by="type"):
    """The row an event counts in: its op type (`"layer/MatMul:MatMul"` ->
    `MatMul`) or its full op name, executor events by what they are, and
    None for the profiler's own bookkeeping."""
    if event_name in EXECUTOR_EVENTS:
        return EXECUTOR_EVENTS[event_name]
    if ":" not in event_name or event_name.startswith("ThreadpoolListener"):
        return None
    name, _, op_type = event_name.rpartition(":")
    return op_type if by == "type" else f"{name.rsplit('/', 1)[-1]} ({op_type})"


def op_self_times(xspace_path, by="type"):
    """`{label: seconds}` of the host CPU plane of one profile file."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as file:
        space.ParseFromString(file.read())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            events = [
                (plane.event_metadata[e.metadata_id].name, e.offset_ps, e.duration_ps)
                for e in line.events
            ]
            for name, own in self_times(events):
                label = op_label(name, by)
                if label is not None:
                    totals[label] += own / 1e12
    return dict(totals)


def profile_train_step(name, preset="benchmark", overrides=None, steps=2, warmup=2, logdir=None):
    """Profiles `steps` train steps of `name`; returns `(model, wall
    seconds of the steps, the process's CPU seconds over them, trace
    file)`."""
    import time

    import keras
    import tensorflow as tf

    import models  # see the module doc: imported when needed

    family = models.get_family(name)
    preset = preset if preset in models.presets(name) else None
    config = models.get_config(name, preset=preset, **(overrides or {}))
    keras.utils.set_random_seed(0)
    model = models.build_from_config(name, config)
    spec = family.training(config, steps_per_epoch=100)
    model.compile(optimizer=spec.optimizer, loss=spec.loss, jit_compile=False)
    inputs, targets = family.example_batch(config, config.batch_size, seed=0)
    for _ in range(warmup):
        model.train_on_batch(inputs, targets)
    logdir = logdir or tempfile.mkdtemp(prefix="profile-")
    before = set(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    tf.profiler.experimental.start(logdir)
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.train_on_batch(inputs, targets)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    tf.profiler.experimental.stop()
    written = set(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)) - before
    path = max(written, key=os.path.getmtime)
    return model, wall, cpu, path


def top_rows(totals, wall_seconds, steps, top, cpu_seconds=None):
    """Table rows of the `top` labels by self time, per step."""
    busy = sum(totals.values())
    rows = []
    for label, seconds in sorted(totals.items(), key=lambda item: -item[1])[:top]:
        rows.append({
            "op": label,
            "self ms/step": 1000 * seconds / steps,
            "of busy time": f"{100 * seconds / busy:.1f}%",
        })
    rows.append({"op": "(all ops, every thread)", "self ms/step": 1000 * busy / steps,
                 "of busy time": "100%"})
    rows.append({"op": "(wall time of a step)", "self ms/step": 1000 * wall_seconds / steps,
                 "of busy time": ""})
    if cpu_seconds is not None:
        rows.append({"op": "(process CPU time of a step, with the profiler's own)",
                     "self ms/step": 1000 * cpu_seconds / steps, "of busy time": ""})
    return rows


def build_parser():
    """The command line of `main`."""
    import models  # see the module doc: imported when needed

    parser = ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, choices=models.names(),
                        help="the model whose train step is profiled")
    parser.add_argument("--preset", default="benchmark", help="the model's preset")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="config override, repeatable")
    parser.add_argument("--steps", type=int, default=2, help="profiled train steps")
    parser.add_argument("--top", type=int, default=15, help="rows to print")
    parser.add_argument("--by", choices=("type", "name"), default="type",
                        help="group by op type or by op name")
    parser.add_argument("--logdir", default=None, help="folder for the trace (default: a new temporary one)")
    return parser


def main(argv=None):
    import keras

    import models  # see the module doc: imported when needed
    from benchmarks.timing import load_average, machine_description  # see the module doc: imported when needed
    from common.tables import markdown_table  # see the module doc: imported when needed

    args = build_parser().parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"benchmarks.profile uses TensorFlow's profiler; the backend is {keras.backend.backend()!r}"
        )
    if args.preset not in models.presets(args.model):
        raise ValueError(
            f"--preset: {args.model} has no preset {args.preset!r}; "
            f"choose from {', '.join(models.presets(args.model))}"
        )
    if args.steps < 1 or args.top < 1:
        raise ValueError("--steps and --top must be >= 1")
    overrides = parse_overrides(args.set)
    _, wall, cpu, path = profile_train_step(args.model, args.preset, overrides, args.steps,
                                            logdir=args.logdir)
    totals = op_self_times(path, by=args.by)
    print(f"machine: {machine_description()}")
    settings = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "defaults"
    print(f"{args.model}, preset {args.preset}, {settings}; {args.steps} steps; trace {path}\n")
    print(f"load average {load_average():.1f}")
    print(markdown_table(top_rows(totals, wall, args.steps, args.top, cpu),
                         ["op", "self ms/step", "of busy time"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
