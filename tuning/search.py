"""Hyperparameter and architecture search: `python -m tuning.search`.

    python -m tuning.search --grid seed-ablation        # the notes' ten architectures
    python -m tuning.search --grid full                 # cnn x cross x self blocks
    python -m tuning.search --grid my_grid.yaml         # lists or architectures
    python -m tuning.search --grid seed-ablation --space lr.yaml --tuner random --max-trials 20
    python -m tuning.search --model convlstm --space convlstm_space.yaml

The search runs in `--out` (default `runs/tuning/<name>`), which holds the
Keras Tuner project, `search.json` (what was searched) and the results
table `results.md` / `results.csv`. Re-running the same command resumes the
search; finished trials are not run again.

Distributed: start one chief and any number of workers with the same
command and `--out` (a shared folder), told apart by Keras Tuner's variables
`KERASTUNER_TUNER_ID` (`chief`, `tuner0`, `tuner1`, ...),
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`. The chief runs the
oracle and writes the table when every trial is done; workers train.
"""

import argparse
import json
import os
import sys

import models
from common.cli import ArgumentParser, run_main
from common.files import write_json
from train import tasks
from train.engine import steps_per_epoch
from train.tasks.base import add_option_arguments, options_from_args, options_to_dict
from tuning import results
from tuning import space as space_lib
from tuning.hypermodel import SuiteHyperModel

RUNS_DIR = os.path.join("runs", "tuning")
TUNERS = ("grid", "random", "hyperband")


def build_parser(task=None):
    parser = ArgumentParser(
        prog="python -m tuning.search",
        description="Search architectures or config fields of the suite's models with Keras Tuner.",
    )
    target = parser.add_argument_group("what to search (one of --grid, --model)")
    target.add_argument(
        "--grid", default=None,
        help="R(2+1)D architecture grid: 'seed-ablation' (the notes' ten rows), "
        "'full' (cnn_blocks 4,6,7,8 x cross_blocks 0,1,2 x self_blocks 0,1,2,6,12), "
        "or a YAML file with 'architectures: [8+1+6, ...]' or lists "
        "'cnn_blocks', 'cross_blocks', 'self_blocks'",
    )
    target.add_argument("--model", default=None, help="any registered model, with --space")
    parser.add_argument(
        "--space", default=None,
        help="YAML file of config fields to search: 'field: [values]' or "
        "'field: {min, max, step, sampling: linear|log}'",
    )
    parser.add_argument("--tuner", choices=TUNERS, default="grid", help="Keras Tuner algorithm")
    parser.add_argument(
        "--max-trials", type=int, default=None,
        help="trial limit (grid: the whole grid; random: 10)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None,
        help="epochs per trial (Hyperband: the most epochs of a trial); default the model's",
    )
    parser.add_argument("--config", default=None, help="YAML file of config fields every trial starts from")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="a config field every trial starts from (repeatable), e.g. --set batch_size=4",
    )
    parser.add_argument(
        "--jit-compile", choices=("auto", "on", "off"), default="auto",
        help="XLA for each trial's train step; 'off' starts tiny trials much faster on CPU",
    )
    parser.add_argument(
        "--run-eagerly", action="store_true",
        help="train without graph tracing: faster for tiny smoke-test searches, slower for real ones",
    )
    parser.add_argument("--out", default=None, help="search folder; default runs/tuning/<grid or model>")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the tuner")
    parser.add_argument(
        "--verbose", type=int, default=1, choices=(0, 1, 2),
        help="0 silent, 1 one summary per trial, 2 also one line per epoch",
    )
    if task is not None:
        add_option_arguments(parser.add_argument_group("data"), task.Options)
    return parser


def searched_task(model, grid):
    """The task of the searched model (an architecture grid searches the
    families that declare it, whose task is the same), or None."""
    if model is not None and model in models.names():
        return tasks.task_for(model)
    if grid is not None:
        try:
            return tasks.task_for(space_lib.grid_families()[0])
        except ValueError:
            return None  # check_target says why
    return None


def parse_args(argv):
    """Two passes: what is searched decides which data flags exist."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--grid")
    peek.add_argument("--model")
    known, _ = peek.parse_known_args(argv)
    return build_parser(searched_task(known.model, known.grid)).parse_args(argv)


def check_target(args):
    if (args.grid is None) == (args.model is None):
        raise ValueError("give exactly one of --grid NAME|FILE.yaml and --model NAME")
    if args.model is not None:
        models.get_family(args.model)
        if args.space is None:
            raise ValueError(f"--model {args.model} needs --space FILE.yaml")
    if args.max_trials is not None and args.max_trials < 1:
        raise ValueError(f"--max-trials must be >= 1, got {args.max_trials}")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")


def base_overrides(args):
    """Fields every trial starts from: --config, then --set, then --epochs."""
    overrides = {}
    if args.config:
        overrides.update(space_lib.read_yaml_mapping(args.config, "--config"))
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE")
        overrides[field.strip()] = value.strip()
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    return overrides


def make_space(args, base, task, options):
    """The search space; trials on the embedded data start from each
    family's preset for it, beneath the search's own base fields."""
    if args.grid is not None:
        return space_lib.grid_space(args.grid, base, args.space, embedded=embedded_presets(
            task, options, base, tuple(space_lib.grid_families())))
    space = space_lib.model_space(
        args.model, base, args.space, embedded=embedded_presets(task, options, base, (args.model,))
    )
    return space, []


def embedded_presets(task, options, base, names):
    """Per model name, the preset's fields that the embedded data asks for
    (those the base does not set); empty for the user's own data."""
    fields = {}
    for name in names:
        family = models.get_family(name)
        own = {k: v for k, v in base.items() if k in family.config.field_names()}
        preset = task.embedded_preset(options, family.config.converted(**own))
        fields[name] = family.preset(preset) if preset in family.presets else {}
    return fields


