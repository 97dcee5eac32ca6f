"""train.run / train.evaluate / train.predict with keyframe_transformer."""

import json
import os
import re

import cv2
import numpy as np
import pytest

from data import summarization as sm
from common.cli import run_main
from train import evaluate, predict, run
from train.metrics import summarization as summary_eval
from train.tasks import keyframes

# One worker runs the module: its module-scoped runs are built once.
pytestmark = pytest.mark.xdist_group("test_keyframe_cli")

TINY_FLAGS = [
    "--model", "keyframe_transformer", "--model-dim", "16", "--num-layers", "1",
    "--num-heads", "2", "--ff-dim", "32", "--scorer-units", "8", "--batch-size", "4",
    "--verbose", "0",
]


def train(tmp_path, name, *flags, eager=True):
    """A finished run; eagerly unless told otherwise: a few steps of a tiny
    model start sooner without tracing a graph."""
    out = str(tmp_path / name)
    assert run.main([*TINY_FLAGS, "--out", out, *flags, *(["--run-eagerly"] if eager else [])]) == 0
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
    assert metrics["test_videos"] == 2 and metrics["test_reduction"] == "avg"
    with open(os.path.join(synthetic_run, "test_report.json")) as file:
        report = json.load(file)
    assert report["kind"] == "frame_scores" and len(report["per_video"]) == 2
    # The split's numbers are the mean over its videos.
    for name in summary_eval.METRICS:
        per_video = [video[name] for video in report["per_video"].values()]
        assert metrics[f"test_{name}"] == pytest.approx(np.mean(per_video)), name
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
    # The embedded videos are not TVSum: no published anchors beside ours.
    assert "F-score (%)" in printed and "No published anchors" in printed
    assert "PGL-SUM" not in printed and "DSNet" not in printed
    with open(os.path.join(out, "evaluate_test_report.json")) as file:
        report = json.load(file)
    with open(os.path.join(synthetic_run, "test_report.json")) as file:
        during_training = json.load(file)
    # best.keras is the checkpoint the training report used or a later best.
    assert report["summary"]["videos"] == 2
    assert sorted(report["per_video"]) == sorted(during_training["per_video"])
    expected = protocol_by_hand(synthetic_run, sorted(report["per_video"]))
    for key, metrics in expected.items():
        for name, value in metrics.items():
            assert report["per_video"][key][name] == pytest.approx(value, abs=1e-5), (key, name)
    for name in summary_eval.METRICS:
        mean = np.mean([metrics[name] for metrics in expected.values()])
        assert report["summary"][name] == pytest.approx(mean, abs=1e-5), name


