"""Keras Tuner searches: grids, spaces, the results table, resume, chief/workers."""

import csv
import json
import os
import sys

import keras_tuner as kt
import pytest
import yaml

from common.cli import run_main
from models import r2plus1d
from tests.cluster_processes import run_together
from tuning import search
from tuning import space as space_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tiny R(2+1)D and Perceiver fields: the smallest clip the 8-block
# backbone takes, stage widths of 4-8 channels, a 4 x 16 latent array.
TINY_FIELDS = dict(
    input_shape=[8, 16, 16, 3], widths=[4, 8, 8, 8], num_latents=4, latent_dim=16,
    cross_head_dim=8, self_heads=2, self_head_dim=8, batch_size=4, epochs=1,
)


def write_yaml(path, values):
    path.write_text(yaml.safe_dump(values))
    return str(path)


def run_search(argv, capsys):
    code = run_main(search.main, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def user_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(search.main, argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert len(err.splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------------
# Grids and spaces
# ---------------------------------------------------------------------------


def test_seed_ablation_is_the_notes_ten_architectures():
    architectures, skipped = space_lib.grid_architectures("seed-ablation")
    assert [space_lib.architecture_label(*a) for a in architectures] == [
        "8+1+6", "8+1+2", "8+1+1", "8+0+0", "7+1+1", "6+1+6", "4+1+6", "4+2+12",
        "8+1+0", "8+0+1",
    ]
    assert skipped == []
    assert r2plus1d.architecture(8, 0, 0) == ("r2plus1d", {"cnn_blocks": 8})
    assert r2plus1d.architecture(4, 2, 12)[0] == "r2plus1d_perceiver"


def test_full_grid_is_the_valid_cartesian_product():
    architectures, skipped = space_lib.grid_architectures("full")
    # 4 cnn values x (5 self values with 0 cross, 5 with 1 cross, 4 with 2).
    assert len(architectures) == 4 * (5 + 5 + 4)
    assert len(set(architectures)) == len(architectures)
    assert skipped == ["4+2+1", "6+2+1", "7+2+1", "8+2+1"]


def test_grid_file_lists_and_architectures(tmp_path):
    lists = write_yaml(tmp_path / "lists.yaml", {"cnn_blocks": [4, 8], "cross_blocks": [0, 2],
                                                 "self_blocks": [0, 3]})
    architectures, skipped = space_lib.grid_architectures(lists)
    assert architectures == [(4, 0, 0), (4, 0, 3), (4, 2, 0), (8, 0, 0), (8, 0, 3), (8, 2, 0)]
    assert skipped == ["4+2+3", "8+2+3"]
    defaults = write_yaml(tmp_path / "defaults.yaml", {"cnn_blocks": [4, 6]})
    # Missing lists take the r2plus1d_perceiver defaults, 1 cross and 1 self.
    assert space_lib.grid_architectures(defaults) == ([(4, 1, 1), (6, 1, 1)], [])
    explicit = write_yaml(tmp_path / "explicit.yaml", {"architectures": ["8+1+6", [4, 0, 0], "8+1+6"]})
    assert space_lib.grid_architectures(explicit) == ([(8, 1, 6), (4, 0, 0)], [])


def test_grid_file_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown key.*cnn_block;.*valid keys are: architectures"):
        space_lib.grid_architectures(write_yaml(tmp_path / "a.yaml", {"cnn_block": [8]}))
    # The config's own checks, with the architecture named.
    with pytest.raises(ValueError, match="8\\+2\\+3: self_blocks must be divisible by cross_blocks"):
        space_lib.grid_architectures(write_yaml(tmp_path / "b.yaml", {"architectures": ["8+2+3"]}))
    with pytest.raises(ValueError, match="9\\+1\\+[0-9]+: cnn_blocks must be an integer from 1 to 8, got 9"):
        space_lib.grid_architectures(write_yaml(tmp_path / "c.yaml", {"cnn_blocks": [9]}))
    with pytest.raises(ValueError, match="either 'architectures' or the lists"):
        space_lib.grid_architectures(
            write_yaml(tmp_path / "d.yaml", {"architectures": ["8+1+1"], "cnn_blocks": [4]}))
    with pytest.raises(ValueError, match="expected 'seed-ablation', 'full' or a .yaml file"):
        space_lib.grid_architectures("seed_ablation")
    with pytest.raises(FileNotFoundError, match="no such file"):
        space_lib.grid_architectures(str(tmp_path / "missing.yaml"))


def test_architecture_is_one_categorical_and_choices_fold_per_family(tmp_path):
    path = write_yaml(tmp_path / "space.yaml", {
        "dropout": [0.0, 0.3],
        "learning_rate": {"min": 1e-4, "max": 1e-2, "sampling": "log"},
    })
    explicit = write_yaml(tmp_path / "grid.yaml", {"architectures": ["8+0+0", "8+1+1"]})
    space, _ = space_lib.grid_space(explicit, {}, path)
    labels = [s.label for s in space.settings]
    # dropout is a Perceiver field: the baseline is not repeated for it.
    assert labels == ["8+0+0", "8+1+1 dropout=0.0", "8+1+1 dropout=0.3"]
    hp = kt.HyperParameters()
    setting, values = space.declare(hp)
    assert [p.name for p in hp.space] == ["architecture", "learning_rate"]
    assert isinstance(hp.space[0], kt.engine.hyperparameters.Choice)
    assert setting.label == "8+0+0" and set(values) == {"learning_rate"}
    config = space.config(space.settings[2], {"learning_rate": 1e-3})
    assert (config.cnn_blocks, config.cross_blocks, config.self_blocks, config.dropout) == (8, 1, 1, 0.3)


def test_space_file_errors(tmp_path):
    def space_error(values, match):
        with pytest.raises(ValueError, match=match):
            space_lib.model_space("r2plus1d", {}, write_yaml(tmp_path / "s.yaml", values))

    space_error({"learning_rat": [0.1]}, "unknown field.*learning_rat.*valid fields are:")
    space_error({"learning_rate": {"min": 0.1}}, "needs min and max")
    space_error({"learning_rate": {"min": 0.1, "max": 0.01}}, "min < max")
    space_error({"learning_rate": {"min": 0, "max": 0.1, "sampling": "log"}}, "log sampling needs min > 0")
    space_error({"cnn_blocks": [4, 9]}, "cnn_blocks=9: cnn_blocks must be an integer from 1 to 8")
    space_error({"optimizer": {"min": 1, "max": 2}}, "not numeric")
    space_error({"learning_rate": 0.1}, "must be a list of values or a mapping")


def test_every_trial_is_validated_before_training(tmp_path):
    with pytest.raises(ValueError, match="architecture '8\\+1\\+6': input_shape .* too small .*"
                                         "at least 8 frames"):
        space_lib.grid_space("seed-ablation", {"input_shape": "4x16x16x3"})
    with pytest.raises(ValueError, match="unknown field\\(s\\) filters"):
        space_lib.grid_space("seed-ablation", {"filters": "4,4"})


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def test_grid_trials_start_from_a_torchvision_state_dict_npz(tmp_path):
    """`--set backbone_weights=FILE.npz` reaches every trial's backbone."""
    import numpy as np

    from models import r2plus1d
    from tuning.hypermodel import SuiteHyperModel

    backbone = r2plus1d.build_r2plus1d_backbone(
        tuple(TINY_FIELDS["input_shape"]), 8, tuple(TINY_FIELDS["widths"])
    )
    rng = np.random.default_rng(0)
    for weight in backbone.weights:
        weight.assign(rng.uniform(0.5, 1.5, size=weight.shape).astype("float32"))
    weights = tmp_path / "r2plus1d_18_kinetics400.npz"
    np.savez(weights, **r2plus1d.torchvision_state_dict(backbone))
    grid = write_yaml(tmp_path / "grid.yaml", {"architectures": ["8+0+0", "8+1+1"]})
    base = write_yaml(tmp_path / "tiny.yaml", TINY_FIELDS)
    args = search.parse_args(
        ["--grid", grid, "--config", base, "--set", f"backbone_weights={weights}"]
    )
    task = search.searched_task(args.model, args.grid)
    options = task.Options()
    space, _ = search.make_space(args, search.base_overrides(args), task, options)
    hypermodel = SuiteHyperModel(space, None, {}, steps_per_epoch=1, data_batch_size=4)
    for label in ("8+0+0", "8+1+1"):
        hp = kt.HyperParameters()
        space.declare(hp)
        hp.values[space.hp_name] = label
        loaded = hypermodel.build(hp).get_layer("r2plus1d_backbone")
        assert len(loaded.weights) == len(backbone.weights)
        for expected, actual in zip(backbone.weights, loaded.weights):
            np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def test_cli_user_errors_end_in_one_line(tmp_path, capsys):
    assert "expected 'seed-ablation'" in user_error(["--grid", "nope"], capsys)
    bad = write_yaml(tmp_path / "bad.yaml", {"cnn_blocks": [8], "heads": [2]})
    assert "unknown key(s) heads" in user_error(["--grid", bad], capsys)
    err = user_error(["--grid", "seed-ablation", "--set", "input_shape=4x16x16x3"], capsys)
    assert "at least 8 frames of 16x16 pixels" in err
    assert "exactly one of --grid" in user_error(["--grid", "full", "--model", "r2plus1d"], capsys)
    assert "needs --space" in user_error(["--model", "r2plus1d"], capsys)
    assert "expected FIELD=VALUE" in user_error(["--grid", "full", "--set", "epochs"], capsys)
    assert not list(tmp_path.glob("runs"))


# `--grid seed-ablation` is the notes' ten rows of 8-block backbones (see
# test_seed_ablation_is_the_notes_ten_architectures); the table and resume
# logic is the same for any grid, so four shallower rows of the same kinds
# (no attention, more self-attention, a smaller backbone) stand in.
GRID_ROWS = ["2+0+0", "2+1+1", "2+1+2", "1+1+2"]


@pytest.mark.slow
def test_an_architecture_grid_writes_the_table_and_resumes(tmp_path, capsys):
    base = write_yaml(tmp_path / "tiny.yaml", TINY_FIELDS)
    grid = write_yaml(tmp_path / "grid.yaml", {"architectures": GRID_ROWS})
    out = str(tmp_path / "search")
    argv = ["--grid", grid, "--config", base, "--synthetic-clips", "4",
            "--run-eagerly", "--verbose", "0", "--out", out]
    code, stdout, _ = run_search(argv, capsys)
    assert code == 0
    with open(os.path.join(out, "results.csv")) as file:
        rows = list(csv.DictReader(file))
    assert [r for r in rows[0]] == [
        "trial", "architecture", "model", "train loss", "val loss", "val acc",
        "CNN params", "attention params", "params", "status",
    ]
    assert sorted(r["architecture"] for r in rows) == sorted(GRID_ROWS)
    assert all(r["status"] == "completed" for r in rows)
    accuracies = [float(r["val acc"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    by_arch = {r["architecture"]: r for r in rows}
    assert by_arch["2+0+0"]["model"] == "r2plus1d" and by_arch["2+0+0"]["attention params"] == "0"
    assert int(by_arch["2+1+2"]["attention params"]) > int(by_arch["2+1+1"]["attention params"]) > 0
    assert int(by_arch["1+1+2"]["CNN params"]) < int(by_arch["2+1+2"]["CNN params"])
    markdown = open(os.path.join(out, "results.md")).read()
    assert markdown.startswith("| trial | architecture |") and markdown.count("\n") == 2 + len(GRID_ROWS)
    assert "| 2+1+1 |" in stdout

    # The same command again resumes: no trial runs twice.
    trials_before = sorted(os.listdir(os.path.join(out, "tuner")))
    code, stdout, _ = run_search(argv, capsys)
    assert code == 0 and "resuming" in stdout
    assert sorted(os.listdir(os.path.join(out, "tuner"))) == trials_before
    with open(os.path.join(out, "results.csv")) as file:
        assert len(list(csv.DictReader(file))) == len(GRID_ROWS)

    # Another search in the same folder is refused.
    err = user_error(argv[:-2] + ["--seed", "3", "--out", out], capsys)
    assert "holds a different search" in err and "seed" in err


@pytest.mark.slow
def test_model_search_over_a_space_file(tmp_path, capsys):
    space = write_yaml(tmp_path / "space.yaml", {
        "filters": [[2, 3], [3, 4]],
        "learning_rate": {"min": 1e-4, "max": 1e-2, "sampling": "log"},
    })
    out = str(tmp_path / "convlstm")
    code, _, _ = run_search(
        ["--model", "convlstm", "--space", space, "--tuner", "random", "--max-trials", "2",
         "--set", "input_shape=4x12x12x2", "--epochs", "1", "--synthetic-clips", "4",
         "--run-eagerly", "--verbose", "0", "--out", out], capsys)
    assert code == 0
    with open(os.path.join(out, "results.csv")) as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    # convlstm's objective is the validation loss, a column of every table.
    assert set(rows[0]) >= {"settings", "learning_rate", "val acc", "val loss", "train loss"}
    assert "val_auc" not in rows[0]
    assert all(r["settings"] in ("filters=2,3", "filters=3,4") for r in rows)
    assert all(1e-4 <= float(r["learning_rate"]) <= 1e-2 for r in rows)


def test_a_trial_trains_every_stage_of_the_frames_recipe(tmp_path, capsys, monkeypatch):
    """A trial hands the whole two-stage recipe to the engine that train.run
    uses (test_keyframe_cli checks what each stage of it trains)."""
    import keras

    from tuning import hypermodel

    calls = []

    def fit(model, spec, data, config, **kwargs):
        calls.append({"spec": spec, "config": config, "model": model, **kwargs})
        history = keras.callbacks.History()
        history.epoch, history.history = [0, 1], {"loss": [0.5, 0.4], "val_loss": [0.6, 0.5]}
        return history

    monkeypatch.setattr(hypermodel.engine, "fit", fit)
    space = write_yaml(tmp_path / "space.yaml", {"scorer_units": [16]})
    code, _, err = run_search(
        ["--model", "keyframe_transformer", "--space", space, "--max-trials", "1",
         "--set", "input_mode=frames", "--set", "input_shape=none,32,32,3",
         "--set", "backbone=mobilenet_v3_small_minimalistic",
         "--set", "backbone_weights=none", "--set", "model_dim=16", "--set", "num_layers=1",
         "--set", "num_heads=2", "--set", "ff_dim=32", "--set", "batch_size=2",
         "--set", "stage1_epochs=1", "--set", "epochs=1", "--set", "stage2_epochs=1",
         "--synthetic-videos", "5", "--run-eagerly", "--verbose", "0", "--out", str(tmp_path / "kt")],
        capsys)
    assert code == 0, err
    (call,) = calls
    assert [(stage.name, stage.epochs) for stage in call["spec"].stages] == [
        ("frozen_backbone", 1), ("fine_tune", 1)]
    # Every epoch of both stages: nothing caps the trial before stage 2.
    assert call["initial_epoch"] == 0 and call["epochs"] in (None, 2)
    assert call["config"].input_mode == "frames" and call["run_eagerly"] is True
    assert call["model"].get_layer("frames_to_images") is not None


def test_a_convlstm_trial_trains_with_its_class_weights(tmp_path, capsys, recorded_fits):
    space = write_yaml(tmp_path / "space.yaml", {"filters": [[2, 3]]})
    code, _, err = run_search(
        ["--model", "convlstm", "--space", space, "--max-trials", "1",
         "--set", "input_shape=4x12x12x2", "--epochs", "1", "--synthetic-clips", "5",
         "--run-eagerly", "--verbose", "0", "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err
    # 5 synthetic clips: labels 0, 1, 0, 1, 0 -> 5 / (2 * 3) and 5 / (2 * 2).
    (call,) = recorded_fits
    assert call["class_weight"] == pytest.approx({0: 5 / 6, 1: 1.25})


def test_a_batch_size_search_trains_each_trial_at_its_own_batch_size(tmp_path, capsys,
                                                                     monkeypatch):
    """The engine trains on the epoch stream (`train_epochs`, one epoch
    `steps_per_epoch` batches); a trial of another batch size gets that
    stream regrouped, and its epoch counts its own steps."""
    import keras

    from tuning import hypermodel

    seen = []

    def fit(model, spec, data, config, **kwargs):
        epoch = list(data.train_epochs(0).take(data.steps_per_epoch))
        following = next(iter(data.train_epochs(0).skip(data.steps_per_epoch)))
        seen.append({"batch_size": config.batch_size, "steps": data.steps_per_epoch,
                     "sizes": [int(batch[0]["frames"].shape[0]) for batch in epoch],
                     "next_epoch_starts_whole": int(following[0]["frames"].shape[0])})
        history = keras.callbacks.History()
        history.epoch, history.history = [0], {"loss": [0.5], "val_loss": [0.6]}
        return history

    monkeypatch.setattr(hypermodel.engine, "fit", fit)
    space = write_yaml(tmp_path / "space.yaml", {"batch_size": [2, 8]})
    code, _, err = run_search(
        ["--model", "convlstm", "--space", space, "--tuner", "grid", "--max-trials", "2",
         "--set", "input_shape=4x12x12x2", "--set", "filters=2,3", "--set", "batch_size=4",
         "--epochs", "1", "--synthetic-clips", "8", "--run-eagerly", "--verbose", "0",
         "--out", str(tmp_path / "kt")], capsys)
    assert code == 0, err
    # 8 training clips: 4 steps of 2, 1 step of 8 (the base batch size, 4, gives 2 of 4).
    by_size = {call["batch_size"]: call for call in seen}
    assert sorted(by_size) == [2, 8]
    assert by_size[2]["steps"] == 4 and by_size[2]["sizes"] == [2, 2, 2, 2]
    assert by_size[8]["steps"] == 1 and by_size[8]["sizes"] == [8]
    assert by_size[2]["next_epoch_starts_whole"] == 2 and by_size[8]["next_epoch_starts_whole"] == 8


# ---------------------------------------------------------------------------
# Distributed: one chief and two workers on loopback
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_chief_and_two_workers_run_every_trial_once(tmp_path):
    # Three trials shared by two workers: each trial runs once.
    grid = write_yaml(tmp_path / "grid.yaml", {"architectures": ["2+0+0", "2+1+0", "2+1+1"]})
    base = write_yaml(tmp_path / "tiny.yaml", dict(TINY_FIELDS, input_shape=[4, 8, 8, 3]))
    out = str(tmp_path / "shared")
    argv = [sys.executable, "-m", "tuning.search", "--grid", grid, "--config", base,
            "--synthetic-clips", "4", "--run-eagerly", "--verbose", "0", "--out", out]

    def start(ports):
        # Keras Tuner's chief takes its port from the environment only, so
        # a port taken before the chief binds it fails the start: retried.
        commands = {}
        for tuner_id in ("chief", "tuner0", "tuner1"):
            env = dict(os.environ, KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1",
                       KERASTUNER_ORACLE_PORT=str(ports[0]), PYTHONPATH=ROOT,
                       TF_CPP_MIN_LOG_LEVEL="3")
            commands[tuner_id] = (argv, {"cwd": ROOT, "env": env})
        return commands

    codes, outputs = run_together(start, port_count=1, timeout=900)
    for tuner_id, code in codes.items():
        assert code == 0, outputs[tuner_id][-3000:]
    assert "worker tuner0 done" in outputs["tuner0"]
    assert "worker tuner1 done" in outputs["tuner1"]

    trials = []
    for name in sorted(os.listdir(os.path.join(out, "tuner"))):
        path = os.path.join(out, "tuner", name, "trial.json")
        if os.path.exists(path):
            with open(path) as file:
                trials.append(json.load(file))
    labels = [t["hyperparameters"]["values"]["architecture"] for t in trials]
    assert sorted(labels) == ["2+0+0", "2+1+0", "2+1+1"]
    assert all(t["status"] == "COMPLETED" for t in trials)
    with open(os.path.join(out, "results.csv")) as file:
        rows = list(csv.DictReader(file))
    assert sorted(r["architecture"] for r in rows) == sorted(labels)
    assert "| 2+1+1 |" in outputs["chief"]
