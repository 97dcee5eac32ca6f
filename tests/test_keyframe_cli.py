"""train.run / train.evaluate / train.predict with keyframe_transformer."""

import json
import os

import cv2
import numpy as np
import pytest

from data import summarization as sm
from common.cli import run_main
from train import evaluate, predict, run

TINY_FLAGS = [
    "--model", "keyframe_transformer", "--model-dim", "16", "--num-layers", "1",
    "--num-heads", "2", "--ff-dim", "32", "--scorer-units", "8", "--batch-size", "4",
    "--verbose", "0",
]


def train(tmp_path, name, *flags):
    out = str(tmp_path / name)
    assert run.main([*TINY_FLAGS, "--out", out, *flags]) == 0
    return out


def user_error(main, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        run_main(main, argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("runs")
    return train(tmp_path, "synthetic", "--epochs", "2", "--synthetic-videos", "10")


def test_synthetic_run_reports_the_summarization_protocol(synthetic_run):
    with open(os.path.join(synthetic_run, "metrics.json")) as file:
        metrics = json.load(file)
    for name in ("fscore", "kendall_tau", "spearman_rho", "gt_kendall_tau", "mse",
                 "precision_at_15", "f1"):
        assert np.isfinite(metrics[f"test_{name}"])
    assert metrics["test_videos"] == 2 and metrics["test_reduction"] == "avg"
    with open(os.path.join(synthetic_run, "test_report.json")) as file:
        report = json.load(file)
    assert report["kind"] == "frame_scores" and len(report["per_video"]) == 2
    with open(os.path.join(synthetic_run, "config.json")) as file:
        record = json.load(file)
    keys = record["data"]["keys"]
    assert len(keys["train"]) + len(keys["val"]) == 8 and len(keys["val"]) == 1
    assert not set(keys["test"]) & (set(keys["train"]) | set(keys["val"]))
    assert record["config"]["input_shape"] == [None, 1024]


def test_evaluate_cli_rescores_a_run(synthetic_run, tmp_path, capsys):
    out = str(tmp_path / "report")
    assert evaluate.main(["--runs", synthetic_run, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "F-score (%)" in printed and "PGL-SUM" in printed
    with open(os.path.join(out, "evaluate_test_report.json")) as file:
        report = json.load(file)
    with open(os.path.join(synthetic_run, "test_report.json")) as file:
        during_training = json.load(file)
    # best.keras is the checkpoint the training report used or a later best.
    assert report["summary"]["videos"] == 2
    assert sorted(report["per_video"]) == sorted(during_training["per_video"])


def write_event_video(path, fps=12.0):
    video = sm.synthetic_summary_videos(1, frames=48, height=60, width=80, seed=9)[0]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (80, 60))
    for frame in video["frames"]:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return video


def test_predict_summarizes_a_video_with_a_trained_run(synthetic_run, tmp_path, capsys):
    path = tmp_path / "event.avi"
    write_event_video(path)
    out = tmp_path / "prediction"
    argv = ["--run", synthetic_run, "--video", str(path), "--sample-rate", "6",
            "--ratio", "0.25", "--out", str(out)]
    assert predict.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    # 6 samples per second of a 4-second, 12 fps video: every other frame.
    assert result["frame_count"] == 48 and result["frames_scored"] == 24
    shots = result["shots"]
    lengths = [shot["frames"][1] - shot["frames"][0] + 1 for shot in shots]
    assert 0 < sum(lengths) <= 12  # floor(0.25 * 48)
    keyframes = result["keyframes"]
    frames = [k["frame"] for k in keyframes]
    assert len(keyframes) == len(shots) and frames == sorted(frames)
    assert keyframes[0]["time"] == pytest.approx(frames[0] / 12.0, abs=1e-3)
    folder = out / "event"
    for name in ("keyshots.json", "contact_sheet.png", "scores.png", "summary.mp4"):
        assert (folder / name).stat().st_size > 0
    assert cv2.imread(str(folder / "contact_sheet.png")) is not None
    message = user_error(predict.main, [*argv[:4], "--ratio", "1.5"], capsys)
    assert "--ratio must be in (0, 1)" in message
    message = user_error(predict.main, ["--run", synthetic_run, "--video", str(tmp_path / "no.mp4")], capsys)
    assert "no.mp4" in message


def public_file(tmp_path, count=6, dim=16):
    records = sm.synthetic_summary_records(count, seed=3, feature_dim=dim, frames=(24, 36))
    return sm.write_summary_file(records, tmp_path / "eccv16_dataset_summe_google_pool5.h5")


def test_dataset_with_a_split_file(tmp_path):
    dataset = public_file(tmp_path)
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps([
        {"train_keys": ["video_1", "video_2", "video_3", "video_4"], "test_keys": ["video_5", "video_6"]},
        {"train_keys": ["video_3", "video_4", "video_5", "video_6"], "test_keys": ["video_1", "video_2"]},
    ]))
    out = train(tmp_path, "file", "--epochs", "1", "--dataset", str(dataset),
                "--split-file", str(split_file), "--split", "1")
    with open(os.path.join(out, "config.json")) as file:
        record = json.load(file)
    assert record["data"]["keys"]["test"] == ["video_1", "video_2"]
    assert record["data"]["reduction"] == "max"  # a SumMe file name
    assert record["config"]["input_shape"] == [None, 16]


def test_generated_splits_are_saved(tmp_path):
    dataset = public_file(tmp_path)
    written = tmp_path / "five.json"
    train(tmp_path, "generated", "--epochs", "1", "--dataset", str(dataset),
          "--write-splits", str(written), "--split", "4")
    splits = sm.load_splits(written)
    assert len(splits) == 5 and all(len(s["test_keys"]) == 1 for s in splits)


def test_write_splits_never_replaces_another_file(tmp_path, capsys):
    dataset = public_file(tmp_path)
    other = tmp_path / "mine.json"
    other.write_text('[{"train_keys": ["video_1"], "test_keys": ["video_2"]}]')
    message = user_error(run.main, [*TINY_FLAGS, "--epochs", "1", "--dataset", str(dataset),
                                    "--write-splits", str(other), "--out", str(tmp_path / "r")],
                         capsys)
    assert "--write-splits" in message and "already exists and holds other splits" in message
    assert other.read_text() == '[{"train_keys": ["video_1"], "test_keys": ["video_2"]}]'


def test_bad_data_flags_end_in_one_line(tmp_path, capsys):
    dataset = public_file(tmp_path)
    base = [*TINY_FLAGS, "--epochs", "1"]
    message = user_error(run.main, [*base, "--out", str(tmp_path / "a"), "--dataset", str(tmp_path / "none.h5")], capsys)
    assert "--dataset" in message and "none.h5" in message
    message = user_error(run.main, [*base, "--out", str(tmp_path / "b"), "--dataset", str(dataset), "--split", "7"], capsys)
    assert "split 7 does not exist; valid splits are 0..4" in message
    message = user_error(run.main, [*base, "--out", str(tmp_path / "c"), "--dataset", str(dataset),
                                    "--input-shape", "none,1024"], capsys)
    assert "--input-shape none,1024 but --dataset" in message and "gives none,16" in message
    message = user_error(run.main, [*base, "--out", str(tmp_path / "d"), "--dataset", str(dataset),
                                    "--input-mode", "frames"], capsys)
    assert "use --input-mode features" in message


@pytest.mark.slow
def test_frames_mode_trains_two_stages_on_synthetic_frames(tmp_path):
    out = train(
        tmp_path, "frames", "--input-mode", "frames", "--input-shape", "none,32,32,3",
        "--backbone-weights", "none", "--stage1-epochs", "1", "--stage2-epochs", "1",
        "--synthetic-videos", "5", "--batch-size", "2",
    )
    assert os.path.exists(os.path.join(out, "stage_frozen_backbone.weights.h5"))
    assert os.path.exists(os.path.join(out, "stage_fine_tune.weights.h5"))
    with open(os.path.join(out, "history.csv")) as file:
        assert len(file.read().strip().splitlines()) >= 3  # header + one epoch per stage
    with open(os.path.join(out, "metrics.json")) as file:
        assert np.isfinite(json.load(file)["test_fscore"])


@pytest.mark.slow
def test_the_synthetic_task_is_learned(tmp_path):
    out = train(tmp_path, "learn", "--epochs", "12", "--synthetic-videos", "30", "--dropout", "0")
    with open(os.path.join(out, "metrics.json")) as file:
        metrics = json.load(file)
    assert metrics["test_gt_kendall_tau"] > 0.2
    assert metrics["test_kendall_tau"] > 0.05
