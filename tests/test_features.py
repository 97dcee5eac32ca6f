"""Feature extraction into HDF5: schema, multi-scale math, resuming, bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from common.cli import run_main
from data.datasets import scan_dataset
from data.extract import main as extract_main
from data.features import (
    FeatureWriter,
    FrameFeatureExtractor,
    extract_features,
    partial_path,
    read_feature_file,
    rescale_indices,
    scale_lengths,
)
from data.video import VideoError, read_clip
from tests.video_files import cut_file, write_text_file, write_truncated_video, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKBONE, SIZE, FRAMES, DIM = "resnet50", (32, 32), 8, 2048


@pytest.fixture(scope="module")
def extractor():
    return FrameFeatureExtractor(BACKBONE, None, SIZE, batch_size=8, seed=0)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "walk" / "a.mp4", num_frames=12, size=(29, 37))
    write_video(root / "walk" / "b.avi", num_frames=3, size=(24, 32))
    write_video(root / "run" / "c.mkv", num_frames=9, size=(40, 30))
    write_video(root / "run" / "d.mov", num_frames=7, size=(32, 32))
    write_text_file(root / "run" / "fake.mp4")
    write_truncated_video(root / "walk" / "cut.mkv")
    return root


def extract(dataset, out, extractor, **overrides):
    lines = []
    arguments = dict(backbone=BACKBONE, weights=None, num_frames=FRAMES, size=SIZE, batch_size=8,
                     progress=False, extractor=extractor, log=lines.append)
    arguments.update(overrides)
    return extract_features(dataset, out, **arguments), lines


def test_scale_lengths_truncate_as_the_notes_do():
    assert scale_lengths(64) == [64, 54, 73]  # 54.4 and 73.6, truncated
    assert scale_lengths(8) == [8, 6, 9]
    # int() of the floating-point product: 100 * 1.15 is 114.99999999999999.
    assert scale_lengths(100) == [100, 85, 114]
    # Scale 1.0 is the sampled video as it is; the others take at least 5.
    assert scale_lengths(4) == [4, 5, 5]
    assert scale_lengths(64, multi_scale=False) == [64]
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        scale_lengths(0)


def test_rescaled_scales_skip_or_repeat_sampled_frames():
    np.testing.assert_array_equal(rescale_indices(8, 6), [0, 1, 2, 4, 5, 7])
    # 1.15x of 8 frames: 9 rows, frame 0 twice.
    np.testing.assert_array_equal(rescale_indices(8, 9), [0, 0, 1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(rescale_indices(8, 8), np.arange(8))


def test_multi_scale_resamples_the_sampled_frames_by_default(tmp_path, extractor):
    path = write_video(tmp_path / "v.mp4", num_frames=12)
    sequence, info = extractor.video_features(path, FRAMES, multi_scale=True)
    assert info.frame_count == 12 and sequence.shape == (9, DIM)
    sampled = extractor.frame_features(read_clip(path, FRAMES, SIZE))
    expected = np.zeros((9, DIM), np.float32)
    expected[:8] += sampled  # scale 1.0: the sampled frames as they are
    expected[:6] += sampled[[0, 1, 2, 4, 5, 7]]  # 0.85x
    expected[:9] += sampled[[0, 0, 1, 2, 3, 4, 5, 6, 7]]  # 1.15x
    # The backbone sees other batches here than in video_features, and its
    # float32 convolutions round differently by batch (a few 1e-6).
    np.testing.assert_allclose(sequence, expected / 3, rtol=1e-4, atol=1e-5)
    # the last steps average fewer real frames than the first six
    assert not np.allclose(sequence[8], sequence[7])
    single, _ = extractor.video_features(path, FRAMES, multi_scale=False)
    np.testing.assert_allclose(single, sampled, rtol=1e-5, atol=1e-6)


def test_multi_scale_from_the_whole_video_is_an_option(tmp_path, extractor):
    path = write_video(tmp_path / "v.mp4", num_frames=40)
    sequence, _ = extractor.video_features(path, FRAMES, multi_scale=True, scale_source="video")
    expected = np.zeros((9, DIM), np.float32)
    for count in (8, 6, 9):
        expected[:count] += extractor.frame_features(read_clip(path, count, SIZE))
    np.testing.assert_allclose(sequence, expected / 3, rtol=1e-4, atol=1e-5)
    # 9 frames over 40 are not 9 picks among the 8 sampled ones.
    sampled, _ = extractor.video_features(path, FRAMES, multi_scale=True)
    assert not np.allclose(sequence, sampled)
    with pytest.raises(ValueError, match="scale_source must be one of sampled, video"):
        extractor.video_features(path, FRAMES, scale_source="source")


def test_extraction_schema_round_trip_and_skipped_files(tree, extractor):
    dataset = scan_dataset(tree)
    out = tree.parent / "features.h5"
    summary, lines = extract(dataset, out, extractor)
    assert summary.written == 4 and set(summary.skipped) == {
        str(tree / "run" / "fake.mp4"), str(tree / "walk" / "cut.mkv")}
    assert any("RANDOMLY" in line for line in lines)
    assert any(line.startswith("skipped") and "fake.mp4" in line for line in lines)
    assert not os.path.exists(partial_path(out))

    with h5py.File(out, "r") as file:
        features = file["features"]
        assert features.shape == (4, 9, DIM) and features.dtype == np.float32
        assert features.compression == "gzip" and features.compression_opts == 4
        assert file["labels"].dtype == np.int64 and file["num_frames"].dtype == np.int32
        attrs = file.attrs
        assert attrs["num_videos"] == 4 and attrs["max_frames"] == 9 and attrs["feature_dim"] == DIM
        assert json.loads(attrs["category_mapping"]) == {"run": 0, "walk": 1}
        assert bool(attrs["multi_scale"]) and attrs["backbone"] == BACKBONE
        assert attrs["scale_source"] == "sampled"
        assert bool(attrs["complete"])
        skipped = json.loads(attrs["skipped"])
        assert [entry["path"] for entry in skipped] == sorted(summary.skipped)
        assert "truncated" in skipped[0]["error"] or "truncated" in skipped[1]["error"]

    data = read_feature_file(out, expected_dim=DIM)
    names = [os.path.relpath(source, tree) for source in data.sources]
    assert names == ["run/c.mkv", "run/d.mov", "walk/a.mp4", "walk/b.avi"]
    np.testing.assert_array_equal(data.labels, [0, 0, 1, 1])
    np.testing.assert_array_equal(data.num_frames, [9, 9, 9, 9])
    assert data.class_names == ("run", "walk") and data.backbone == BACKBONE
    assert data.mask.all() and data.splits is None
    for row, source in enumerate(data.sources):
        expected, _ = extractor.video_features(source, FRAMES)
        np.testing.assert_allclose(data.features[row], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(data.features[0], data.features[2])


def test_a_video_that_crashes_the_decoder_is_skipped_and_the_rest_extracted(
        tmp_path, extractor, monkeypatch):
    from tests.crashing_decoder import use_crashing_decoder
    from tests.video_files import write_crashing_avi, write_still_image

    root = tmp_path / "videos"
    write_video(root / "walk" / "a.mp4", num_frames=6, size=(24, 32))
    (root / "walk" / "crash.mp4").write_bytes(b"CRASH" + bytes(2000))  # the stand-in aborts
    os.makedirs(root / "run")
    write_crashing_avi(str(root / "run" / "raw.avi"))  # OpenCV 4.13 aborts on it
    write_still_image(str(root / "run" / "photo.mp4"))
    write_video(root / "run" / "b.mp4", num_frames=6, size=(24, 32))
    decoder = use_crashing_decoder(monkeypatch)
    try:
        summary, lines = extract(scan_dataset(root), tmp_path / "features.h5", extractor)
    finally:
        decoder.close()
    skipped = {os.path.basename(path): error for path, error in summary.skipped.items()}
    assert skipped["crash.mp4"] == "could not be decoded: the decoder crashed on this file (SIGABRT)"
    assert skipped["photo.mp4"] == "a still image (PNG), not a video"
    assert summary.written + len(summary.skipped) == 5 and summary.written >= 2
    sources = read_feature_file(tmp_path / "features.h5", expected_dim=DIM).sources
    assert {"a.mp4", "b.mp4"} <= {os.path.basename(source) for source in sources}


def test_rerun_skips_done_videos_and_appends_new_ones(tree, extractor):
    dataset = scan_dataset(tree)
    out = tree.parent / "features.h5"
    extract(dataset, out, extractor)
    before = read_feature_file(out)
    stamp = os.stat(out).st_mtime_ns

    summary, lines = extract(dataset, out, extractor)
    assert summary.written == 0 and summary.already_done == 4
    assert any("up to date" in line for line in lines)
    assert os.stat(out).st_mtime_ns == stamp

    write_video(tree / "walk" / "e.webm", num_frames=5)
    summary, _ = extract(scan_dataset(tree), out, extractor)
    assert summary.written == 1  # the two skipped files are not retried by default
    after = read_feature_file(out)
    assert after.num_videos == 5 and len(set(after.sources)) == 5
    np.testing.assert_array_equal(after.features[:4], before.features)
    assert len(after.skipped) == 2

    os.remove(tree / "run" / "fake.mp4")
    write_video(tree / "run" / "fake.mp4", num_frames=4)  # fixed since
    summary, _ = extract(scan_dataset(tree), out, extractor, retry_skipped=True)
    assert summary.written == 1
    fixed = read_feature_file(out)
    assert fixed.num_videos == 6 and [path for path, _ in fixed.skipped] == [
        str(tree / "walk" / "cut.mkv")]


def test_rerun_with_other_settings_is_refused(tree, extractor):
    dataset = scan_dataset(tree)
    out = tree.parent / "features.h5"
    extract(dataset, out, extractor)
    with pytest.raises(ValueError, match=r"frames=8 but this run asks for frames=6"):
        extract(dataset, out, extractor, num_frames=6)
    with pytest.raises(
        ValueError, match=r"scale_source='sampled' but this run asks for scale_source='video'"
    ):
        extract(dataset, out, extractor, scale_source="video")
    with pytest.raises(ValueError, match=r"backbone='resnet50' but this run asks for backbone='efficientnet_b0'"):
        extract(dataset, out, None, backbone="efficientnet_b0")
    os.makedirs(tree / "jump")
    write_video(tree / "jump" / "j.mp4", num_frames=3)
    with pytest.raises(ValueError, match="holds classes"):
        extract(scan_dataset(tree), out, extractor)


def test_on_error_fail_leaves_a_resumable_partial_file(tree, extractor):
    dataset = scan_dataset(tree)
    out = tree.parent / "features.h5"
    with pytest.raises(VideoError, match="fake.mp4"):
        extract(dataset, out, extractor, on_error="fail")
    assert not os.path.exists(out)
    with pytest.raises(ValueError, match="incomplete"):
        read_feature_file(partial_path(out))
    summary, lines = extract(dataset, out, extractor)
    assert summary.already_done == 2 and summary.written == 2
    assert any(line.startswith("resuming") for line in lines)
    assert read_feature_file(out).num_videos == 4


def test_damaged_partial_file_is_named_and_kept(tree, extractor, capsys):
    dataset = scan_dataset(tree)
    out = tree.parent / "features.h5"
    with pytest.raises(VideoError):
        extract(dataset, out, extractor, on_error="fail")  # leaves 2 rows in .partial
    partial = partial_path(out)
    cut_file(partial, 0.5)  # a disk that filled up, a copy cut short
    damaged = open(partial, "rb").read()
    # HDF5 says "truncated file: ... sblock->base_addr ...": not a lock.
    with pytest.raises(ValueError, match=r"features.h5.partial: damaged, cannot be resumed "
                                         r"\(.*truncated file.*\); delete it") as error:
        extract(dataset, out, extractor)
    assert "another extraction" not in str(error.value)
    assert open(partial, "rb").read() == damaged and not os.path.exists(out)

    # from the command line: one line, exit 2
    with pytest.raises(SystemExit) as exit_info:
        run_main(extract_main, [str(tree), "--out", str(out), "--backbone", BACKBONE,
                                "--weights", "none", "--frames", str(FRAMES), "--size", "32", "32"])
    assert exit_info.value.code == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert error_lines[-1].startswith(f"error: {partial}: damaged") and "Traceback" not in "".join(error_lines)

    with open(partial, "wb") as file:  # an HDF5 signature and nothing else
        file.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ValueError, match="partial: damaged, cannot be resumed.*delete it"):
        extract(dataset, out, extractor)
    os.remove(partial)
    summary, _ = extract(dataset, out, extractor)
    assert summary.written == 4 and read_feature_file(out).num_videos == 4


def test_partial_file_in_use_by_another_extraction_is_refused(tree, extractor):
    dataset = scan_dataset(tree)
    out = tree.parent / "features.h5"
    settings = dict(backbone=BACKBONE, weights="none", frames=FRAMES, size=list(SIZE),
                    multi_scale=True, steps=9)
    running = FeatureWriter(out, settings, dataset.class_names, DIM, log=lambda line: None)
    running.open()
    try:
        with pytest.raises(ValueError, match=r"features.h5: in use by another extraction"):
            extract(dataset, out, extractor)
    finally:
        running.close()
    summary, _ = extract(dataset, out, extractor)  # the lock went with the first writer
    assert summary.written == 4
    assert sorted(os.listdir(tree.parent)) == ["features.h5", "videos"]


def test_partial_file_open_in_another_program_is_named(tree, extractor):
    dataset = scan_dataset(tree)
    out = tree.parent / "features.h5"
    with pytest.raises(VideoError):
        extract(dataset, out, extractor, on_error="fail")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time, h5py; f = h5py.File(sys.argv[1], 'r+'); "
         "print('open', flush=True); time.sleep(60)", partial_path(out)],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"open"
        with pytest.raises(ValueError, match=r"features.h5.partial: open in another program "
                                             r"\(HDF5 holds a lock on it\)"):
            extract(dataset, out, extractor)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    summary, _ = extract(dataset, out, extractor)
    assert summary.already_done == 2 and summary.written == 2


def test_empty_partial_of_a_failed_first_attempt_restarts_with_new_settings(tree, extractor):
    dataset = scan_dataset(tree)
    out = tree.parent / "features.h5"
    bad_weights = write_text_file(tree.parent / "bad.weights.h5")
    with pytest.raises(ValueError, match="does not fit backbone"):
        extract(dataset, out, None, weights=bad_weights)
    with h5py.File(partial_path(out), "r") as file:
        assert file.attrs["num_videos"] == 0 and file.attrs["weights"] == bad_weights

    summary, lines = extract(dataset, out, extractor)  # weights corrected
    restarted = [line for line in lines if "holds no videos yet" in line]
    assert len(restarted) == 1 and "weights=" in restarted[0] and "starting it again" in restarted[0]
    assert summary.written == 4 and summary.already_done == 0
    with h5py.File(out, "r") as file:
        assert file.attrs["weights"] == "none" and file.attrs["num_videos"] == 4

    # A partial that holds rows still refuses other settings.
    with pytest.raises(VideoError):
        extract(dataset, tree.parent / "more.h5", extractor, on_error="fail")
    with pytest.raises(ValueError, match="frames=8 but this run asks for frames=6"):
        extract(dataset, tree.parent / "more.h5", extractor, num_frames=6)


def test_writer_widens_the_time_axis_with_zero_padding(tmp_path):
    settings = dict(backbone=BACKBONE, weights="none", frames=3, size=[32, 32],
                    multi_scale=False, steps=3)
    writer = FeatureWriter(tmp_path / "f.h5", settings, ["a", "b"], feature_dim=4)
    writer.open()
    writer.append(np.ones((3, 4)), 0, "/v/one.mp4")
    writer.append(np.full((5, 4), 2.0), 1, "/v/two.mp4", split="test")
    writer.append(np.full((2, 4), 3.0), 1, "/v/three.mp4", split="train")
    assert writer.file["features"].shape == (3, 5, 4) and writer.file.attrs["max_frames"] == 5
    writer.finish()
    data = read_feature_file(tmp_path / "f.h5")
    np.testing.assert_array_equal(data.num_frames, [3, 5, 2])
    np.testing.assert_array_equal(data.features[0, 3:], 0.0)
    np.testing.assert_array_equal(data.features[2, :2], 3.0)
    np.testing.assert_array_equal(data.features[2, 2:], 0.0)
    assert data.mask.sum(axis=1).tolist() == [3, 5, 2]
    assert data.splits == ("", "test", "train")
    assert os.listdir(tmp_path) == ["f.h5"]  # finish let go of the lock and removed its file


def write_notes_file(path, features, labels, num_frames, mapping, **attrs):
    with h5py.File(path, "w") as file:
        file.create_dataset("features", data=np.asarray(features, np.float32), compression="gzip",
                            compression_opts=4)
        file.create_dataset("labels", data=np.asarray(labels, np.int64))
        file.create_dataset("num_frames", data=np.asarray(num_frames, np.int32))
        features = np.asarray(features)
        file.attrs.update(dict(num_videos=features.shape[0], max_frames=features.shape[1],
                               feature_dim=features.shape[2], category_mapping=json.dumps(mapping),
                               multi_scale=True))
        file.attrs.update(attrs)
    return path


def test_reader_accepts_the_notes_schema_and_refuses_bad_files(tmp_path):
    features = np.random.default_rng(0).normal(size=(3, 4, 6)).astype(np.float32)
    good = write_notes_file(tmp_path / "notes.h5", features, [1, 0, 1], [4, 2, 3], {"a": 0, "b": 1})
    data = read_feature_file(good, expected_dim=6)
    assert data.class_names == ("a", "b") and data.backbone is None and data.sources is None
    np.testing.assert_array_equal(data.features, features)

    with pytest.raises(ValueError, match=r"notes.h5: features have feature_dim 6 but the model expects 2048"):
        read_feature_file(good, expected_dim=2048)

    broken = features.copy()
    broken[2, 1, 3] = np.inf
    path = write_notes_file(tmp_path / "inf.h5", broken, [1, 0, 1], [4, 2, 3], {"a": 0, "b": 1})
    with pytest.raises(ValueError, match="inf.h5: features row 2 contains NaN or Inf"):
        read_feature_file(path)

    path = write_notes_file(tmp_path / "dim.h5", features, [1, 0, 1], [4, 2, 3], {"a": 0, "b": 1},
                            feature_dim=5)
    with pytest.raises(ValueError, match="attribute feature_dim=5 but 'features' has D=6"):
        read_feature_file(path)

    path = write_notes_file(tmp_path / "label.h5", features, [1, 0, 2], [4, 2, 3], {"a": 0, "b": 1})
    with pytest.raises(ValueError, match="labels row 2 is 2, outside the 2 classes"):
        read_feature_file(path)

    path = write_notes_file(tmp_path / "open.h5", features, [1, 0, 1], [4, 2, 3], {"a": 0, "b": 1},
                            complete=False)
    with pytest.raises(ValueError, match="marked incomplete"):
        read_feature_file(path)

    with h5py.File(tmp_path / "other.h5", "w") as file:
        file.create_dataset("features", data=features)
        file.create_dataset("y", data=[1, 2, 3])
    with pytest.raises(ValueError, match="other.h5: not a feature file: dataset 'labels' is missing"):
        read_feature_file(tmp_path / "other.h5")

    write_text_file(tmp_path / "text.h5")
    with pytest.raises(ValueError, match="text.h5: cannot be read as an HDF5 file"):
        read_feature_file(tmp_path / "text.h5")
    with pytest.raises(ValueError, match="no such feature file"):
        read_feature_file(tmp_path / "absent.h5")


def test_nan_row_is_named_with_its_source(tree, extractor):
    out = tree.parent / "features.h5"
    extract(scan_dataset(tree), out, extractor)
    with h5py.File(out, "r+") as file:
        file["features"][1, 4, 7] = np.nan
    with pytest.raises(ValueError, match=r"features row 1 \(.*run/d.mov\) contains NaN or Inf"):
        read_feature_file(out)


def test_another_format_at_out_is_not_overwritten(tmp_path, tree, extractor):
    out = write_notes_file(tmp_path / "theirs.h5", np.zeros((1, 2, DIM)), [0], [2], {"run": 0, "walk": 1})
    before = open(out, "rb").read()
    with pytest.raises(ValueError, match="not written by data.extract"):
        extract(scan_dataset(tree), out, extractor)
    assert open(out, "rb").read() == before


def test_cli_help_and_user_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        extract_main(["--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for expected in ("--no-multi-scale", "--on-error", "default: efficientnet_v2_s",
                     "default: imagenet", "default: 64", "default: [256, 256]", "default: skip",
                     "--scale-source {sampled,video}", "default: sampled"):
        assert expected in help_text
    assert "(default: True)" not in help_text

    with pytest.raises(SystemExit) as exit_info:
        run_main(extract_main, [str(tmp_path / "absent"), "--out", str(tmp_path / "f.h5")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "absent: no such folder or manifest file" in error[0]

    with pytest.raises(SystemExit) as exit_info:
        run_main(extract_main, [str(tmp_path), "--out", str(tmp_path / "f.h5"), "--frames", "0"])
    assert exit_info.value.code == 2
    assert "--frames must be >= 1" in capsys.readouterr().err


def _rows_written(path):
    try:
        with h5py.File(path, "r", locking=False) as file:
            return int(file.attrs["num_videos"])
    except Exception:  # not created yet, or caught mid-write
        return 0


KILLED_AT_FIFTH_ROW = """
import os, runpy, signal, sys
from data import features

