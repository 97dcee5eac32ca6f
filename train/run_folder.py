"""The run folder: how `train.run` writes it and how every command reads it.

    runs/<model>/<timestamp>/
        config.json        the resolved config, seed, data options and flags
        class_names.json   the class names, in id order
        best.keras         best epoch on the recipe's monitor
        last.keras         the last epoch
        history.csv, logs/, backup/, progress.json, metrics.json, *_report.json
        run.lock           while a train.run writes the folder: that process's id

`read_config` reads `config.json` without importing TensorFlow (the web
page refuses a folder that is not a run before it loads anything);
`load_record` adds the class names and checks the model is registered;
`load_run` loads a checkpoint and checks it is the model the run names,
with as many outputs as the run has class names. `check_output_folder` and
`check_resumable` are what `train.run` checks before it writes into a
folder, and `RunLock` keeps a second `train.run` out of a folder one is
writing.

Example:

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> write_json(os.path.join(folder, CONFIG), {"model": "convlstm", "config": {}})
>>> read_config(folder, "--run x")["model"]
'convlstm'
"""

import contextlib
import json
import os
import sys

from common.files import lock_file, read_json, write_json


CONFIG = "config.json"
CLASS_NAMES = "class_names.json"
BEST = "best.keras"
LAST = "last.keras"
METRICS = "metrics.json"
LOCK = "run.lock"


def read_config(run, label):
    """A run folder's `config.json`, checked to be a mapping that names a
    model (read without importing TensorFlow). `label` names the folder in
    messages (e.g. "--run runs/x")."""
    path = os.path.join(run, CONFIG)
    if not os.path.isfile(path):
        members = sorted(name for name in (os.listdir(run) if os.path.isdir(run) else [])
                         if name.startswith("member_")
                         and os.path.isfile(os.path.join(run, name, CONFIG)))
        if members:
            raise FileNotFoundError(
                f"{label}: an ensemble folder (members {', '.join(members)}), not one run; "
                f"pass one member, e.g. {os.path.join(run, members[0])} (train.evaluate --runs "
                f"{os.path.join(run, 'member_*')} evaluates them together)"
            )
        raise FileNotFoundError(f"{label}: no {CONFIG}; is it a run folder?")
    record = read_json(path, "run config")
    if not isinstance(record, dict) or not isinstance(record.get("model"), str):
        raise ValueError(f"{path}: expected a JSON mapping with a 'model' name, as train.run writes")
    return record


def check_servable(run, label=None):
    """Refuses a folder that is not a finished run, without importing
    TensorFlow: it must hold a `config.json` naming a model and a
    `best.keras`. Returns the record."""
    label = label or f"--run {run}"
    if not os.path.isdir(run):
        raise FileNotFoundError(f"{label}: no such folder")
    record = read_config(run, label)
    if not os.path.isfile(os.path.join(run, BEST)):
        raise FileNotFoundError(f"{label}: no {BEST}; has the run finished an epoch?")
    return record


def load_record(run):
    """Reads a run folder's `config.json` (and `class_names.json`).

    Raises:
        FileNotFoundError: the folder has no config.json.
        ValueError: config.json is not a JSON mapping naming a registered model.
    """
    import models  # Keras: the page reads configs before it may load it

    record = read_config(run, run)
    models.get_family(record["model"])
    names_path = os.path.join(run, CLASS_NAMES)
    if os.path.isfile(names_path):
        record["class_names"] = read_json(names_path, "class name list")
    return record


def load_run(run, checkpoint=BEST):
    """Reads a run folder; returns (record, the checkpoint's model), the
    model checked to be the one the run names (`check_model`)."""
    import keras  # see load_record

    record = load_record(run)
    path = os.path.join(run, checkpoint)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run}: no {checkpoint}; has the run finished an epoch?")
    try:
        model = keras.saving.load_model(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path}: cannot be loaded as a Keras model ({first})") from None
    check_model(run, record, model, checkpoint)
    return record, model


def model_classes(model):
    """The classes a classifier's first output tells apart (2 for one
    sigmoid output), or None when its width is open (a score per step)."""
    width = model.outputs[0].shape[-1] if model.outputs else None
    if width is None:
        return None
    return 2 if width == 1 else int(width)


