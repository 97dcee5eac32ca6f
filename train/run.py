"""Train a model: `python -m train.run --model NAME [flags]`.

Writes `runs/<model>/<timestamp>/` (or `--out`): the resolved config, class
names, `best.keras` and `last.keras`, TensorBoard logs, `history.csv`,
`metrics.json` and the backup that lets a re-run with the same `--out`
resume after a crash.
"""

import argparse
import datetime
import json
import os
import sys
import time
import warnings

import numpy as np

from data.cli import ArgumentParser, run_main

RUNS_DIR = "runs"


def build_parser(model_name=None):
    import models
    from train import config as config_lib
    from train import distribute, sources

    parser = ArgumentParser(
        prog="python -m train.run",
        description="Train a video model. Flags after --model depend on the model: "
        "see `python -m train.run --model NAME --help`.",
    )
    parser.add_argument("--model", required=True, choices=models.NAMES, help="model to train")
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
    distribute.add_arguments(parser)
    if model_name in models.NAMES:
        family = models.get_family(model_name)
        source = sources.get_source(type(family.config).input_kind)
        source.add_arguments(parser.add_argument_group("data"))
        config_lib.add_field_arguments(parser, family.config)
    return parser


def parse_args(argv):
    """Parses in two passes: `--model` first, then that model's flags."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--model")
    known, _ = peek.parse_known_args(argv)
    return build_parser(known.model).parse_args(argv)


def source_arguments(args, source):
    """The values of a source's own flags, to record and to replay."""
    parser = ArgumentParser(add_help=False)
    source.add_arguments(parser)
    return {key: getattr(args, key) for key in vars(parser.parse_args([]))}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.ensemble < 1:
        raise ValueError(f"--ensemble must be >= 1, got {args.ensemble}")
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
    from train import evaluate

    # The test data when there is any, else the validation data.
    report = evaluate.evaluate_runs(members, split=None, out=out)
    print(json.dumps({"ensemble": members, report["split"]: report["summary"]}, indent=2))
    return 0


def check_run_folder(out, model_name):
    """Refuses a folder that holds another model's run or a finished run."""
    config_path = os.path.join(out, "config.json")
    if os.path.exists(config_path):
        with open(config_path) as file:
            recorded = json.load(file).get("model")
        if recorded != model_name:
            raise ValueError(
                f"--out {out} holds a run of model {recorded!r}, not {model_name!r}; "
                "choose another --out"
            )
    if os.path.exists(os.path.join(out, "metrics.json")):
        raise FileExistsError(
            f"--out {out} holds a finished run (metrics.json exists); "
            "choose another --out to train again"
        )
    return os.path.exists(config_path)


