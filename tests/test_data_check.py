"""`python -m data.check`: each planted problem is found, a healthy data set
passes, and `--check` stops `data.extract` and `train.run` before they
start.

The broken tree holds, in HMDB51 split lists: a copy of a training video
under another name in the test split, a re-encoded copy of another one in
the test split, a truncated file, a zero-length file, a file whose child
process aborts (`DATA_CHECK_ABORT_ON`, the stand-in for a crashing decoder)
and a class of one video. The command runs as a real process, as users run
it: the variable must reach the forkserver that forks the children.
"""

import json
import os
import shutil
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest

from data.check import __main__ as check_main
from data.check import probe, videos
from data.summarization import synthetic_summary_records, write_summary_file
from data.video import write_video
from tests.cli_calls import call
from tests.video_files import write_truncated_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEALTHY = {"jump": {"j1": 1, "j2": 1, "j3": 2}, "run": {"r1": 1, "r2": 1, "r3": 2},
           "wave": {"w1": 1, "w2": 1}}  # no test video of "wave": a warning only


def write_clip(path, seed, frames=8, fps=8.0):
    """A tiny video of coloured blocks that drift; `seed` picks the picture."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 5, 3)).astype(np.uint8)
    pictures = [cv2.resize(np.roll(blocks, i // 3, axis=1), (40, 32),
                           interpolation=cv2.INTER_NEAREST) for i in range(frames)]
    return write_video(path, np.stack(pictures), fps=fps)


def write_tree(root, layout):
    """`root/videos/<class>/<name>.avi` and HMDB51 lists in `root/splits`;
    layout: {class: {name: 1 (train) or 2 (test)}}. Returns the two folders."""
    folder, splits = os.path.join(root, "videos"), os.path.join(root, "splits")
    os.makedirs(splits, exist_ok=True)
    for seed, (name, members) in enumerate(layout.items()):
        for number, (video, code) in enumerate(members.items()):
            write_clip(os.path.join(folder, name, f"{video}.avi"), seed * 100 + number)
        write_split_list(splits, name, members)
    return folder, splits


def write_split_list(splits, name, members):
    with open(os.path.join(splits, f"{name}_test_split1.txt"), "w") as file:
        file.writelines(f"{video if '.' in video else video + '.avi'} {code}\n"
                        for video, code in members.items())


def run_check(*args, env=None, cwd=None):
    """`python -m data.check ARGS` as a process: (exit code, stdout JSON or
    None, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "data.check", *map(str, args), "--no-progress"],
        capture_output=True, text=True, cwd=cwd or ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, **(env or {})}, timeout=300,
    )
    summary = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, summary, done.stderr


def check(capsys, *args):
    """`data.check`'s main in this process: (exit code, stdout JSON or None, stderr)."""
    code, out, err = call(check_main.main, [*map(str, args), "--no-progress"], capsys)
    return code, json.loads(out) if out.strip() else None, err


def findings_of(summary):
    with open(os.path.join(os.path.dirname(summary["report"]), "report.json")) as file:
        report = json.load(file)
    found = {}
    for finding in report["findings"]:
        found.setdefault(finding["kind"], []).append(finding)
    return report, found


@pytest.fixture(scope="module")
def broken_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    layout = {"jump": {"j1": 1, "j2": 1, "j3": 2}, "run": {"r1": 1, "r2": 1, "r3": 2},
              "wave": {"w1": 1}}
    folder, splits = write_tree(root, layout)
    shutil.copy(os.path.join(folder, "jump", "j1.avi"), os.path.join(folder, "jump", "jcopy.avi"))
    # The same pictures through another codec: not the same bytes.
    frames = []
    capture = cv2.VideoCapture(os.path.join(folder, "run", "r1.avi"))
    while (read := capture.read())[0]:
        frames.append(read[1][..., ::-1])
    capture.release()
    write_video(os.path.join(folder, "run", "r1_again.mp4"), np.stack(frames), fps=8.0)
    write_truncated_video(os.path.join(folder, "run", "rcut.mkv"), num_frames=40)
    open(os.path.join(folder, "run", "rempty.avi"), "w").close()
    layout["jump"].update(jcopy=2)
    layout["run"].update({"r1_again.mp4": 2, "rcut.mkv": 1, "rempty": 1})
    for name, members in layout.items():
        write_split_list(splits, name, members)
    return root, folder, splits