def check_model(run, record, model, checkpoint=BEST):
    """Refuses a checkpoint that is not the run's model, or class names that
    do not match its outputs; says once when a classifier has no class names.

    A checkpoint of another family (its model's name is another registered
    model's), another input shape or another number of outputs than
    `config.json` records would predict and export under the run's name;
    class names of another count would label the outputs wrongly.
    """
    import models  # see load_record

    path = os.path.join(run, checkpoint)
    if model.name != record["model"] and model.name in models.names():
        raise ValueError(
            f"{path}: holds a {model.name} model but {CONFIG} names {record['model']}; the "
            "checkpoint is not this run's"
        )
    config = record.get("config") or {}
    recorded = config.get("input_shape")
    if recorded is not None and model.inputs:
        actual = list(model.inputs[0].shape[1:])
        if len(actual) != len(recorded) or any(
                a is not None and r is not None and a != r for a, r in zip(actual, recorded)):
            raise ValueError(
                f"{path}: takes inputs of shape {actual} but {CONFIG} records input_shape "
                f"{list(recorded)}; the checkpoint is not this run's"
            )
    classes = model_classes(model)
    if classes is None:
        return
    recorded_classes = config.get("num_classes")
    if recorded_classes is not None and max(int(recorded_classes), 2) != classes:
        raise ValueError(
            f"{path}: tells {classes} classes apart but {CONFIG} records num_classes "
            f"{recorded_classes}; the checkpoint is not this run's"
        )
    names = record.get("class_names")
    if names is None:
        print(f"note: {run} has no {CLASS_NAMES}; its {classes} classes are named by their "
              f"ids 0 to {classes - 1}", file=sys.stderr)
    elif not isinstance(names, list) or len(names) != classes:
        count = len(names) if isinstance(names, list) else "not a list of"
        raise ValueError(
            f"{os.path.join(run, CLASS_NAMES)}: {count} names but the model's output tells "
            f"{classes} classes apart; expected a JSON list of {classes} class names, in id order"
        )


def check_output_folder(out, model_name):
    """Refuses a folder that holds another model's run or a finished run;
    returns whether it holds a run to resume."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out} is a file; expected a run folder")
    config_path = os.path.join(out, CONFIG)
    if os.path.exists(config_path):
        recorded = read_json(config_path, "run config")
        recorded = recorded.get("model") if isinstance(recorded, dict) else None
        if recorded != model_name:
            raise ValueError(
                f"--out {out} holds a run of model {recorded!r}, not {model_name!r}; "
                "choose another --out"
            )
    if os.path.exists(os.path.join(out, METRICS)):
        raise FileExistsError(
            f"--out {out} holds a finished run ({METRICS} exists); "
            "choose another --out to train again"
        )
    return os.path.exists(config_path)


def check_resumable(out, resolved, class_names):
    """Refuses to resume a run whose config, data options, seed or classes
    differ from what it recorded: its weights would continue on other data
    (or with label ids that mean other classes)."""
    recorded = read_json(os.path.join(out, CONFIG), "run config")
    for key in ("config", "data_options", "seed"):
        now = json.loads(json.dumps(resolved[key]))
        if recorded.get(key) != now:
            raise ValueError(
                f"--out {out} holds a run with a different {key}"
                f"{differences(recorded.get(key), now)}; "
                "resume it with the same flags or choose another --out"
            )
    names_path = os.path.join(out, CLASS_NAMES)
    if os.path.exists(names_path):
        trained = read_json(names_path, "class name list")
        if list(trained) != list(class_names):
            raise ValueError(
                f"--out {out} was trained on classes {trained} but the data now has "
                f"{list(class_names)}; label ids would change under the trained weights. "
                "Restore the data or choose another --out"
            )


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


def write_start(out, resolved, class_names):
    """Writes what a run records before it trains: `config.json` and
    `class_names.json`."""
    write_json(os.path.join(out, CONFIG), resolved)
    write_json(os.path.join(out, CLASS_NAMES), class_names)


class RunLock:
    """An exclusive lock on a run folder while one `train.run` writes it.

    `run.lock` in the folder is locked with `flock` and holds the writer's
    process id. The kernel lets go of the lock when that process ends, how
    ever it ends, so a `run.lock` left by a killed run (its process gone) is
    simply taken over; the file is removed on release. A folder that does
    not exist yet is made, and removed again on release if it is still
    empty (the run stopped before writing anything).

    Raises:
        NotADirectoryError: `out` is a file.
        ValueError: another process holds the lock (the message names its
            process id).

    Example:

    >>> import tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "run")
    >>> with RunLock(out):
    ...     sorted(os.listdir(out))
    ['run.lock']
    >>> os.path.exists(out)
    False
    """

    def __init__(self, out):
        self.out = os.fspath(out)
        self.path = os.path.join(self.out, LOCK)
        self.descriptor = None
        self.created = False

    def acquire(self):
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise NotADirectoryError(f"--out {self.out} is a file; expected a run folder")
        self.created = not os.path.exists(self.out)
        os.makedirs(self.out, exist_ok=True)
        descriptor = lock_file(self.path, lambda holder: (
            f"--out {self.out} is being written by another train.run (process "
            f"{holder or 'id not written yet'}, holding {self.path}); wait for it to "
            "finish or choose another --out"))
        if descriptor is None:  # no flock on this platform: no lock
            return self
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self.descriptor = descriptor
        return self

    def release(self):
        if self.descriptor is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
            os.close(self.descriptor)
            self.descriptor = None
        if self.created:
            with contextlib.suppress(OSError):  # only if nothing was written
                os.rmdir(self.out)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
