"""Export a run for TF Serving and for devices, each export verified.

    python -m train.export --run DIR [--format saved_model|litert|litert-int8|onnx]
                           [--version N] [--out saved_models] [--streaming]

Layout under `--out` (default `saved_models/`); versions are immutable:

    <out>/<model>/<version>/                      SavedModel (TF Serving's base path <out>/<model>)
    <out>/<model>/<format>/<version>/model.tflite litert, litert-int8
    <out>/<model>/<format>/<version>/model.onnx   onnx
    <out>/<model>_stream/<version>/               streaming SavedModel (init_state, step)
    <out>/<model>_stream/litert/<version>/        streaming LiteRT

TF Serving only loads numeric version folders, so the `litert/`, `onnx/`
folders beside them are ignored by a server pointed at `<out>/<model>`.
Every version folder holds `export_report.json`: the gate's numbers, what
the export was checked on, and the versions of the tools.

Versions are the integers TF Serving reads (1 to 2^63 - 1). Two exports
at once take distinct versions: one whose chosen version another export
took while it was written moves on to the next free one, and one given
`--version` is refused in one line. The staging folder of an export that
was killed is removed by the next export into the same folder, once the
process that made it is gone (`common.files.remove_stale_folders`).

Each export is written into a hidden staging folder beside its version,
reloaded in its own runtime (TensorFlow, the LiteRT interpreter,
onnxruntime) and compared with the Keras model on held-out inputs (the
run's test and validation data, rebuilt from its `config.json`) before it
is renamed into place; a failed gate or check removes the staging folder
and leaves nothing behind (`train.formats.gates` has the gates; the
quantized gate's decision metric is the task's, `Task.export_gate`).
int8 is calibrated on examples of the run's own training data. A float
export of a run whose data cannot be rebuilt any more is checked on random
inputs of the model's shapes, and the report says so; an int8 export needs
the data and is refused without it.
"""

import datetime
import importlib.metadata
import os
import sys

import numpy as np

import models
from common.cli import USER_ERRORS, ArgumentParser, run_main
from common.files import atomic_folder, remove_stale_folders, write_json
from train import formats, tasks
from train.engine import distribute
from train.formats import streaming as streaming_lib
from train.run_folder import load_record, load_run
from train.tasks.base import options_from_record, run_config

SAVED_MODELS_DIR = "saved_models"
# TF Serving reads version folders as int64.
MAX_VERSION = 2**63 - 1
REPORT_NAME = "export_report.json"
DEFAULT_CALIBRATION_EXAMPLES = 100
DEFAULT_VERIFY_EXAMPLES = 200


class ExportRefused(ValueError):
    """An export that failed its gate; nothing was written."""


def base_folder(out_root, model_name, format_name="saved_model", streaming=False):
    """The folder that holds the numbered versions of one model and format."""
    name = f"{model_name}_stream" if streaming else model_name
    if formats.get_format(format_name).serving_root:
        return os.path.join(out_root, name)
    return os.path.join(out_root, name, format_name)