def test_every_planted_problem_is_found_and_the_check_exits_1(broken_tree):
    root, folder, splits = broken_tree
    code, summary, stderr = run_check(folder, "--split-dir", splits, "--out", root / "report",
                                      env={probe.ABORT_ENV: "r2.avi"})
    assert code == 1, stderr
    report, found = findings_of(summary)
    where = {kind: [os.path.basename(p) for f in items for p in f["paths"]]
             for kind, items in found.items()}
    assert where["decoder_crash"] == ["r2.avi"]
    assert "SIGABRT" in found["decoder_crash"][0]["message"]
    assert where["truncated"] == ["rcut.mkv"]
    assert where["zero_length"] == ["rempty.avi"]
    assert sorted(where["duplicate_across_splits"]) == ["j1.avi", "jcopy.avi", "r1.avi", "r1_again.mp4"]
    kinds = {tuple(sorted(os.path.basename(p) for p in f["paths"])): f["message"]
             for f in found["duplicate_across_splits"]}
    assert kinds[("j1.avi", "jcopy.avi")].startswith("the same file")
    assert kinds[("r1.avi", "r1_again.mp4")].startswith("the same picture")
    assert any("'wave'" in f["message"] for f in found["one_video_class"])
    # The crash cost one file: every other video was read.
    readable = {os.path.basename(v["path"]) for v in report["videos"] if v["ok"]}
    assert readable == {"j1.avi", "j2.avi", "j3.avi", "jcopy.avi", "r1.avi", "r1_again.mp4",
                        "r3.avi", "w1.avi"}
    assert {"report.md", "report.json", "videos.png", "class_balance.png"} <= set(
        os.listdir(root / "report"))
    assert "error: " in stderr and "r2.avi" in stderr


def test_a_healthy_tree_exits_0_and_an_earlier_report_is_kept(tmp_path, capsys):
    folder, splits = write_tree(tmp_path, HEALTHY)
    out = tmp_path / "report"
    code, summary, stderr = check(capsys, folder, "--split-dir", splits, "--out", out)
    assert code == 0, stderr
    assert summary["errors"] == 0 and summary["warnings"] == 1
    code, again, _ = check(capsys, folder, "--split-dir", splits, "--out", out, "--quick")
    assert code == 0
    assert os.path.dirname(again["report"]) == f"{out}-2"
    assert os.path.exists(out / "report.md")
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp")]


def test_a_manifest_label_that_disagrees_with_its_folder_is_an_error(tmp_path, capsys):
    folder, _ = write_tree(tmp_path, HEALTHY)
    manifest = tmp_path / "videos.csv"
    manifest.write_text("path,label\nvideos/jump/j1.avi,jump\nvideos/jump/j2.avi,run\n"
                        "videos/run/r1.avi,run\nvideos/run/r2.avi,run\n")
    code, summary, _ = check(capsys, manifest, "--out", tmp_path / "report", "--quick")
    assert code == 1
    _, found = findings_of(summary)
    assert [os.path.basename(p) for f in found["label_disagrees_with_folder"]
            for p in f["paths"]] == ["j2.avi"]


def write_feature_file(path, nan_row=None):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 5, 8)).astype(np.float32)
    if nan_row is not None:
        features[nan_row, 2, 3] = np.nan
    with h5py.File(path, "w") as file:
        file["features"] = features
        file["labels"] = np.array([0, 1, 0, 1])
        file["num_frames"] = np.full(4, 5, np.int32)
        file["splits"] = np.array([b"train", b"train", b"test", b"test"])
        file.attrs.update(num_videos=4, max_frames=5, feature_dim=8,
                          category_mapping=json.dumps({"jump": 0, "run": 1}))
    return path


def test_hdf5_files_nan_features_and_a_user_summary_longer_than_its_video(tmp_path, capsys):
    good = write_feature_file(tmp_path / "good.h5")
    bad = write_feature_file(tmp_path / "bad.h5", nan_row=2)
    records = synthetic_summary_records(3, seed=0, feature_dim=8)
    summaries = write_summary_file(records, tmp_path / "summaries.h5")
    longer = records["video_2"]
    longer.user_summary = np.pad(longer.user_summary, ((0, 0), (0, 10)))
    too_long = write_summary_file(records, tmp_path / "too_long.h5")

    assert check(capsys, good, "--out", tmp_path / "r1")[0] == 0
    assert check(capsys, summaries, "--out", tmp_path / "r2")[0] == 0
    code, summary, _ = check(capsys, bad, "--out", tmp_path / "r3")
    assert code == 1
    assert "rows 2" in findings_of(summary)[1]["nan_or_inf"][0]["message"]
    code, summary, _ = check(capsys, too_long, "--out", tmp_path / "r4")
    assert code == 1
    [finding] = findings_of(summary)[1]["user_summary_length"]
    assert "video_2" in finding["message"] and "longer than the video's" in finding["message"]


def test_bad_usage_is_one_line_and_exit_2(tmp_path, capsys):
    code, summary, stderr = check(capsys, tmp_path / "missing")
    assert code == 2 and summary is None
    assert stderr.strip().count("\n") == 0 and "missing" in stderr and "Traceback" not in stderr
    h5 = write_feature_file(tmp_path / "f.h5")
    code, _, stderr = check(capsys, h5, "--split-dir", tmp_path)
    assert code == 2 and "--split-dir" in stderr


