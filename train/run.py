"""Train a model: `python -m train.run --model NAME [flags]`.

Writes `runs/<model>/<timestamp>/` (or `--out`): the resolved config, class
names, `best.keras` and `last.keras`, TensorBoard logs, `history.csv`,
`metrics.json` and the backup that lets a re-run with the same `--out`
resume after a crash.

The config is resolved as: the family's defaults < a preset (`--preset`,
or the family's preset for the embedded data when the data options select
it) < the YAML file (`--config`) < the command-line fields. The data then
fixes what it must (clip shape, feature dimension, classes); a field the
user set that the data contradicts is refused.
"""

import argparse
import datetime
import json
import os
import sys
import warnings

import models
from common.cli import ArgumentParser, run_main
from common.files import write_json
from train import data_check, engine, evaluate, run_folder, tasks
from train.engine import config as config_lib
from train.engine import distribute
from train.tasks.base import add_option_arguments, options_from_args, options_to_dict

RUNS_DIR = "runs"


def build_parser(model_name=None):
    parser = ArgumentParser(
        prog="python -m train.run",
        description="Train a video model. Flags after --model depend on the model: "
        "see `python -m train.run --model NAME --help`.",
    )
    parser.add_argument("--model", required=True, choices=models.names(), help="model to train")
    parser.add_argument(
        "--preset", default=None,
        help="a named configuration of the model (see its presets in --help) applied "
        "before --config and the field flags; without it, the model's preset for the "
        "embedded data when no data is given",
    )
    parser.add_argument("--config", default=None, help="YAML file of config fields")
    parser.add_argument("--out", default=None, help="run folder; without it, runs/<model>/<timestamp>")
    parser.add_argument("--seed", type=int, default=0, help="the one seed of the run")
    parser.add_argument(
        "--ensemble", type=int, default=1,
        help="train this many members with seeds seed, seed+1, ... and evaluate their average",
    )
    parser.add_argument(
        "--verbose", type=int, default=1, choices=(0, 1, 2),
        help="Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="first run the quick data check (python -m data.check --quick) on the data "
        "files given, and stop if it finds an error",
    )
    distribute.add_arguments(parser)
    if model_name in models.names():
        family = models.get_family(model_name)
        task = tasks.task_for(model_name)
        parser.epilog = config_lib.presets_epilog(model_name, family.presets)
        add_option_arguments(parser.add_argument_group("data"), task.Options)
        # Without --data the embedded synthetic data runs, at its preset.
        preset = task.embedded_preset(task.Options(), family.config)
        embedded = (preset, family.preset(preset)) if preset in family.presets else None
        config_lib.add_field_arguments(parser, family.config, embedded)
    return parser


def parse_args(argv):
    """Parses in two passes: `--model` first, then that model's flags."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--model")
    known, _ = peek.parse_known_args(argv)
    return build_parser(known.model).parse_args(argv)


def check_flags(args):
    """Checks every flag that can be checked before any data is read (the
    data options, the preset, the config fields and the YAML file); raises
    the first problem as a one-line user error."""
    if args.ensemble < 1:
        raise ValueError(f"--ensemble must be >= 1, got {args.ensemble}")
    if args.run_eagerly and args.jit_compile == "on":
        raise ValueError("--run-eagerly traces no graph for XLA to compile; drop --jit-compile on")
    task = tasks.task_for(args.model)
    options = options_from_args(task.Options, args)
    resolve_config(args, task, options, quiet=True)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    check_flags(args)
    if args.check:  # after the flags: a bad flag ends in its own line first
        data_check.check_options(options_from_args(tasks.task_for(args.model).Options, args))
    out = args.out or os.path.join(
        RUNS_DIR, args.model, datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    if args.ensemble == 1:
        return train_one(args, out, args.seed)
    members = []
    for index in range(args.ensemble):
        member = os.path.join(out, f"member_{index}")
        train_one(args, member, args.seed + index)
        members.append(member)

    # The test data when there is any, else the validation data.
    report = evaluate.evaluate_runs(members, split=None, out=out)
    print(json.dumps({"ensemble": members, report["split"]: report["summary"]}, indent=2))
    return 0


def resolve_config(args, task, options, quiet=False):
    """(config, preset, user fields): defaults < preset < YAML < flags.
    `quiet` leaves out the line about the embedded data's preset."""
    family = models.get_family(args.model)
    user = config_lib.user_overrides(family.config, args.config, config_lib.field_overrides(args))
    preset = args.preset
    fields = {}
    if preset is None:
        preset = task.embedded_preset(options, family.config.converted(**user))
        if preset is not None and preset in family.presets:
            fields = {k: v for k, v in family.preset(preset).items() if k not in user}
        else:
            preset = None
    config = family.get_config(preset, **user)
    if fields and not quiet:  # said once the config is valid: a refused one ends in its one line
        print(
            f"embedded synthetic data: preset {preset!r} of {args.model} "
            f"({', '.join(f'{k}={config_lib.flag_value(v)}' for k, v in fields.items())}); "
            "set these fields or --preset to change them",
            file=sys.stderr,
        )
    return config, preset, user