def protocol_by_hand(run_folder, keys):
    """The protocol's numbers of best.keras on `keys`: each video scored
    alone, unpadded, and put through the summary_eval steps here."""
    import keras

    import models
    from train import tasks
    from train.tasks.frame_scores import FrameScoreOptions

    with open(os.path.join(run_folder, "config.json")) as file:
        record = json.load(file)
    config = models.get_config(record["model"], **record["config"])
    bundle = tasks.get_task("frame_scores").load(
        FrameScoreOptions(synthetic_videos=10), config, record["seed"], split_seed=record["seed"])
    model = keras.saving.load_model(os.path.join(run_folder, "best.keras"))
    expected = {}
    for key in keys:
        features = np.asarray(bundle.inputs[key], dtype="float32")[None]
        scores = np.asarray(model({"features": features, "mask": np.ones(features.shape[:2], bool)},
                                  training=False), dtype=np.float64)[0]
        video = bundle.videos[key]

        def keyshots(pick_scores):
            frame_scores = summary_eval.upsample_to_frames(pick_scores, video.picks, video.n_frames)
            values = summary_eval.shot_scores(frame_scores, video.change_points)
            capacity = int(np.floor(0.15 * int(video.n_frames)))
            chosen = summary_eval.knapsack(values, np.asarray(video.n_frame_per_seg), capacity)
            summary = np.zeros(int(video.n_frames), bool)
            for index in chosen:
                first, last = np.asarray(video.change_points)[index]
                summary[first:last + 1] = True
            return frame_scores, summary

        frame_scores, machine = keyshots(scores)
        users = np.asarray(video.user_summary) > 0
        overlaps = (users & machine).sum(1)
        precisions = overlaps / machine.sum()
        recalls = overlaps / users.sum(1)
        fscores = np.where(overlaps > 0, 2 * precisions * recalls / (precisions + recalls), 0.0)
        annotators = getattr(video, "user_scores", None)
        annotators = video.user_summary if annotators is None else annotators
        taus = [summary_eval.kendall_tau_b(frame_scores, row) for row in np.asarray(annotators)]
        rhos = [summary_eval.spearman_rho(frame_scores, row) for row in np.asarray(annotators)]
        gtscore = np.asarray(video.gtscore, dtype=np.float64)
        top = max(1, int(np.floor(0.15 * len(scores))))
        top_predicted = set(np.argsort(-scores, kind="stable")[:top])
        top_reference = set(np.argsort(-gtscore, kind="stable")[:top])
        reference = keyshots(gtscore)[1]
        overlap = (reference & machine).sum()
        expected[key] = {
            "fscore": fscores.mean(),  # TVSum's mean over users ("avg")
            "precision": precisions.mean(),
            "recall": recalls.mean(),
            # An undefined coefficient (a constant row) counts as 0.
            "kendall_tau": np.mean(np.nan_to_num(taus, nan=0.0)),
            "spearman_rho": np.mean(np.nan_to_num(rhos, nan=0.0)),
            "gt_kendall_tau": summary_eval.kendall_tau_b(scores, gtscore),
            "gt_spearman_rho": summary_eval.spearman_rho(scores, gtscore),
            "mse": np.mean((scores - gtscore) ** 2),
            "precision_at_15": len(top_predicted & top_reference) / top,
            # Our keyshots against the keyshots gtscore itself gives.
            "f1": 2 * overlap / (machine.sum() + reference.sum()),
        }
        assert sorted(expected[key]) == sorted(summary_eval.METRICS)
    return expected


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
    chosen_keyframes = result["keyframes"]
    frames = [k["frame"] for k in chosen_keyframes]
    assert len(chosen_keyframes) == len(shots) and frames == sorted(frames)
    assert chosen_keyframes[0]["time"] == pytest.approx(frames[0] / 12.0, abs=1e-3)
    folder = out / "event"
    # Each keyframe is the best-scored frame of its shot (scores as written,
    # rounded to 4 digits, spread from the samples over the frames).
    with open(folder / "keyshots.json") as file:
        samples = json.load(file)["samples"]
    assert samples["frames"] == list(range(0, 48, 2))
    frame_scores = np.repeat(samples["scores"], 2)
    for keyframe, shot in zip(chosen_keyframes, shots):
        first, last = shot["frames"]
        assert first <= keyframe["frame"] <= last
        assert keyframe["score"] == pytest.approx(frame_scores[first:last + 1].max(), abs=2e-4)
    for name in ("keyshots.json", "contact_sheet.png", "scores.png", "summary.mp4"):
        assert (folder / name).stat().st_size > 0
    assert cv2.imread(str(folder / "contact_sheet.png")) is not None
    message = user_error(predict.main, [*argv[:4], "--ratio", "1.5"], capsys)
    assert "--ratio must be in (0, 1)" in message
    message = user_error(predict.main, ["--run", synthetic_run, "--video", str(tmp_path / "no.mp4")], capsys)
    assert "no.mp4" in message


