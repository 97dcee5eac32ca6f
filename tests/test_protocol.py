"""train.protocol: the three official splits, their mean and std, resuming."""

import json
import os

import numpy as np
import pytest

from tests.cli_calls import call
from tests.video_files import write_video
from train import protocol, run

CLASSES = ("clap", "jump", "wave")


@pytest.fixture(scope="module")
def hmdb_layout(tmp_path_factory):
    """Three classes of four videos and HMDB51 lists for splits 1-3: each
    split tests a different video of every class (code 2) and leaves one
    unused (code 0)."""
    base = tmp_path_factory.mktemp("hmdb")
    root, lists = base / "videos", base / "splits"
    lists.mkdir()
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for index in range(4):
            write_video(str(root / name / f"{index}.avi"), num_frames=6, size=(16, 20),
                        fourcc="MJPG")
        for split in (1, 2, 3):
            codes = {index: 1 for index in range(4)}
            codes[split - 1] = 2
            codes[(split) % 4] = 0
            (lists / f"{name}_test_split{split}.txt").write_text(
                "".join(f"{index}.avi {code}\n" for index, code in codes.items())
            )
    return str(root), str(lists)


def flags(hmdb_layout, out):
    root, lists = hmdb_layout
    return [
        "--model", "convlstm", "--data", root, "--split-dir", lists, "--input-shape", "3,12,12,3",
        "--filters", "2,3", "--batch-size", "4", "--epochs", "1", "--run-eagerly", "--verbose", "0",
        "--val-fraction", "0.3", "--out", out,
    ]


def finished_split(folder, accuracy):
    """A split folder as train.run leaves it, as far as the protocol reads it."""
    os.makedirs(folder, exist_ok=True)
    summary = {"accuracy": accuracy, "mean_class_accuracy": accuracy / 2, "examples": 3}
    with open(os.path.join(folder, "test_report.json"), "w") as file:
        json.dump({"summary": summary, "benchmark": None}, file)
    with open(os.path.join(folder, "metrics.json"), "w") as file:
        file.write("{}")


def test_only_the_unfinished_splits_train(hmdb_layout, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "protocol")
    trained = []

    def fake_training(args, folder, seed):
        trained.append((args.split, folder, seed))
        finished_split(folder, {1: 0.5, 3: 0.7}[args.split])

    monkeypatch.setattr(run, "train_one", fake_training)
    finished_split(os.path.join(out, "split_2"), 0.6)
    code, printed, err = call(protocol.main, flags(hmdb_layout, out), capsys)
    assert code == 0, err
    assert trained == [(1, os.path.join(out, "split_1"), 0), (3, os.path.join(out, "split_3"), 0)]
    report = json.load(open(os.path.join(out, "protocol_report.json")))
    assert report["mean"]["accuracy"] == pytest.approx(0.6)
    assert report["std"]["accuracy"] == pytest.approx(0.1)  # sample std of .5, .6, .7
    assert report["mean"]["mean_class_accuracy"] == pytest.approx(0.3)
    assert "| mean +- std | 0.600 +- 0.100 | - | 0.300 +- 0.050 |" in printed

    # Run again: nothing is trained; with other flags: refused.
    trained.clear()
    code, printed, _ = call(protocol.main, flags(hmdb_layout, out), capsys)
    assert code == 0 and printed.count("not trained again") == 3 and not trained
    changed = flags(hmdb_layout, out) + ["--learning-rate", "0.5"]
    code, _, err = call(protocol.main, changed, capsys)
    assert code == 2 and err.count("\n") == 1 and "learning_rate" in err


@pytest.mark.slow
def test_a_split_is_trained_by_train_run_on_its_own_lists(hmdb_layout, tmp_path, capsys):
    out = str(tmp_path / "protocol")
    finished_split(os.path.join(out, "split_1"), 0.5)
    finished_split(os.path.join(out, "split_2"), 0.6)
    code, printed, err = call(protocol.main, flags(hmdb_layout, out), capsys)
    assert code == 0, err
    folder = os.path.join(out, "split_3")
    record = json.load(open(os.path.join(folder, "config.json")))
    assert record["data_options"]["split"] == 3 and record["data_options"]["split_dir"]
    assert record["data"]["videos"]["test"] == 3  # split 3 tests one video per class
    test = json.load(open(os.path.join(folder, "test_report.json")))
    report = json.load(open(os.path.join(out, "protocol_report.json")))
    assert report["splits"]["3"] == test["summary"]
    top1 = [0.5, 0.6, test["summary"]["accuracy"]]
    assert report["mean"]["accuracy"] == pytest.approx(np.mean(top1))
    assert report["std"]["accuracy"] == pytest.approx(np.std(top1, ddof=1))
    assert report["benchmark"] is None and "design notes" not in printed


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "2"], "--split: the protocol trains splits 1, 2 and 3 itself"),
        (["--ensemble", "2"], "--ensemble 2: the protocol trains one run per split"),
    ],
)
def test_bad_protocol_flags_end_in_one_line(hmdb_layout, tmp_path, capsys, extra, message):
    code, _, err = call(protocol.main, flags(hmdb_layout, str(tmp_path / "p")) + extra, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("extra, message", [
    (["--preset", "tny"], "tny"),
    (["--rand-augment", "1000"], "--rand-augment 1000: expected at most 12"),
    (["--learning-rate", "-1"], "learning_rate"),
])
def test_a_bad_flag_writes_nothing_and_the_corrected_command_runs(
        hmdb_layout, tmp_path, capsys, monkeypatch, extra, message):
    out = str(tmp_path / "p")
    code, _, err = call(protocol.main, flags(hmdb_layout, out) + extra, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not os.path.exists(os.path.join(out, "protocol.json"))
    monkeypatch.setattr(run, "train_one", lambda args, folder, seed: finished_split(folder, 0.5))
    code, _, err = call(protocol.main, flags(hmdb_layout, out), capsys)
    assert code == 0, err


def test_flags_recorded_before_any_split_trained_are_replaced(hmdb_layout, tmp_path, capsys,
                                                              monkeypatch):
    out = tmp_path / "p"
    out.mkdir()
    (out / "protocol.json").write_text(json.dumps({"preset": "tny"}))  # an earlier typo
    monkeypatch.setattr(run, "train_one", lambda args, folder, seed: finished_split(folder, 0.5))
    code, printed, err = call(protocol.main, flags(hmdb_layout, str(out)), capsys)
    assert code == 0, err
    assert "no split has trained with its flags yet" in printed
    assert json.loads((out / "protocol.json").read_text())["preset"] is None


def test_data_without_split_lists_is_refused(tmp_path, capsys):
    for argv in (["--model", "convlstm"], ["--model", "bilstm_attention"]):
        code, _, err = call(protocol.main, argv + ["--out", str(tmp_path / "p")], capsys)
        assert code == 2 and err.count("\n") == 1, err
        assert "the protocol needs videos with official split lists" in err
    missing = ["--model", "convlstm", "--data", str(tmp_path / "none"), "--split-dir", str(tmp_path)]
    code, _, err = call(protocol.main, missing + ["--out", str(tmp_path / "p")], capsys)
    assert code == 2 and "--data" in err and "no such file or directory" in err
    assert not os.path.exists(tmp_path / "p")