append = features.FeatureWriter.append
rows = []

def append_until_the_fifth(self, *args, **kwargs):
    rows.append(None)
    if len(rows) == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return append(self, *args, **kwargs)

features.FeatureWriter.append = append_until_the_fifth
sys.argv[0] = "data.extract"
runpy.run_module("data.extract", run_name="__main__")
"""


@pytest.mark.slow
def test_killed_extraction_resumes_to_exactly_one_row_per_video(tmp_path, extractor):
    root = tmp_path / "videos"
    for index in range(16):
        write_video(root / ("even" if index % 2 else "odd") / f"v{index:02d}.avi",
                    num_frames=5 + index % 7, size=(24, 32))
    out = tmp_path / "features.h5"
    command = [sys.executable, "-m", "data.extract", str(root), "--out", str(out),
               "--backbone", BACKBONE, "--weights", "none", "--frames", str(FRAMES),
               "--size", "32", "32", "--batch-size", "8", "--no-progress"]
    environment = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")

    # The child kills itself as it starts the fifth row: a known point,
    # whatever the machine's load.
    process = subprocess.run([sys.executable, "-c", KILLED_AT_FIFTH_ROW, *command[3:]],
                             cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, timeout=600)
    stderr = process.stderr.decode()
    assert process.returncode == -signal.SIGKILL, stderr
    assert not os.path.exists(out)
    killed_at = _rows_written(partial_path(out))
    assert killed_at == 4
    with pytest.raises(ValueError, match="incomplete"):
        read_feature_file(partial_path(out))

    # resume in this process, with the same settings and the same (seeded) backbone
    summary, lines = extract(scan_dataset(root), out, extractor)
    assert any(line.startswith("resuming") for line in lines)
    assert summary.already_done == killed_at and summary.written == 16 - killed_at
    data = read_feature_file(out, expected_dim=DIM)
    dataset = scan_dataset(root)
    assert data.num_videos == 16 and sorted(data.sources) == sorted(dataset.paths)
    assert not os.path.exists(partial_path(out))

    # every row, written before or after the kill, is what one clean pass gives
    for row, source in enumerate(data.sources):
        expected, _ = extractor.video_features(source, FRAMES)
        np.testing.assert_allclose(data.features[row], expected, rtol=1e-5, atol=1e-6)
        assert data.labels[row] == dataset.labels[dataset.paths.index(source)]
    shutil.rmtree(root)