def test_keyshots_of_a_hand_made_score_curve():
    # Four 20-frame shots, one sample every 5 frames; a budget of
    # floor(0.3 * 80) = 24 frames, pieces of 24 // 5 = 4 frames.
    picks = np.arange(0, 80, 5)
    scores = [0.1, 0.9, 0.8, 0.2,   # shot 0: frames 5-9 score 0.9, 10-14 0.8
              0.3, 0.3, 0.3, 0.3,   # shot 1: flat
              0.0, 0.5, 0.6, 0.7,   # shot 2: rising
              0.4, 0.4, 0.1, 0.1]   # shot 3: high first half
    shots = np.array([[0, 19], [20, 39], [40, 59], [60, 79]])
    frame_scores, pieces, values, budget, note = keyframes.select_keyshots(
        scores, picks, 80, shots, 0.3)
    np.testing.assert_array_equal(frame_scores, np.repeat(scores, 5))
    assert budget == 24 and note is None
    # The six best 4-frame pieces by mean: 8-11 (0.85), 4-7 and 56-59
    # (0.7), 12-15 (0.65), 52-55 (0.625), 48-51 (0.55): 24 frames, and the
    # touching pieces of each shot become one.
    assert pieces.tolist() == [[4, 15], [48, 59]]
    np.testing.assert_allclose(values, [8.8 / 12, 7.5 / 12])


def test_a_summary_fills_its_budget_within_shots_in_pieces_of_a_second():
    rng = np.random.default_rng(4)
    for trial in range(30):
        n_frames = int(rng.integers(40, 400))
        bounds = np.unique(np.concatenate([[0, n_frames], rng.integers(1, n_frames, 6)]))
        shots = np.stack([bounds[:-1], bounds[1:] - 1], axis=1)
        picks = np.arange(0, n_frames, 5)
        scores = rng.uniform(size=len(picks))
        ratio = float(rng.uniform(0.05, 0.4))
        shortest = int(rng.integers(1, 30))
        _, pieces, _, budget, note = keyframes.select_keyshots(
            scores, picks, n_frames, shots, ratio, shortest=shortest)
        lengths = pieces[:, 1] - pieces[:, 0] + 1
        assert lengths.sum() <= budget
        for first, last in pieces:  # never across a cut
            assert any(a <= first and last <= b for a, b in shots), (first, last, shots)
        assert (lengths >= min(shortest, budget)).all() or (
            shots[:, 1] - shots[:, 0] + 1 < min(shortest, budget)).all()
        usable = sum(b - a + 1 for a, b in shots if b - a + 1 >= min(shortest, budget))
        if usable >= budget:
            assert lengths.sum() >= 0.8 * budget and note is None, (trial, lengths, budget)
        elif lengths.sum() < 0.8 * budget:
            assert "frames asked for" in note


def test_a_single_shot_video_gets_its_whole_budget():
    # 5.28 s at 25 fps, one shot: the budget (19 frames) is under a second,
    # so the summary is one piece of the whole budget, at its best frames.
    scores = np.linspace(0, 1, 11)
    _, pieces, _, budget, note = keyframes.select_keyshots(
        scores, np.arange(0, 132, 12), 132, np.array([[0, 131]]), 0.15, shortest=25)
    assert budget == 19 and note is None
    assert pieces.tolist() == [[113, 131]]


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
def test_frames_mode_trains_two_stages_on_synthetic_frames(tmp_path, recorded_fits):
    import keras

    out = train(
        tmp_path, "frames", "--input-mode", "frames", "--input-shape", "none,32,32,3",
        "--backbone", "mobilenet_v3_small_minimalistic",
        "--backbone-weights", "none", "--stage1-epochs", "1", "--stage2-epochs", "1",
        "--synthetic-videos", "5", "--batch-size", "2",
    )
    assert os.path.exists(os.path.join(out, "stage_frozen_backbone.weights.h5"))
    assert os.path.exists(os.path.join(out, "stage_fine_tune.weights.h5"))
    with open(os.path.join(out, "history.csv")) as file:
        assert len(file.read().strip().splitlines()) >= 3  # header + one epoch per stage
    with open(os.path.join(out, "metrics.json")) as file:
        assert np.isfinite(json.load(file)["test_fscore"])

    first, second = recorded_fits  # one fit per stage
    unfrozen = set(second["before"]) - set(first["before"])
    assert set(first["before"]) < set(second["before"])
    # The backbone's last two blocks and its head convolution,
    # BatchNormalization excepted (it stays in inference mode).
    expected = {
        variable.path
        for layer in second["model"]._flatten_layers(include_self=False, recursive=True)
        if re.match(r"expanded_conv_(9|10)_|conv_1$", layer.name)
        and not isinstance(layer, keras.layers.BatchNormalization)
        for variable in layer.weights
    }
    assert unfrozen == expected
    # Each stage changes exactly its trainable weights: stage 1 none of the
    # backbone's, stage 2 also the unfrozen blocks'; no BatchNorm statistics.
    assert first["changed"] == set(first["before"])
    assert second["changed"] == set(second["before"])


