"""Export a run as a SavedModel that TF Serving loads.

`python -m train.export --run DIR [--version N]` writes
`saved_models/<model>/<version>/` with a `serving_default` signature whose
inputs and outputs carry the model's names (e.g. `frames` ->
`probabilities`), reloads it and checks it against Keras, and refuses to
overwrite a version that exists.
"""

import argparse
import os
import shutil
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

import models
from common.cli import ArgumentParser, run_main
from train import distribute

SAVED_MODELS_DIR = "saved_models"


def serving_signature(model):
    """One `tf.TensorSpec` per named model input, batch axis left open.

    Every model in the suite takes a dict of named inputs, so the names are
    the dict's keys.
    """
    return {
        key: tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=key)
        for key, tensor in model.input.items()
    }


def export_saved_model(model, model_name: str, path: str):
    """Writes `model` to `path` with a `serving_default` signature.

    The signature takes the model's named inputs and returns the family's
    named outputs (for example `frames` -> `probabilities`).
    """
    family = models.get_family(model_name)
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[serving_signature(model)], autograph=False)
    def serve(inputs):
        return family.name_outputs(model, model(inputs, training=False))

    archive.add_endpoint("serve", serve)
    archive.write_out(str(path), verbose=False)


def next_version(model_dir):
    """One more than the highest numeric version folder, starting at 1."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(name) for name in os.listdir(model_dir) if name.isdigit()]
    return max(versions, default=0) + 1


def verify_export(model, model_name, config, path, atol=1e-5):
    """Reloads the SavedModel and compares it with Keras on a random batch."""
    family = models.get_family(model_name)
    inputs, _ = family.example_batch(config, 2, seed=0)
    expected = family.name_outputs(model, model(inputs, training=False))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    served = serve(**{key: tf.constant(value) for key, value in inputs.items()})
    if sorted(served) != sorted(expected):
        raise AssertionError(f"signature outputs {sorted(served)} != {sorted(expected)}")
    worst = max(
        float(np.max(np.abs(np.asarray(served[key]) - np.asarray(expected[key]))))
        for key in expected
    )
    if worst > atol:
        raise AssertionError(f"SavedModel differs from Keras by {worst:.2e} > {atol}")
    return worst


def export_run(run, version=None, out_root=SAVED_MODELS_DIR, checkpoint="best.keras"):
    """Exports a run's checkpoint to `<out_root>/<model>/<version>/`.

    Raises:
        FileExistsError: that version already exists (nothing is touched).
    """
    from train.evaluate import load_record, load_run

    record = load_record(run)
    model_name = record["model"]
    if not os.path.exists(os.path.join(run, checkpoint)):
        raise FileNotFoundError(f"--run {run}: no {checkpoint}")
    model_dir = os.path.join(out_root, model_name)
    version = next_version(model_dir) if version is None else version
    if version < 1:
        raise ValueError(f"--version must be a positive integer, got {version}")
    target = os.path.join(model_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(
            f"{target} already exists; TF Serving versions are immutable, "
            f"choose another --version (next free: {next_version(model_dir)})"
        )
    _, model = load_run(run, checkpoint)
    config = models.get_family(model_name).config.with_overrides(**record["config"])
    os.makedirs(model_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir)
    try:
        export_saved_model(model, model_name, staging)
        difference = verify_export(
            model, model_name, config, staging, atol=distribute.export_tolerance(model)
        )
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target, difference


def main(argv=None):
    parser = ArgumentParser(
        prog="python -m train.export",
        description="Export a run as a versioned SavedModel for TF Serving "
        "(<out>/<model>/<version>/, signature serving_default).",
    )
    parser.add_argument("--run", required=True, help="run folder written by train.run")
    parser.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    parser.add_argument("--out", default=SAVED_MODELS_DIR, help="model base path of TF Serving")
    parser.add_argument(
        "--checkpoint", default="best.keras", choices=("best.keras", "last.keras"),
        help="which checkpoint of the run to export",
    )
    args = parser.parse_args(argv)
    target, difference = export_run(args.run, args.version, args.out, args.checkpoint)
    serve = tf.saved_model.load(target).signatures["serving_default"]
    inputs = {k: (v.shape.as_list(), v.dtype.name) for k, v in serve.structured_input_signature[1].items()}
    outputs = {k: (v.shape.as_list(), v.dtype.name) for k, v in serve.structured_outputs.items()}
    print(f"exported {target}")
    print(f"  signature serving_default: inputs {inputs} -> outputs {outputs}")
    print(f"  reloaded and checked against Keras: max difference {difference:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))