def apply_data_updates(config, data, user, source):
    """The config with the fields the data fixes; a field the user set to
    something else is refused, naming both values (unless the data adapts
    that field, see `DataBundle.adapted_fields`)."""
    updates = data.config_updates
    for field, value in updates.items():
        if field in data.adapted_fields:
            continue
        if field in user and config_lib.differs(getattr(config, field), value):
            flag = "--" + field.replace("_", "-")
            raise ValueError(
                f"{flag} {config_lib.flag_value(getattr(config, field))} but {source} "
                f"gives {config_lib.flag_value(value)}; leave {flag} out to use the data's"
            )
    return config.with_overrides(**updates)


def train_one(args, out, seed):
    # First: a multi-worker strategy must exist before any TensorFlow op runs.
    setup = engine.setup(args.strategy, args.mixed_precision)
    out = distribute.task_folder(out, setup.strategy)
    # One train.run at a time writes a run folder.
    with run_folder.RunLock(out):
        return _train_locked(args, out, seed, setup)


def _train_locked(args, out, seed, setup):
    import keras

    task = tasks.task_for(args.model)
    options = options_from_args(task.Options, args)
    config, preset, user = resolve_config(args, task, options)
    distribute.check_global_batch(config.batch_size, setup.strategy)
    resuming = run_folder.check_output_folder(out, args.model)
    keras.utils.set_random_seed(seed)
    with setup.strategy.scope():  # the strategy, not the pipeline, places batches on devices
        data = task.load(options, config, seed, split_seed=args.seed)
    config = apply_data_updates(config, data, user, data.source)
    data = distribute.distribute_options(data, setup.strategy)
    model, spec = engine.build(args.model, config, setup, engine.steps_per_epoch(data, config))
    jit_compile = False if args.run_eagerly else distribute.resolve_jit_compile(
        args.model, args.jit_compile, model)
    xla_update = distribute.resolve_xla_update(
        args.model, args.xla_update, jit_compile, setup.strategy, args.run_eagerly)

    os.makedirs(out, exist_ok=True)
    resolved = {
        "model": args.model,
        "preset": preset,
        "seed": seed,
        "config": config.to_dict(),
        "data": data.info,
        "data_options": options_to_dict(options),
        "distribute": {
            **distribute.describe(setup.strategy),
            "global_batch_size": config.batch_size,
            "mixed_precision": setup.precision,
            "jit_compile": jit_compile,
            "jit_compile_flag": args.jit_compile,
            "xla_update": xla_update,
            "run_eagerly": args.run_eagerly,
        },
    }
    if resuming:
        run_folder.check_resumable(out, resolved, data.class_names)
    run_folder.write_start(out, resolved, data.class_names)

    print(f"run folder: {out}" + (" (resuming)" if resuming else ""))
    history = engine.fit(
        model, spec, data, config, out=out, setup_=setup, jit_compile=jit_compile,
        xla_update=xla_update, run_eagerly=args.run_eagerly, verbose=args.verbose,
    )
    # The report is of the checkpoint the run keeps (best on its monitor),
    # the model train.evaluate and train.export read too; without validation
    # data there is none, and the trained model is reported. On one replica
    # the same architecture is in memory and only the checkpoint's weights
    # are read (rebuilding the model from the file took 6.7 s of a
    # frames-mode run); a model replicated over devices or workers would
    # predict replicated, so the report's model is loaded outside the
    # strategy from the file.
    best = os.path.join(out, "best.keras")
    if os.path.exists(best):
        if setup.strategy.num_replicas_in_sync == 1:
            with warnings.catch_warnings():
                # A checkpoint of an earlier stage holds the optimizer of
                # fewer trainable weights; the report needs no optimizer.
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
                model.load_weights(best)
        else:
            _, model = run_folder.load_run(out)
    report = evaluate.evaluate_model(model, args.model, data, out)
    metrics = {
        "train_seconds": history.train_seconds,
        "monitor": spec.monitor,
        **report,
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