@pytest.mark.slow
def test_the_synthetic_task_is_learned(tmp_path):
    # In a graph: 12 epochs are many steps, where tracing once pays off.
    out = train(tmp_path, "learn", "--epochs", "12", "--synthetic-videos", "30", "--dropout", "0",
                eager=False)
    with open(os.path.join(out, "metrics.json")) as file:
        metrics = json.load(file)
    assert metrics["test_gt_kendall_tau"] > 0.2
    assert metrics["test_kendall_tau"] > 0.05


def real_format_fixture(tmp_path):
    """A few real videos (each frame's red channel codes its index, see
    tests/video_files) and a summarization file in the public layout whose
    picks are every 4th frame; video_3 is found by its video_name, and
    video_4's file holds half the frames the annotations were made on."""
    from tests.video_files import write_video

    folder = tmp_path / "videos"
    rng = np.random.default_rng(0)
    records = {}
    for index, (file_name, frames) in enumerate(
            [("video_1", 40), ("video_2", 40), ("clip_c", 40), ("video_4", 20)], start=1):
        write_video(folder / f"{file_name}.mp4", num_frames=frames, size=(36, 48), fps=10.0)
        records[f"video_{index}"] = {
            "features": rng.normal(size=(10, 16)).astype("float32"),
            "gtscore": rng.uniform(size=10).astype("float32"),
            "user_summary": (rng.uniform(size=(3, 40)) > 0.7).astype("float32"),
            "change_points": np.array([[0, 9], [10, 19], [20, 29], [30, 39]]),
            "n_frame_per_seg": np.array([10, 10, 10, 10]),
            "n_frames": 40,
            "picks": np.arange(0, 40, 4),
            "video_name": file_name,
        }
    records["video_1"]["video_name"] = None
    path = sm.write_summary_file(records, tmp_path / "eccv16_dataset_tvsum_google_pool5.h5")
    return path, folder


def test_frames_are_read_at_the_files_picks(tmp_path):
    from tests.video_files import decoded_index
    from train.tasks.frame_scores import frames_at_picks

    path, folder = real_format_fixture(tmp_path)
    videos = sm.read_summary_file(path)
    assert videos["video_3"].video_name == "clip_c" and videos["video_1"].video_name is None
    frames = frames_at_picks(videos, str(folder), (32, 32), str(tmp_path / "cache"))
    for key in ("video_1", "video_2", "video_3"):
        assert frames[key].shape == (10, 32, 32, 3) and frames[key].dtype == np.uint8
        assert [decoded_index(f) for f in frames[key]] == [p % 23 for p in range(0, 40, 4)]
    # 20 frames for 40 annotated ones: pick p is frame round(p * 19 / 39).
    expected = [round(p * 19 / 39) % 23 for p in range(0, 40, 4)]
    assert [decoded_index(f) for f in frames["video_4"]] == expected
    # Read once: a second call maps the cached arrays.
    cached = sorted(os.listdir(tmp_path / "cache"))
    again = frames_at_picks(videos, str(folder), (32, 32), str(tmp_path / "cache"))
    assert sorted(os.listdir(tmp_path / "cache")) == cached and len(cached) == 4
    np.testing.assert_array_equal(again["video_2"], frames["video_2"])

    os.remove(folder / "clip_c.mp4")
    with pytest.raises(ValueError, match="no video file named 'video_3' or 'clip_c'"):
        frames_at_picks(videos, str(folder), (32, 32), str(tmp_path / "cache"))


