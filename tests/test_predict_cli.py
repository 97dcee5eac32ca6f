"""train.predict for every kind of run: summaries, labels, batches, bad input."""

import json
import math
import os

import cv2
import numpy as np
import pytest

import models
from common.cli import run_main
from data import video as video_lib
from tests import video_files
from tests.prediction_fixtures import SCENE_COLOURS, keyframe_run, make_run, write_scene_video
from train import predict
from train.tasks import keyframes

# One worker runs the module: its module-scoped runs are built once.
pytestmark = pytest.mark.xdist_group("test_predict_cli")

MOTION_CLASSES = ["horizontal", "vertical", "diagonal", "anti_diagonal", "circular", "static"]
SYNTHETIC_FEATURES = {
    "data": "synthetic features", "backbone": "block_mean_6x8", "max_frames": 18,
    "synthetic": {"frames": 16, "size": [48, 64], "grid": [6, 8], "multi_scale": True,
                  "scale_source": "sampled"},
}
CLASSIFIERS = {
    # The embedded clips' 4 channels, as the demo preset trains.
    "convlstm": ({"data": "synthetic"}, dict(input_shape=(4, 12, 12, 4), num_classes=6)),
    "r2plus1d": ({"data": "synthetic"}, dict(num_classes=6)),
    "r2plus1d_perceiver": ({"data": "synthetic"}, dict(num_classes=6)),
    "bilstm_attention": (SYNTHETIC_FEATURES, dict(input_shape=(None, 144), num_classes=6)),
}