def train_one(args, out, seed):
    import keras

    import models
    from train import callbacks as callbacks_lib
    from train import config as config_lib
    from train import distribute, evaluate, sources

    # First: a multi-worker strategy must exist before any TensorFlow op runs.
    strategy = distribute.make_strategy(args.strategy)
    out = distribute.task_folder(out, strategy)
    family = models.get_family(args.model)
    config, overridden = config_lib.resolve_config(
        family.config, args.config, config_lib.field_overrides(args)
    )
    distribute.check_global_batch(config.batch_size, strategy)
    precision = distribute.set_mixed_precision(args.mixed_precision)
    resuming = check_run_folder(out, args.model)
    args.overridden = overridden
    keras.utils.set_random_seed(seed)
    with strategy.scope():  # the strategy, not the pipeline, places batches on devices
        data = sources.get_source(type(config).input_kind).load(args, config, seed)
    config = config.with_overrides(**data.config_updates)
    data = distribute.distribute_options(data, strategy)
    with strategy.scope():
        model = models.build_from_config(args.model, config)
        spec = family.training(config, steps_per_epoch=steps_per_epoch(data, config))
    distribute.check_mixed_precision(model, precision)
    jit_compile = distribute.resolve_jit_compile(args.model, args.jit_compile, model)

    os.makedirs(out, exist_ok=True)
    resolved = {
        "model": args.model,
        "seed": seed,
        "config": config.to_dict(),
        "data": data.info,
        "source_args": source_arguments(args, sources.get_source(type(config).input_kind)),
        "distribute": {
            **distribute.describe(strategy),
            "global_batch_size": config.batch_size,
            "mixed_precision": precision,
            "jit_compile": jit_compile,
            "jit_compile_flag": args.jit_compile,
        },
    }
    if resuming:
        with open(os.path.join(out, "config.json")) as file:
            recorded = json.load(file)
        for key in ("config", "source_args", "seed"):
            now = json.loads(json.dumps(resolved[key]))
            if recorded.get(key) != now:
                raise ValueError(
                    f"--out {out} holds a run with a different {key}"
                    f"{differences(recorded.get(key), now)}; "
                    "resume it with the same flags or choose another --out"
                )
    callbacks_lib.write_json(os.path.join(out, "config.json"), resolved)
    callbacks_lib.write_json(os.path.join(out, "class_names.json"), data.class_names)

    stages = spec.stages or (models.Stage("train", config.epochs, spec.optimizer),)
    class_weight = class_weights(config, data.train_labels)

    print(f"run folder: {out}" + (" (resuming)" if resuming else ""))
    started = time.time()
    for stage in stages:
        done_marker = os.path.join(out, f"stage_{stage.name}.weights.h5")
        if stage.prepare is not None:
            stage.prepare(model)
        if os.path.exists(done_marker):
            model.load_weights(done_marker)
            print(f"stage {stage.name}: already done, weights restored")
            continue
        with strategy.scope():
            model.compile(
                optimizer=stage.optimizer, loss=spec.loss, metrics=list(spec.metrics),
                jit_compile=jit_compile,
            )
        callbacks = [
            distribute.SyncMovingStatistics(strategy),
            callbacks_lib.BackupAndRestore(os.path.join(out, "backup", stage.name)),
            callbacks_lib.RunCheckpoint(out, spec.monitor, spec.monitor_mode),
            keras.callbacks.EarlyStopping(
                monitor=spec.monitor,
                mode=spec.monitor_mode,
                patience=config.patience,
                restore_best_weights=True,
            ),
            keras.callbacks.CSVLogger(os.path.join(out, "history.csv"), append=True),
            keras.callbacks.TensorBoard(os.path.join(out, "logs")),
        ]
        with warnings.catch_warnings():
            # A stream of video files skips unreadable ones, so its length is
            # unknown until the first epoch has run out of data; Keras then
            # warns that training was interrupted. It was not: no
            # steps_per_epoch is asked for, every epoch is one pass.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(
                data.train,
                validation_data=data.val,
                epochs=stage.epochs,
                callbacks=callbacks,
                class_weight=class_weight,
                shuffle=False,  # the pipeline shuffles
                verbose=args.verbose,
            )
        callbacks_lib.save_model_atomic(model, done_marker)

    report = evaluate.evaluate_model(
        model, args.model, data, class_names=data.class_names, out=out
    )
    metrics = {
        "train_seconds": round(time.time() - started, 1),
        "monitor": spec.monitor,
        **report["summary"],
    }
    callbacks_lib.write_json(os.path.join(out, "metrics.json"), metrics)
    print(json.dumps(metrics, indent=2))
    return 0


def steps_per_epoch(data, config):
    """Batches per epoch, for schedules counted in epochs. A pipeline that
    may skip unreadable files has no known length: count the labels."""
    steps = int(data.train.cardinality())
    if steps < 0 and data.train_labels is not None:
        steps = -(-len(data.train_labels) // config.batch_size)
    return max(steps, 1)


def differences(recorded, now):
    """' (field: recorded A, now B, ...)' for two dicts, '' otherwise."""
    if not isinstance(recorded, dict) or not isinstance(now, dict):
        return ""
    changed = [
        f"{key}: recorded {recorded.get(key)!r}, now {now.get(key)!r}"
        for key in sorted(set(recorded) | set(now))
        if recorded.get(key) != now.get(key)
    ]
    return f" ({'; '.join(changed)})" if changed else ""


def class_weights(config, labels):
    """Inverse-frequency class weights when the config asks for them."""
    if getattr(config, "class_weight", "none") != "balanced" or labels is None:
        return None
    labels = np.asarray(labels).astype(int).ravel()
    classes = max(config.num_classes, 2)
    counts = np.bincount(labels, minlength=classes).astype(float)
    present = counts > 0
    weights = np.zeros(classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {index: float(weight) for index, weight in enumerate(weights)}


if __name__ == "__main__":
    raise SystemExit(run_main(main))