def search_name(args):
    if args.model is not None:
        return args.model
    return os.path.splitext(os.path.basename(args.grid))[0]


def load_data(task, options, space, seed):
    """The datasets, loaded once for every trial, and the fields they fix."""
    # The fields that shape the data (clip shape, classes, batch size) are
    # base fields, the same in every trial: the first trial's config has them.
    config = space.config(space.settings[0])
    bundle = task.load(options, config, seed)
    return bundle, dict(bundle.config_updates), config.batch_size


def distributed_role():
    """'chief', 'worker' or None, from Keras Tuner's environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if not os.environ.get(name):
            raise ValueError(f"KERASTUNER_ORACLE_IP is set but {name} is not")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def record_search(out, description):
    """Writes `search.json`, or checks that a re-run searches the same."""
    path = os.path.join(out, "search.json")
    description = json.loads(json.dumps(description))
    if os.path.exists(path):
        with open(path) as file:
            recorded = json.load(file)
        if recorded != description:
            changed = sorted(k for k in set(recorded) | set(description)
                             if recorded.get(k) != description.get(k))
            raise ValueError(
                f"--out {out} holds a different search (differs in: {', '.join(changed)}); "
                "re-run it with the same flags or choose another --out"
            )
        return True
    os.makedirs(out, exist_ok=True)
    write_json(path, description)
    return False


def make_tuner(args, hypermodel, objective, out, epochs):
    import keras_tuner as kt

    common = dict(
        hypermodel=hypermodel,
        objective=objective,
        directory=out,
        project_name="tuner",
        overwrite=False,
        seed=args.seed,
    )
    if args.tuner == "grid":
        return kt.GridSearch(max_trials=args.max_trials, **common)
    if args.tuner == "random":
        return kt.RandomSearch(max_trials=args.max_trials or 10, **common)
    return kt.Hyperband(max_epochs=epochs, factor=3, **common)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    check_target(args)

    role = distributed_role()
    base = base_overrides(args)
    task = searched_task(args.model, args.grid)
    options = options_from_args(task.Options, args)
    # Everything that can be wrong with the request fails here, before data
    # is loaded or a model trained.
    space, skipped = make_space(args, base, task, options)

    import keras
    import keras_tuner as kt


    keras.utils.set_random_seed(args.seed)
    data, updates, data_batch_size = load_data(task, options, space, args.seed)
    if updates:
        # The data fixes the clip shape and classes: check every trial again.
        space_lib.check_space(space_lib.SearchSpace(
            space.hp_name, space.settings, space.ranges,
            {name: {**fields, **updates} for name, fields in space.base.items()},
        ))
    first = space.settings[0]
    first_config = space.config(first, updates)
    spec = models.get_family(first.model).training(first_config, steps_per_epoch=1)
    objective = kt.Objective(spec.monitor, direction=spec.monitor_mode)
    out = args.out or os.path.join(RUNS_DIR, search_name(args))
    description = {
        "target": {"grid": args.grid, "model": args.model},
        "space": space.describe(),
        "data_updates": updates,
        "data_options": options_to_dict(options),
        "tuner": args.tuner,
        "max_trials": args.max_trials,
        "seed": args.seed,
        "objective": [spec.monitor, spec.monitor_mode],
    }
    if role == "worker":
        os.makedirs(out, exist_ok=True)
        resumed = False
    else:
        resumed = record_search(out, description)
    if skipped and args.verbose:
        print(f"left out (self_blocks not divisible by cross_blocks): {', '.join(skipped)}")
    print(
        f"{'resuming' if resumed else 'starting'} {args.tuner} search over "
        f"{len(space.settings)} {space.hp_name} value(s) in {out}"
        + (f" as {role} {os.environ['KERASTUNER_TUNER_ID']}" if role else ""),
        flush=True,
    )


    hypermodel = SuiteHyperModel(
        space, data, updates, steps_per_epoch=steps_per_epoch(data, first_config),
        data_batch_size=data_batch_size, verbose=2 if args.verbose == 2 else 0,
        jit_compile={"auto": "auto", "on": True, "off": False}[args.jit_compile],
        run_eagerly=args.run_eagerly,
    )
    tuner = make_tuner(args, hypermodel, objective, out, args.epochs or first_config.epochs)
    tuner.search(verbose=1 if args.verbose else 0)
    if role == "worker":
        print(f"worker {os.environ['KERASTUNER_TUNER_ID']} done", flush=True)
        return 0
    rows = results.trial_rows(tuner.oracle, space, spec.monitor)
    columns = results.columns_of(rows, space, spec.monitor)
    print(results.write_tables(rows, columns, out))
    print(f"results: {os.path.join(out, 'results.md')}, {os.path.join(out, 'results.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