def next_version(model_dir):
    """One more than the highest version folder TF Serving can load (a
    number from 1 to `MAX_VERSION`), starting at 1."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(name) for name in os.listdir(model_dir)
                if name.isdigit() and 1 <= int(name) <= MAX_VERSION]
    version = max(versions, default=0) + 1
    if version > MAX_VERSION:
        raise ValueError(f"{model_dir}: holds version {MAX_VERSION}, the highest TF Serving "
                         "reads; give a free --version")
    return version


def check_version(version):
    """`version` if TF Serving can load it (1 to 2^63 - 1), else ValueError."""
    if not 1 <= version <= MAX_VERSION:
        raise ValueError(f"--version must be an integer from 1 to {MAX_VERSION} (TF Serving "
                         f"reads versions as int64), got {version}")
    return version


# ---------------------------------------------------------------------------
# The run's data: held-out inputs to check on, training inputs to calibrate.


def rebuild_data(record):
    """The run's data bundle, rebuilt through its task from `config.json`:
    the recorded data options, config and seeds (the held-out rows are
    those the run held out)."""
    task = tasks.task_for(record["model"])
    options = options_from_record(task.Options, record.get("data_options"))
    config = run_config(record)
    seed = record.get("seed", 0)
    split_seed = (record.get("data") or {}).get("data_seed", seed)
    return task.load(options, config, seed, split_seed=split_seed)


def held_out_batches(bundle, limit, seen):
    """Input batches of the bundle's test, then validation data, at most
    `limit` examples; `seen` (a dict) counts the examples of each split."""
    count = 0
    for split in ("test", "val"):
        dataset = bundle.split(split)
        if dataset is None:
            continue
        for inputs, _ in dataset:
            inputs = {key: np.asarray(value) for key, value in inputs.items()}
            take = min(len(next(iter(inputs.values()))), limit - count)
            if take <= 0:
                return
            seen[split] = seen.get(split, 0) + take
            count += take
            yield {key: value[:take] for key, value in inputs.items()}


def single_examples(dataset, limit, open_steps):
    """Examples of a batched dataset one at a time (a batch of one), at
    most `limit`; with `open_steps`, each cut to its real steps (`mask`)."""
    count = 0
    for inputs, _ in dataset:
        inputs = {key: np.asarray(value) for key, value in inputs.items()}
        for row in range(len(next(iter(inputs.values())))):
            example = {key: value[row:row + 1] for key, value in inputs.items()}
            if open_steps and "mask" in example:
                length = int(example["mask"].sum())
                if length == 0:
                    continue
                example = {key: value[:, :length] for key, value in example.items()}
            yield example
            count += 1
            if count >= limit:
                return


def random_batches(model_name, config, count=8, batch_size=4):
    """Random inputs of the model's shapes (`Family.example_batch`)."""
    family = models.get_family(model_name)
    for seed in range(max(1, count // batch_size)):
        inputs, _ = family.example_batch(config, batch_size, seed=100 + seed)
        yield inputs


# ---------------------------------------------------------------------------
# One export.


def export_run(run, version=None, out_root=SAVED_MODELS_DIR, checkpoint="best.keras",
               format_name="saved_model", streaming=False,
               calibration_examples=DEFAULT_CALIBRATION_EXAMPLES,
               verify_examples=DEFAULT_VERIFY_EXAMPLES, threads=None):
    """Exports a run's checkpoint in one format and verifies it.

    Returns:
        (the version folder, the report written into it as `export_report.json`).

    Raises:
        FileExistsError: that version already exists (nothing is touched).
        ExportRefused: the export failed its gate (nothing is written).
        ValueError: an unknown format, a combination the model does not
            support, or an int8 export of a run whose training data cannot
            be rebuilt.
    """
    export_format = formats.get_format(format_name)
    record = load_record(run)
    model_name = record["model"]
    formats.check_format(format_name, model_name)
    streaming_form = None
    if streaming:
        streaming_form = streaming_lib.streaming_form(model_name)
        streaming_lib.check_format(format_name)
    if not os.path.exists(os.path.join(run, checkpoint)):
        raise FileNotFoundError(f"--run {run}: no {checkpoint}")
    model_dir = base_folder(out_root, model_name, format_name, streaming)
    for folder in (out_root, os.path.dirname(model_dir), model_dir):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise NotADirectoryError(
                f"--out {out_root}: {folder} is a file; expected a folder of exported versions")
    chosen = version is None
    version, target = _new_version(model_dir, version)

    _, model = load_run(run, checkpoint)
    config = run_config(record)
    quantized = export_format.needs_calibration
    bundle, data_problem = _rebuilt_data(record, run, quantized)
    seen = {}
    batches, source = _inputs_to_check_on(
        bundle, data_problem, quantized, run, model_name, config, verify_examples, seen
    )
    calibration, calibrated = None, []
    if quantized:
        calibration, calibrated = _calibration_examples(model, bundle, calibration_examples)

    os.makedirs(model_dir, exist_ok=True)
    remove_stale_folders(model_dir)  # the staging folders of killed exports

    def another_version(taken, staging):
        """Another export took the version meanwhile: a version chosen here
        moves on to the next free one; one given with --version is refused."""
        if not chosen:
            raise FileExistsError(
                f"{taken} was written by another export meanwhile; exported versions are "
                f"immutable, choose another --version (next free: {next_version(model_dir)})"
            )
        report["version"] = next_version(model_dir)
        write_json(os.path.join(staging, REPORT_NAME), report)
        return os.path.join(model_dir, str(report["version"]))

    with atomic_folder(target, taken=another_version) as staging:
        written, runner, report = _write_and_verify(
            export_format, model, model_name, config, staging, batches, calibration, threads,
            streaming_form,
        )
        _complete_report(
            report, export_format, written, runner, staging, source, seen,
            format=format_name, model=model_name, streaming=streaming, run=os.path.abspath(run),
            checkpoint=checkpoint, version=version,
        )
        if quantized:
            report["calibration"] = {"source": "the run's training data", "examples": len(calibrated)}
        _refuse_unless_the_gate_passed(report, format_name, run, source)
        write_json(os.path.join(staging, REPORT_NAME), report)
    return os.path.join(model_dir, str(report["version"])), report


def _new_version(model_dir, version):
    """(version, its folder): `version`, or without one the next free one.

    Raises:
        ValueError: `version` is not one TF Serving reads (1 to 2^63 - 1).
        FileExistsError: the version exists (exported versions are immutable).
    """
    version = next_version(model_dir) if version is None else check_version(version)
    target = os.path.join(model_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(
            f"{target} already exists; exported versions are immutable, "
            f"choose another --version (next free: {next_version(model_dir)})"
        )
    return version, target


def _rebuilt_data(record, run, quantized):
    """(the run's data bundle or None, why it cannot be rebuilt or None).

    A float export can be checked on random inputs instead; a quantized one
    is calibrated on the training data, so without it there is no export.

    Raises:
        ValueError: a quantized export of a run whose training data cannot
            be rebuilt, or has no training split.
    """
    bundle, data_problem = None, None
    try:
        bundle = rebuild_data(record)
    except USER_ERRORS as error:
        data_problem = str(error) or type(error).__name__
    if quantized:
        if data_problem is not None:
            raise ValueError(
                f"--run {run}: its training data cannot be rebuilt for int8 calibration "
                f"({data_problem})"
            )
        if bundle.train is None:
            raise ValueError(f"--run {run}: the run's data has no training split to calibrate on")
    return bundle, data_problem


def _inputs_to_check_on(bundle, data_problem, quantized, run, model_name, config, limit, seen):
    """(input batches, what they are): the run's held-out data, at most
    `limit` examples, or for a float export of a run without any, random
    inputs of the model's shapes. `seen` counts the examples of each split
    as the batches are read (random inputs count as `seen["random"] = None`).

    Raises:
        ValueError: a quantized export of a run without held-out data.
    """
    if bundle is not None and bundle.first_split(("test", "val")) is not None:
        return held_out_batches(bundle, limit, seen), "the run's held-out data"
    if quantized:
        raise ValueError(f"--run {run}: the run's data has no test or validation split to check on")
    seen["random"] = None
    return random_batches(model_name, config), "random inputs of the model's shapes" + (
        f" (the run's data cannot be rebuilt: {data_problem})" if data_problem else
        " (the run's data has no test or validation split)"
    )


def _calibration_examples(model, bundle, count):
    """(a generator function of at most `count` training examples, one at a
    time, each cut to its real steps when the model takes any number; the
    list its last run appended one entry to per example)."""
    open_steps = any(tensor.shape[1] is None for tensor in model.inputs)
    calibrated = []

    def calibration():
        # The converter runs the generator once; count what it saw.
        calibrated.clear()
        for example in single_examples(bundle.train, count, open_steps):
            calibrated.append(1)
            yield example

    return calibration, calibrated


def _write_and_verify(export_format, model, model_name, config, staging, batches, calibration,
                      threads, streaming_form=None):
    """Writes the export into `staging`, reloads it in its own runtime and
    compares it with Keras on `batches` under the task's gate.

    Returns:
        (what was written, the runner, the verification report).
    """
    if streaming_form is not None:
        return streaming_lib.export_and_verify(
            export_format.name, model, config, streaming_form, staging, batches, threads
        )
    written = export_format.write(model, model_name, staging, calibration)
    runner = export_format.load_runner(staging, threads)
    report = formats.verify(export_format, model, model_name, runner, batches,
                            tasks.task_for(model_name).export_gate(),
                            float_tolerance=float_tolerance(model, export_format))
    return written, runner, report


def _complete_report(report, export_format, written, runner, staging, source, seen, **fields):
    """Adds to the verification report what was exported from where, its
    signature and size, what it was checked on and the tools' versions;
    `fields` (format, model, run, ...) go in as they are."""
    inputs, outputs = runner.signature()
    report.update(
        **fields,
        file=os.path.relpath(written.path, staging) if written.path != staging else ".",
        bytes=_size(written.path),
        runtime=export_format.runtime,
        signature={"inputs": inputs, "outputs": outputs},
        rewrites=written.rewrites,
        signature_batch_size=written.batch_size,
        checked_on={"source": source, **{k: v for k, v in seen.items() if v is not None}},
        versions=tool_versions(export_format),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def _refuse_unless_the_gate_passed(report, format_name, run, source):
    """Raises `ExportRefused` with the gate's numbers when it failed."""
    gate = report["gate"]
    if not gate["passed"]:
        raise ExportRefused(
            f"{format_name} export of {run} refused: {gate['metric']} {gate['value']:.4g} "
            f"{'>' if gate['comparison'] == '<=' else '<'} {gate['threshold']} on "
            f"{report['examples']} examples of {source}; nothing was written"
        )


def float_tolerance(model, export_format):
    """The float gate: 1e-4, or what a mixed-precision model's SavedModel
    may drift (`train.engine.distribute.export_tolerance`) when that is larger."""
    tolerance = formats.FLOAT_TOLERANCE
    if export_format.serving_root:
        tolerance = max(tolerance, distribute.export_tolerance(model))
    return tolerance


def tool_versions(export_format):
    packages = ["tensorflow", "keras", *export_format.packages]
    versions = {}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path) for name in names
    )


def describe(target, report):
    """What the command prints about a finished export."""
    gate = report["gate"]
    checked = report["checked_on"]
    counts = ", ".join(f"{k} {v}" for k, v in checked.items() if k != "source")
    lines = [
        f"exported {os.path.join(target, report['file']) if report['file'] != '.' else target}",
        f"  inputs {report['signature']['inputs']} -> outputs {report['signature']['outputs']}",
        f"  reloaded in {report['runtime']} and checked against Keras on {report['examples']} "
        f"examples of {checked['source']}" + (f" ({counts})" if counts else ""),
        f"  gate {gate['metric']} = {gate['value']:.3g} "
        f"({gate['comparison']} {gate['threshold']}): passed",
        "  max |diff| " + ", ".join(f"{k} {v:.1e}" for k, v in report["max_abs_diff"].items()),
        f"  report: {os.path.join(target, REPORT_NAME)}",
    ]
    return "\n".join(lines)


def build_parser():
    """The command line of `main`."""
    parser = ArgumentParser(
        prog="python -m train.export",
        description="Export a run as a versioned SavedModel for TF Serving "
        "(<out>/<model>/<version>/, signature serving_default) or as LiteRT / ONNX "
        "(<out>/<model>/<format>/<version>/), reloaded in its own runtime and checked "
        "against Keras on the run's held-out data before it is moved into place.",
    )
    parser.add_argument("--run", required=True, help="run folder written by train.run")
    parser.add_argument("--format", default="saved_model", choices=formats.names(),
                        dest="format_name", help="export format")
    parser.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    parser.add_argument("--out", default=SAVED_MODELS_DIR, help="model base path of TF Serving")
    parser.add_argument(
        "--checkpoint", default="best.keras", choices=("best.keras", "last.keras"),
        help="which checkpoint of the run to export",
    )
    parser.add_argument(
        "--streaming", action="store_true",
        help="export the frame-by-frame model of a model that has one (saved_model with "
        "init_state and step signatures, or litert) into <out>/<model>_stream/",
    )
    parser.add_argument(
        "--calibration-examples", type=int, default=DEFAULT_CALIBRATION_EXAMPLES,
        help="litert-int8: training examples the quantization ranges are calibrated on",
    )
    parser.add_argument(
        "--verify-examples", type=int, default=DEFAULT_VERIFY_EXAMPLES,
        help="held-out examples the export is checked on",
    )
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of the runtime that checks the export")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for flag in ("calibration_examples", "verify_examples"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be a number of threads >= 1, got {args.threads}")
    if args.version is not None:
        check_version(args.version)
    target, report = export_run(
        args.run, args.version, args.out, args.checkpoint, args.format_name, args.streaming,
        args.calibration_examples, args.verify_examples, args.threads,
    )
    print(describe(target, report))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))
