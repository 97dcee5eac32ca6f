"""benchmarks.augmentation: the video folder it writes, the runs it starts
and the table it reads back (train.run is stood in for; no training)."""

import csv
import json
import os
import subprocess

import numpy as np
import pytest

from benchmarks import augmentation
from data import video as video_lib
from tests.cli_calls import call


def test_the_video_folder_is_a_manifest_of_decodable_videos(tmp_path):
    root = tmp_path / "videos"
    manifest = augmentation.write_motion_videos(
        root, classes=("horizontal", "static"), per_split={"train": 2, "test": 1},
        frames=6, size=(24, 32), fps=10.0)
    with open(manifest) as file:
        rows = list(csv.DictReader(file))
    assert [(r["label"], r["split"]) for r in rows] == [
        ("horizontal", "train"), ("static", "train"), ("horizontal", "train"),
        ("static", "train"), ("horizontal", "test"), ("static", "test"),
    ]
    for row in rows:
        path = os.path.join(root, row["path"])
        assert os.path.dirname(row["path"]) == row["label"]
        info = video_lib.probe_video(path, count_frames=True)
        assert (info.frame_count, info.height, info.width) == (6, 24, 32), path
    # The shape (brighter than any background) stays put in a static video
    # and moves along the width in a horizontal one.
    def centres(row):
        frames, _, _ = video_lib.read_frames(os.path.join(root, row["path"]), range(6), (24, 32))
        return np.array([np.argwhere(f.mean(-1) > 130).mean(0) for f in frames])

    static, moving = centres(rows[1]), centres(rows[0])
    assert np.ptp(static, axis=0).max() < 1.0
    assert np.ptp(moving[:, 1]) > 2.0 and np.ptp(moving[:, 0]) < 1.0


def write_run(folder, losses, val_losses, metrics):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "history.csv"), "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "loss", "val_loss"])
        writer.writerows((k, a, b) for k, (a, b) in enumerate(zip(losses, val_losses)))
    with open(os.path.join(folder, "metrics.json"), "w") as file:
        json.dump(metrics, file)


def test_a_run_folder_becomes_its_row(tmp_path):
    write_run(tmp_path / "run", [0.7, 0.6, 0.5], [0.69, 0.62, 0.64],
              {"test_accuracy": 0.75, "test_auc": 0.9, "train_seconds": 3.0})
    row = augmentation.summarize(str(tmp_path / "run"))
    assert row == {"epochs": 3, "first_loss": 0.7, "last_loss": 0.5, "first_val_loss": 0.69,
                   "best_val_loss": 0.62, "best_epoch": 2, "test_accuracy": 0.75, "test_auc": 0.9}
    lines = augmentation.table({"none": row}).splitlines()
    assert lines[0].startswith("| variant | first_loss |") and lines[0].endswith("test_auc |")
    assert lines[2] == "| none | 0.700 | 0.500 | 0.690 | 0.620 | 2 | 0.750 | 0.900 |"


def test_each_variant_runs_once_with_its_flags_and_the_table_is_written(tmp_path, monkeypatch, capsys):
    started = []

    def fake_run(command):
        # Stands in for train.run: writes what a finished run leaves.
        started.append(command)
        out = command[command.index("--out") + 1]
        write_run(out, [0.7, 0.4], [0.69, 0.5], {"test_accuracy": 0.5 + 0.1 * len(started)})
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(augmentation.subprocess, "run", fake_run)
    out = tmp_path / "bench"
    argv = ["--variants", "none,mixup,all", "--epochs", "2", "--learning-rate", "0.001",
            "--out", str(out)]
    code, stdout, _ = call(augmentation.main, argv, capsys)
    assert code == 0
    assert len(started) == 3
    for command, name in zip(started, ("none", "mixup", "all")):
        assert command[command.index("--out") + 1] == str(out / name)
        assert command[command.index("--epochs") + 1] == "2"
        assert command[command.index("--patience") + 1] == "2"  # early stopping never fires
        assert command[command.index("--learning-rate") + 1] == "0.001"
        assert "--data" not in command  # the embedded clips
    assert "--mixup-alpha" not in started[0] and started[1][-2:] == ["--mixup-alpha", "0.2"]
    assert started[2][-6:] == ["--rand-augment", "2", "--mixup-alpha", "0.2", "--cutmix-alpha", "1.0"]
    result = json.loads((out / "augmentation.json").read_text())
    assert [run["variant"] for run in result["runs"]] == ["none", "mixup", "all"]
    assert result["runs"][1]["flags"] == ["--mixup-alpha", "0.2"]
    assert result["runs"][2]["test_accuracy"] == pytest.approx(0.8)
    assert "| mixup | 0.700 | 0.400 | 0.690 | 0.500 | 2 | 0.700 |" in stdout

    # Again: the finished runs are read, not trained again.
    code, _, _ = call(augmentation.main, argv, capsys)
    assert code == 0 and len(started) == 3


@pytest.mark.parametrize("argv, message", [
    (["--variants", "none,blur"], "--variants: unknown ['blur']"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
])
def test_bad_arguments_end_in_one_line(argv, message, tmp_path, capsys):
    code, _, err = call(augmentation.main, [*argv, "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()