def call(argv, capsys):
    code = predict.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def user_error(main, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        run_main(main, argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("predict")


@pytest.fixture(scope="module")
def scene_video(folder):
    path = str(folder / "scenes.mp4")
    return path, write_scene_video(path, seconds=10.0, fps=25.0, scenes=5)


@pytest.fixture(scope="module")
def summary_run(folder):
    return keyframe_run(str(folder / "keyframe_run"))


@pytest.fixture(scope="module")
def classifier_runs(folder):
    return {
        name: make_run(str(folder / f"run_{name}"), name, data, MOTION_CLASSES, **overrides)
        for name, (data, overrides) in CLASSIFIERS.items()
    }


def test_keyframe_run_renders_a_summary_of_a_ten_second_video(summary_run, scene_video, tmp_path,
                                                             capsys):
    path, scene_starts = scene_video
    code, out, _ = call(["--run", summary_run, "--video", path, "--out", str(tmp_path)], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["frame_count"] == 250 and result["fps"] == 25.0
    assert result["frames_scored"] == 20  # 2 fps over 10 s
    assert result["shots_found"] == 5  # the five scenes
    budget = math.floor(0.15 * 250)

    files = result["files"]
    capture = cv2.VideoCapture(files["summary_video"])
    assert capture.get(cv2.CAP_PROP_FPS) == 25.0
    summary = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        summary.append(frame[..., ::-1])
    capture.release()
    # Playable, no longer than the ratio but at least 80% of it, and made
    # of the listed pieces, none shorter than a second.
    shots = result["shots"]
    lengths = [shot["frames"][1] - shot["frames"][0] + 1 for shot in shots]
    assert 0.8 * budget <= len(summary) == sum(lengths) <= budget
    assert min(lengths) >= 25
    assert len(summary) / 25.0 <= 0.15 * 10.0
    scenes = set()
    position = 0
    for shot, length in zip(shots, lengths):
        first, last = shot["frames"]
        assert shot["start"] == pytest.approx(first / 25.0) and shot["end"] == pytest.approx((last + 1) / 25.0)
        scene = max(i for i, start in enumerate(scene_starts) if start <= first)
        assert last < (scene_starts + [250])[scene + 1]  # a shot stays in its scene
        scenes.add(scene)
        # The summary's frames are the shot's frames: its scene's colour.
        corner = summary[position][:8, :8].reshape(-1, 3).mean(0)
        assert np.abs(corner - SCENE_COLOURS[scene]).max() < 25
        position += length

    with open(files["keyshots"]) as file:
        keyshots = json.load(file)
    assert keyshots["shots"] == shots and keyshots["budget_frames"] == budget
    assert [s["frames"][0] for s in keyshots["segments"]] == scene_starts
    assert len(keyshots["samples"]["frames"]) == 20
    for name in ("score_plot", "contact_sheet"):
        assert cv2.imread(files[name]) is not None
    assert len(result["keyframes"]) == len(shots)
    for keyframe, shot in zip(result["keyframes"], shots):
        assert shot["frames"][0] <= keyframe["frame"] <= shot["frames"][1]
        assert cv2.imread(keyframe["image"]) is not None
    with open(files["result"]) as file:
        assert json.load(file) == result


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classifier_prints_top5_and_a_timeline(name, classifier_runs, scene_video, tmp_path, capsys):
    path, _ = scene_video
    code, out, _ = call(["--run", classifier_runs[name], "--video", path, "--out", str(tmp_path),
                         "--window", "2", "--stride", "1"], capsys)
    assert code == 0
    result = json.loads(out)
    top = result["top"]
    assert len(top) == 5 and len({t["label"] for t in top}) == 5
    assert {t["label"] for t in top} <= set(MOTION_CLASSES)
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    # 2-second windows every second over 10 seconds: starts 0..8.
    assert result["windows"] == 9
    with open(result["files"]["timeline"]) as file:
        timeline = json.load(file)
    windows = timeline["windows"]
    assert [w["start"] for w in windows] == [float(i) for i in range(9)]
    assert all(w["end"] - w["start"] == pytest.approx(2.0) for w in windows)
    probabilities = np.array([w["probabilities"] for w in windows])
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-3)
    # The video's answer weighs every frame once: a frame covered by k
    # windows gives each of them 1/k.
    coverage = np.zeros(250)
    for w in windows:
        coverage[w["frames"][0]:w["frames"][1] + 1] += 1
    weights = np.array([(1 / coverage[w["frames"][0]:w["frames"][1] + 1]).sum() for w in windows])
    assert weights[0] > weights[4]  # the first window has frames no other covers
    mean = weights @ probabilities / weights.sum()
    for entry in top:
        assert entry["probability"] == pytest.approx(mean[MOTION_CLASSES.index(entry["label"])], abs=1e-3)
    assert cv2.imread(result["files"]["timeline_plot"]) is not None


def test_a_video_of_one_window_is_read_as_in_training(classifier_runs, folder, tmp_path, capsys):
    import keras

    from data.synthetic_features import BlockMeanExtractor
    from train.tasks.clips import to_channels

    path = str(folder / "short.avi")
    write_scene_video(path, seconds=1.2, fps=25.0, scenes=2, size=(60, 80))
    expected = {}
    clip = video_lib.read_clip(path, num_frames=4, size=(16, 16)).astype(np.float32) / 255.0
    expected["r2plus1d"] = keras.saving.load_model(
        os.path.join(classifier_runs["r2plus1d"], "best.keras"))({"frames": clip[None]})
    clip = to_channels(video_lib.read_clip(path, num_frames=4, size=(12, 12)), 4) / 255.0
    expected["convlstm"] = keras.saving.load_model(
        os.path.join(classifier_runs["convlstm"], "best.keras"))({"frames": clip[None].astype("float32")})
    sequence, _ = BlockMeanExtractor().video_features(path, 16, multi_scale=True)
    logits = keras.saving.load_model(os.path.join(classifier_runs["bilstm_attention"], "best.keras"))(
        {"features": sequence[None], "mask": np.ones((1, len(sequence)), bool)})
    expected["bilstm_attention"] = keras.ops.softmax(logits)
    for name, probabilities in expected.items():
        code, out, _ = call(["--run", classifier_runs[name], "--video", path, "--out", str(tmp_path)],
                            capsys)
        result = json.loads(out)
        assert result["windows"] == 1 and result["timeline"] is None
        assert "timeline" not in result["files"]
        probabilities = np.asarray(probabilities)[0]
        for entry in result["top"]:
            assert entry["probability"] == pytest.approx(
                probabilities[MOTION_CLASSES.index(entry["label"])], abs=1e-4)


def test_a_folder_is_a_batch_and_results_are_never_overwritten(summary_run, folder, tmp_path,
                                                              capsys):
    videos = tmp_path / "videos"
    for side in ("left", "right"):
        os.makedirs(videos / side)
        write_scene_video(str(videos / side / "v1.mp4"), seconds=4.0, fps=10.0, scenes=2,
                          size=(48, 64))
    video_files.write_text_file(videos / "broken.mp4")
    (videos / "notes.txt").write_text("not a video, not listed")
    out = tmp_path / "results"
    code, stdout, stderr = call(["--run", summary_run, "--video", str(videos), "--out", str(out)],
                                capsys)
    assert code == 0
    lines = [json.loads(line) for line in stdout.strip().splitlines()]
    assert [os.path.relpath(line["video"], videos) for line in lines] == [
        "broken.mp4", os.path.join("left", "v1.mp4"), os.path.join("right", "v1.mp4")]
    assert "cannot be opened as a video" in lines[0]["error"]
    assert "skipped" in stderr and "broken.mp4" in stderr and "3/3" in stderr
    # Two videos of the same name: two folders.
    folders = [os.path.dirname(line["files"]["summary_video"]) for line in lines[1:]]
    assert [os.path.basename(f) for f in folders] == ["v1", "v1-2"]
    assert sorted(os.listdir(out)) == ["v1", "v1-2"]  # nothing left of the broken one
    before = {name: (out / "v1" / name).read_bytes() for name in ("keyshots.json", "summary.mp4")}
    # The same video again into the same --out: a third folder, the first untouched.
    code, stdout, _ = call(["--run", summary_run, "--video", str(videos / "left" / "v1.mp4"),
                            "--out", str(out)], capsys)
    assert os.path.dirname(json.loads(stdout)["files"]["result"]) == str(out / "v1-3")
    assert {name: (out / "v1" / name).read_bytes() for name in before} == before


def test_a_batch_goes_on_after_files_that_crash_the_decoder(summary_run, tmp_path, capsys,
                                                             monkeypatch):
    from tests.crashing_decoder import use_crashing_decoder

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a_crash.mp4").write_bytes(b"CRASH" + bytes(4000))  # the stand-in aborts on it
    video_files.write_crashing_avi(str(videos / "b_raw.avi"))  # OpenCV 4.13 aborts on it
    write_scene_video(str(videos / "c_good.mp4"), seconds=4.0, fps=10.0, scenes=2, size=(48, 64))
    video_files.write_still_image(str(videos / "d_photo.mp4"))
    decoder = use_crashing_decoder(monkeypatch)
    out = tmp_path / "results"
    try:
        code, stdout, stderr = call(["--run", summary_run, "--video", str(videos),
                                     "--out", str(out)], capsys)
    finally:
        decoder.close()
    assert code == 0
    lines = {os.path.basename(line["video"]): line for line in map(json.loads, stdout.splitlines())}
    assert sorted(lines) == ["a_crash.mp4", "b_raw.avi", "c_good.mp4", "d_photo.mp4"]
    assert lines["a_crash.mp4"]["error"].endswith(
        "could not be decoded: the decoder crashed on this file (SIGABRT)")
    assert "error" in lines["b_raw.avi"] or "files" in lines["b_raw.avi"]
    assert lines["d_photo.mp4"]["error"].endswith("d_photo.mp4: a still image (PNG), not a video")
    assert "files" in lines["c_good.mp4"]
    # Only the predicted video has a result folder: nothing empty is left.
    assert sorted(os.listdir(out)) == ["c_good"] + (["b_raw"] if "files" in lines["b_raw.avi"]
                                                    else [])
    assert "4/4" in stderr


def test_crashing_files_still_images_and_one_frame_files_are_refused(summary_run, tmp_path, capsys,
                                                                monkeypatch):
    from tests.crashing_decoder import use_crashing_decoder

    crash = tmp_path / "crash.mp4"
    crash.write_bytes(b"CRASH" + bytes(4000))
    decoder = use_crashing_decoder(monkeypatch)
    try:
        message = user_error(predict.main, ["--run", summary_run, "--video", str(crash),
                                            "--out", str(tmp_path / "out")], capsys)
    finally:
        decoder.close()
    assert message == (f"error: {crash}: could not be decoded: the decoder crashed on this file "
                       "(SIGABRT)")
    assert not (tmp_path / "out").exists()
    image = video_files.write_still_image(str(tmp_path / "photo.mp4"))
    message = user_error(predict.main, ["--run", summary_run, "--video", image], capsys)
    assert message == f"error: {image}: a still image (PNG), not a video"
    one = video_files.write_video(str(tmp_path / "one.mp4"), num_frames=1)
    message = user_error(predict.main, ["--run", summary_run, "--video", one], capsys)
    assert message == (f"error: {one}: 1 frame only: a still image, not a video (a video has "
                       "at least 2 frames)")


def test_results_inside_the_video_folder_are_never_read_as_input(summary_run, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_scene_video(str(videos / "v.mp4"), seconds=3.0, fps=10.0, scenes=2, size=(48, 64))
    out = videos / "results"
    for _ in range(2):  # the first run wrote results/v/summary.mp4 into the folder
        code, stdout, _ = call(["--run", summary_run, "--video", str(videos), "--out", str(out)],
                               capsys)
        assert code == 0
        assert [os.path.basename(json.loads(line)["video"]) for line in stdout.splitlines()] == [
            "v.mp4"]
    assert sorted(os.listdir(out)) == ["v", "v-2"]
    message = user_error(predict.main, ["--run", summary_run, "--video", str(out / "v"),
                                        "--out", str(out / "v")], capsys)
    assert "a folder with no video files (.mp4, .avi, .mov, .mkv, .webm) outside --out" in message


def test_bad_input_ends_in_one_line(summary_run, scene_video, tmp_path, capsys):
    path, _ = scene_video
    message = user_error(predict.main, ["--run", str(tmp_path), "--video", path], capsys)
    assert "no config.json; is it a run folder?" in message
    for ratio in ("0", "1", "1.5", "-0.2"):
        message = user_error(predict.main, ["--run", summary_run, "--video", path, "--ratio", ratio],
                             capsys)
        assert f"--ratio must be in (0, 1), got {float(ratio)}" in message
    broken = video_files.write_corrupt_video(tmp_path / "cut.mp4")
    message = user_error(predict.main, ["--run", summary_run, "--video", broken,
                                        "--out", str(tmp_path / "out")], capsys)
    assert "cut.mp4" in message and not (tmp_path / "out").exists()
    text = video_files.write_text_file(tmp_path / "text.mp4")
    message = user_error(predict.main, ["--run", summary_run, "--video", text], capsys)
    assert "text.mp4: cannot be opened as a video" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no videos here")
    message = user_error(predict.main, ["--run", summary_run, "--video", str(empty)], capsys)
    assert "a folder with no video files" in message
    message = user_error(predict.main, ["--run", summary_run, "--video", str(tmp_path / "none.mp4")],
                         capsys)
    assert "none.mp4: no such file or folder" in message
    only_broken = tmp_path / "only_broken"
    only_broken.mkdir()
    video_files.write_text_file(only_broken / "a.mp4")
    with pytest.raises(SystemExit) as stop:
        run_main(predict.main, ["--run", summary_run, "--video", str(only_broken)])
    assert stop.value.code == 2
    assert "none of its 1 videos could be predicted" in capsys.readouterr().err
    short = video_files.write_video(tmp_path / "short.mp4", num_frames=5)
    message = user_error(predict.main, ["--run", summary_run, "--video", short], capsys)
    assert "--ratio 0.15 of a 5-frame video is less than one frame" in message


def test_a_run_on_a_feature_file_reads_its_extraction_settings(tmp_path, capsys):
    import keras

    from data.datasets import scan_dataset
    from data.features import extract_features, read_feature_file

    paths = video_files.write_class_tree(tmp_path / "videos", {"a": ["a1.mp4"], "b": ["b1.mp4"]},
                                         num_frames=9, size=(24, 32))
    features = str(tmp_path / "features.h5")
    backbone = "mobilenet_v3_small_minimalistic"  # the cheapest to build, 576-d
    extract_features(scan_dataset(str(tmp_path / "videos")), features, backbone=backbone,
                     weights=None, num_frames=4, size=(32, 32), scale_source="video",
                     progress=False, log=lambda line: None)
    rows = read_feature_file(features)
    run = make_run(
        str(tmp_path / "run"), "bilstm_attention",
        {"data": "features", "features": features, "backbone": backbone,
         "feature_dim": 576, "max_frames": rows.max_frames},
        ["a", "b"], input_shape=(None, 576), num_classes=2,
    )
    code, out, _ = call(["--run", run, "--video", paths[1], "--out", str(tmp_path / "out")], capsys)
    result = json.loads(out)
    # The video's row of the file, the model's training input, gives the same answer.
    row = rows.sources.index(os.path.abspath(paths[1]))
    model = keras.saving.load_model(os.path.join(run, "best.keras"))
    logits = model({"features": rows.features[row:row + 1], "mask": rows.mask[row:row + 1]})
    expected = np.asarray(keras.ops.softmax(logits))[0]
    assert result["windows"] == 1 and [t["label"] for t in result["top"]] == [
        ["a", "b"][i] for i in np.argsort(-expected)]
    for entry in result["top"]:
        assert entry["probability"] == pytest.approx(expected[["a", "b"].index(entry["label"])], abs=1e-4)
    os.remove(features)
    message = user_error(predict.main, ["--run", run, "--video", paths[1]], capsys)
    assert "features.h5, which is gone" in message


def test_long_videos_are_scored_in_half_overlapping_windows():
    model = models.build("keyframe_transformer", preset="tiny")
    values = np.random.default_rng(0).normal(size=(20, 12)).astype("float32")

    def scores(part):
        inputs = {"features": part[None], "mask": np.ones((1, len(part)), bool)}
        return np.asarray(model.predict_on_batch(inputs))[0]

    whole = keyframes.score_in_windows(model, values, "features", max_steps=20)
    np.testing.assert_allclose(whole, scores(values), rtol=1e-6)
    # Windows of 8 every 4 steps: 0-7, 4-11, 8-15, 12-19.
    windowed = keyframes.score_in_windows(model, values, "features", max_steps=8)
    parts = {start: scores(values[start:start + 8]) for start in (0, 4, 8, 12)}
    expected = np.concatenate([
        parts[0][:4],
        (parts[0][4:] + parts[4][:4]) / 2,
        (parts[4][4:] + parts[8][:4]) / 2,
        (parts[8][4:] + parts[12][:4]) / 2,
        parts[12][4:],
    ])
    np.testing.assert_allclose(windowed, expected, rtol=1e-5)