def test_near_duplicates_need_close_bits_grey_and_duration():
    base = {"hash": "00" * 32, "grey": [60.0] * 4, "duration": 4.0}

    def near(**changes):
        return videos.near_duplicates([base, dict(base, **changes)]) == [(0, 1)]

    assert near(hash="ff" * 3 + "00" * 29)              # 24 bits differ: the edge
    assert not near(hash="ff" * 3 + "80" + "00" * 28)   # 25 bits
    assert near(grey=[72.0] * 4) and not near(grey=[73.0] * 4)
    assert near(grey=[46.0, 74.0, 60.0, 60.0])          # the mean gap counts, not the largest
    assert near(duration=3.55) and not near(duration=3.45)  # 0.5 s, over 10% of 4 s
    long = dict(base, duration=40.0)
    assert videos.near_duplicates([long, dict(long, duration=36.0)]) == [(0, 1)]  # 10%
    assert videos.near_duplicates([long, dict(long, duration=35.9)]) == []


def test_data_extract_check_stops_before_extracting(broken_tree, tmp_path, capsys, monkeypatch):
    from data import extract

    monkeypatch.chdir(tmp_path)  # the report goes to ./checks

    _, folder, splits = broken_tree
    out = tmp_path / "features.h5"
    code, _, stderr = call(extract.main, [str(folder), "--split-dir", str(splits), "--out", str(out),
                                          "--check", "--weights", "none"], capsys)
    assert code == 2
    assert "--check:" in stderr and "error(s)" in stderr
    assert not os.path.exists(out) and not os.path.exists(f"{out}.partial")
    assert os.path.exists(tmp_path / "checks" / "videos" / "report.md")


def test_train_run_check_stops_before_training(tmp_path, capsys, monkeypatch):
    from train import run

    monkeypatch.chdir(tmp_path)

    bad = write_feature_file(tmp_path / "bad.h5", nan_row=1)
    out = tmp_path / "run"
    code, _, stderr = call(run.main, ["--model", "bilstm_attention", "--features", str(bad),
                                      "--out", str(out), "--check"], capsys)
    assert code == 2
    assert "--check: " + str(bad) + " has 1 error(s)" in stderr
    assert not os.path.exists(out)


def test_grey_means_every_pixel_grey_not_equal_channel_means(tmp_path):
    """Random colour blocks have equal channel means on average, yet are not grey."""
    colour = write_clip(tmp_path / "colour.avi", seed=3)
    rng = np.random.default_rng(3)
    level = rng.integers(0, 256, (4, 5, 1)).astype(np.uint8).repeat(3, axis=2)
    grey = write_video(tmp_path / "grey.avi", np.stack(
        [cv2.resize(level, (40, 32), interpolation=cv2.INTER_NEAREST)] * 8), fps=8.0)
    records = [probe.inspect_video(path) for path in (colour, grey)]
    for record in records:
        record["path"] = "x"
    assert records[0]["colourfulness"] > 20 > 2 * videos.GREY_COLOURFULNESS
    assert records[1]["colourfulness"] < videos.GREY_COLOURFULNESS
    balanced = [dict(records[0], channel_mean=[100.0, 100.0, 100.0]), records[1]]
    assert videos.statistics(balanced)["greyscale_videos"] == 1


def test_a_still_image_and_a_one_frame_video_are_errors_as_every_reader_says(tmp_path):
    """data.check refuses what data.video and the decoder process refuse."""
    still = str(tmp_path / "still.mp4")
    cv2.imwrite(str(tmp_path / "still.jpg"), np.full((32, 40, 3), 120, np.uint8))
    os.rename(tmp_path / "still.jpg", still)
    one = write_video(tmp_path / "one.avi", np.full((1, 32, 40, 3), 120, np.uint8), fps=8.0)
    for path in (still, one):
        record = probe.inspect_video(path)
        assert not record["ok"] and "still image" in record["problem"], record


@pytest.mark.parametrize("skipped", ["not json", '["a.mp4"]'])
def test_a_malformed_skipped_list_is_a_schema_error_with_a_report(skipped, tmp_path, capsys):
    path = write_feature_file(tmp_path / "f.h5")
    with h5py.File(path, "a") as file:
        file.attrs["skipped"] = skipped
    code, summary, stderr = check(capsys, path, "--out", tmp_path / "report")
    assert code == 1, stderr
    assert "attribute 'skipped'" in findings_of(summary)[1]["schema"][0]["message"]
    assert os.path.isfile(summary["report"])


def test_check_before_tells_a_crashed_check_from_errors_found(tmp_path, monkeypatch):
    """Exit 1 with no summary line is the check failing, not the data."""
    import data.check as check_package

    def crashed(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, stdout="")

    monkeypatch.setattr(check_package.subprocess, "run", crashed)
    with pytest.raises(RuntimeError, match="data.check failed on .* without a report"):
        check_package.check_before([(tmp_path / "f.h5", None, 1)], what="--check")

    def found(command, **kwargs):
        return subprocess.CompletedProcess(
            command, 1, stdout='{"errors": 2, "warnings": 0, "report": "r/report.md"}\n')

    monkeypatch.setattr(check_package.subprocess, "run", found)
    with pytest.raises(ValueError, match="has 2 error"):
        check_package.check_before([(tmp_path / "f.h5", None, 1)], what="--check")