def test_frames_mode_loads_a_real_format_data_set_from_its_videos(tmp_path, capsys):
    import models
    from train import tasks
    from train.tasks.frame_scores import FrameScoreOptions
    from tests.video_files import decoded_index

    path, folder = real_format_fixture(tmp_path)
    config = models.get_config("keyframe_transformer", preset="tiny", input_mode="frames",
                               input_shape=(None, 32, 32, 3), batch_size=2)
    options = FrameScoreOptions(dataset=str(path), videos=str(folder),
                                frame_cache=str(tmp_path / "cache"))
    bundle = tasks.get_task("frame_scores").load(options, config, seed=0, split_seed=1)
    assert bundle.info["features"] == "frames" and bundle.info["frame_size"] == [32, 32]
    assert sorted(k for keys in bundle.keys.values() for k in keys) == [
        f"video_{i}" for i in range(1, 5)]
    inputs, targets = next(iter(bundle.train))
    assert inputs["frames"].shape[1:] == (10, 32, 32, 3) and targets.shape[1] == 10
    # Each training video is read at the file's picks (video_4's file is
    # half as long: pick p is its frame round(p * 19 / 39)).
    full = [p % 23 for p in range(0, 40, 4)]
    half = [round(p * 19 / 39) % 23 for p in range(0, 40, 4)]
    seen = [[decoded_index(f) for f in video.astype(np.uint8)]
            for batch, _ in bundle.train for video in batch["frames"].numpy()]
    assert len(seen) == len(bundle.keys["train"])
    assert sorted(seen) == sorted(half if k == "video_4" else full for k in bundle.keys["train"])

    # Frames mode with a data set needs the videos; features mode refuses them.
    message = user_error(run.main, [*TINY_FLAGS, "--input-mode", "frames", "--input-shape",
                                    "none,32,32,3", "--dataset", str(path), "--out",
                                    str(tmp_path / "novideos")], capsys)
    assert "needs the data set's videos (--videos FOLDER)" in message
    message = user_error(run.main, [*TINY_FLAGS, "--dataset", str(path), "--videos",
                                    str(folder), "--out", str(tmp_path / "features")], capsys)
    assert "--videos is for frames mode" in message


def test_an_exported_keyframe_model_scores_a_video_from_the_documented_inputs(tmp_path):
    from tests.prediction_fixtures import keyframe_run, write_scene_video
    from train import formats, run_folder, tasks
    from train.serving.prediction import PredictOptions

    run = keyframe_run(str(tmp_path / "run"))
    video = str(tmp_path / "clip.mp4")
    write_scene_video(video, seconds=3.0, fps=25.0, scenes=2, size=(48, 64))
    # The README's snippet: the run's predictor makes the export's inputs.
    record, model = run_folder.load_run(run)
    predictor = tasks.task_for(record["model"]).predictor(model, record, PredictOptions(run=run))
    inputs = predictor.model_inputs(video)
    assert inputs["features"].shape == (1, 6, 12) and inputs["mask"].all()  # 2 per second

    formats.export_saved_model(model, record["model"], str(tmp_path / "export"))
    served = formats.load_runner("saved_model", str(tmp_path / "export"))(inputs)["scores"][0]
    out = tmp_path / "result"
    out.mkdir()
    predicted = predictor(video, str(out))
    with open(predicted["files"]["keyshots"]) as file:
        samples = json.load(file)["samples"]
    np.testing.assert_allclose(served, samples["scores"], atol=1e-4)
