"""Feature extraction split across processes: shares, part files, merge."""

import dataclasses
import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest

from common.cluster import worker_shard
from data.datasets import scan_dataset
from data.extract import main as extract_main
from data.extract import resolve_shard
from data.features import (
    FrameFeatureExtractor,
    extract_features,
    find_parts,
    part_path,
    partial_path,
    shard_indices,
)
from tests.cli_calls import call
from tests.cluster_processes import run_together
from tests.test_distribute import subprocess_env
from tests.video_files import write_text_file, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The cheapest backbone to build and trace: sharding is under test, and the
# parts must equal the one-process file exactly whatever the backbone.
BACKBONE, SIZE, FRAMES, BATCH = "mobilenet_v3_small_minimalistic", (32, 32), 4, 8
FLAGS = ["--backbone", BACKBONE, "--weights", "none", "--frames", str(FRAMES),
         "--size", *map(str, SIZE), "--batch-size", str(BATCH), "--no-progress"]


def h5_contents(path):
    """{name: array} of every dataset and {name: value} of every attribute."""
    with h5py.File(path, "r") as file:
        datasets = {name: file[name][()] for name in file}
        attrs = {name: file.attrs[name] for name in file.attrs}
    return datasets, attrs


def assert_same_file(path, reference):
    datasets, attrs = h5_contents(path)
    expected_datasets, expected_attrs = h5_contents(reference)
    assert sorted(datasets) == sorted(expected_datasets)
    for name, values in expected_datasets.items():
        np.testing.assert_array_equal(datasets[name], values, err_msg=name)
    assert sorted(attrs) == sorted(expected_attrs)
    for name, value in expected_attrs.items():
        np.testing.assert_array_equal(attrs[name], value, err_msg=name)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Five tiny videos in two classes and one unreadable file, and the
    file a one-process extraction writes of them."""
    folder = tmp_path_factory.mktemp("shards")
    root = folder / "videos"
    write_video(root / "jump" / "a.mp4", num_frames=7, size=(24, 32))
    write_video(root / "jump" / "b.mp4", num_frames=5, size=(24, 32))
    write_text_file(root / "jump" / "fake.mp4")
    write_video(root / "run" / "c.mp4", num_frames=9, size=(24, 32))
    write_video(root / "run" / "d.mp4", num_frames=6, size=(24, 32))
    write_video(root / "run" / "e.mp4", num_frames=8, size=(24, 32))
    dataset = scan_dataset(root)
    extractor = FrameFeatureExtractor(BACKBONE, None, SIZE, batch_size=BATCH, seed=0)
    reference = folder / "one_process.h5"
    extract_features(dataset, reference, backbone=BACKBONE, weights=None, num_frames=FRAMES,
                     size=SIZE, batch_size=BATCH, progress=False, extractor=extractor,
                     log=lambda line: None)
    return root, dataset, extractor, reference


def test_shares_are_every_nth_video_and_tf_config_numbers_chief_first(monkeypatch):
    assert [list(shard_indices(7, index, 3)) for index in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]
    assert part_path("/data/features.h5", 1, 2) == "/data/features.part-00001-of-00002.h5"
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"], "evaluator": ["d:1"]}
    assert [worker_shard(cluster, "chief", 0), worker_shard(cluster, "worker", 0),
            worker_shard(cluster, "worker", 1)] == [(0, 3), (1, 3), (2, 3)]
    assert worker_shard({"worker": ["b:1", "c:1"]}, "worker", 1) == (1, 2)
    with pytest.raises(ValueError, match="task type 'evaluator' takes no share"):
        worker_shard(cluster, "evaluator", 0)

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert resolve_shard(None, None) == (0, 1)
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:1", "c:1"]}, "task": {"type": "worker", "index": 2}}))
    assert resolve_shard(None, None) == (2, 3)
    assert resolve_shard(4, 1) == (1, 4)  # the flags win over TF_CONFIG
    with pytest.raises(ValueError, match="--num-shards and --shard-index go together"):
        resolve_shard(2, None)
    with pytest.raises(ValueError, match=r"--shard-index must be in \[0, 2\), got 2"):
        resolve_shard(2, 2)


def test_shard_flags_write_parts_that_merge_into_the_one_process_file(videos, tmp_path, capsys):
    root, dataset, extractor, reference = videos
    out = tmp_path / "features.h5"
    code, _, err = call(extract_main, [str(root), "--out", str(out), *FLAGS,
                                       "--num-shards", "2", "--shard-index", "1"], capsys)
    assert code == 0 and "extracting share 1 of 2" in err, err
    # The other share through the library with the module's backbone (one
    # backbone build less).
    extract_features(dataset, out, backbone=BACKBONE, weights=None, num_frames=FRAMES, size=SIZE,
                     batch_size=BATCH, progress=False, extractor=extractor, log=lambda line: None,
                     num_shards=2, shard_index=0)
    parts = [part_path(out, index, 2) for index in range(2)]
    assert find_parts(out) == parts and not out.exists()
    sources = [os.path.abspath(path) for path in dataset.paths]
    assert os.path.basename(sources[2]) == "fake.mp4"  # share 0: a, fake, d; share 1: b, c, e
    with h5py.File(parts[0], "r") as file:
        assert file["video_index"][()].tolist() == [0, 4]
        assert [os.path.basename(s.decode()) for s in file["sources"][()]] == ["a.mp4", "d.mp4"]
        assert json.loads(file.attrs["skipped"])[0]["path"] == sources[2]
        assert (file.attrs["num_shards"], file.attrs["shard_index"]) == (2, 0)
    with h5py.File(parts[1], "r") as file:
        assert file["video_index"][()].tolist() == [1, 3, 5]

    # A share run again resumes its part: nothing left to do.
    code, _, err = call(extract_main, [str(root), "--out", str(out), *FLAGS,
                                       "--num-shards", "2", "--shard-index", "1"], capsys)
    assert code == 0 and "is up to date (3 videos)" in err

    # Parts named in any order; rows come out in the one-process order.
    code, _, err = call(extract_main, ["--merge", str(out), parts[1], parts[0]], capsys)
    assert code == 0, err
    assert_same_file(out, reference)
    assert not os.path.exists(partial_path(out)) and not os.path.exists(f"{out}.lock")


@pytest.mark.slow
def test_two_workers_on_loopback_from_tf_config_then_merge(videos, tmp_path, capsys):
    root, _, _, reference = videos
    out = tmp_path / "features.h5"

    def start(ports):
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        commands = {}
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            argv = [sys.executable, "-m", "data.extract", str(root), "--out", str(out), *FLAGS]
            commands[index] = (argv, {"cwd": ROOT, "env": subprocess_env(TF_CONFIG=tf_config)})
        return commands

    codes, outputs = run_together(start, port_count=2, timeout=600)
    assert codes == {0: 0, 1: 0}, outputs
    assert "extracting share 1 of 2" in outputs[1]
    code, _, err = call(extract_main, ["--merge", str(out)], capsys)
    assert code == 0, err
    assert_same_file(out, reference)


@pytest.fixture
def parts(videos, tmp_path):
    """The two part files of `videos`, extracted in-process."""
    _, dataset, extractor, _ = videos
    out = tmp_path / "features.h5"
    for index in range(2):
        extract_features(dataset, out, backbone=BACKBONE, weights=None, num_frames=FRAMES,
                         size=SIZE, batch_size=BATCH, progress=False, extractor=extractor,
                         log=lambda line: None, num_shards=2, shard_index=index)
    return out, [part_path(out, index, 2) for index in range(2)]


def refused(argv, capsys):
    code, _, err = call(extract_main, argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    return lines[0]


def test_merge_refuses_an_existing_output_and_missing_incomplete_or_foreign_parts(parts, capsys):
    out, (part0, part1) = parts
    out.write_bytes(b"an earlier result")
    assert "exists; a merge never overwrites it" in refused(["--merge", str(out)], capsys)
    assert out.read_bytes() == b"an earlier result"
    out.unlink()

    os.replace(part1, partial_path(part1))
    assert f"{part1}: share 1 of 2 is incomplete" in refused(["--merge", str(out)], capsys)
    assert "incomplete (only" in refused(["--merge", str(out), part0, part1], capsys)
    os.remove(partial_path(part1))
    assert f"{part1}: share 1 of 2 is missing" in refused(["--merge", str(out)], capsys)
    assert "holds share 0 of 2, as" in refused(["--merge", str(out), part0, part0], capsys)

    other = out.parent / "other.part-00001-of-00002.h5"
    shutil.copyfile(part0, other)
    with h5py.File(other, "r+") as file:
        file.attrs["shard_index"] = 1
        file.attrs["frames"] = FRAMES + 1
    assert "was extracted with frames=5 but" in refused(["--merge", str(out), part0, str(other)],
                                                        capsys)
    with h5py.File(other, "r+") as file:
        file.attrs["frames"] = FRAMES
        file.attrs["shard_list"] = "another video list"
    assert refused(["--merge", str(out), part0, str(other)], capsys) == (
        f"error: {other}: was extracted from another video list than {part0} (the paths or "
        "labels of the videos differ); merge the parts of one extraction only")
    with h5py.File(other, "r+") as file:
        del file.attrs["num_shards"]
    assert "not a part file" in refused(["--merge", str(out), part0, str(other)], capsys)
    assert "no part files" in refused(["--merge", str(out.parent / "none.h5")], capsys)
    assert not out.exists() and not os.path.exists(partial_path(out))


def test_a_part_is_not_resumed_with_another_video_list(videos, parts):
    _, dataset, extractor, _ = videos
    out, (part0, _) = parts
    before = open(part0, "rb").read()
    fewer = dataclasses.replace(dataset, paths=dataset.paths[:-1], labels=dataset.labels[:-1])
    with pytest.raises(ValueError, match="holds a share of another video list \\(its paths or "
                                         "labels differ from this run's\\)"):
        extract_features(fewer, out, backbone=BACKBONE, weights=None, num_frames=FRAMES, size=SIZE,
                         batch_size=BATCH, progress=False, extractor=extractor,
                         log=lambda line: None, num_shards=2, shard_index=0)
    assert open(part0, "rb").read() == before and not os.path.exists(partial_path(part0))


def extract_parts(dataset, out, extractor, seeds=(0, 0)):
    for index, seed in enumerate(seeds):
        extract_features(dataset, out, backbone=BACKBONE, weights=None, num_frames=FRAMES,
                         size=SIZE, batch_size=BATCH, progress=False, extractor=extractor,
                         log=lambda line: None, num_shards=2, shard_index=index, seed=seed)
    return [part_path(out, index, 2) for index in range(2)]


def test_parts_record_their_backbone_and_seed_and_other_seeds_never_merge(videos, tmp_path,
                                                                        capsys):
    _, dataset, extractor, _ = videos
    out = tmp_path / "features.h5"
    part0, part1 = extract_parts(dataset, out, extractor, seeds=(0, 1))
    with h5py.File(part0, "r") as file:
        assert file.attrs["seed"] == 0
        assert file.attrs["backbone_id"] == f"{BACKBONE} random seed 0"
    message = refused(["--merge", str(out)], capsys)
    assert message == (
        f"error: {part1}: was extracted with backbone_id='{BACKBONE} random seed 1' but {part0} "
        f"with backbone_id='{BACKBONE} random seed 0'; merge the parts of one extraction only")
    assert not out.exists()


def test_an_interrupted_merge_is_not_resumed_with_parts_of_another_list(videos, tmp_path,
                                                                       capsys, monkeypatch):
    from data import features

    root, dataset, extractor, _ = videos
    out = tmp_path / "features.h5"
    extract_parts(dataset, out, extractor)
    appended = []
    original = features.FeatureWriter.append

    def append_then_die(self, *args, **kwargs):
        if len(appended) == 2:
            raise KeyboardInterrupt  # a kill during the merge
        appended.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(features.FeatureWriter, "append", append_then_die)
    with pytest.raises(KeyboardInterrupt):
        call(extract_main, ["--merge", str(out)], capsys)
    monkeypatch.setattr(features.FeatureWriter, "append", original)
    assert os.path.exists(partial_path(out))
    # The parts are made again from another list of the same settings.
    for part in find_parts(out):
        os.remove(part)
    other = dataclasses.replace(dataset, paths=dataset.paths[1:], labels=dataset.labels[1:])
    extract_parts(other, out, extractor)
    message = refused(["--merge", str(out)], capsys)
    assert message.startswith(f"error: {partial_path(out)}: a merge begun from parts of another "
                              "video list") and message.endswith("; delete it to merge these parts")
    assert not out.exists()
    os.remove(partial_path(out))
    code, _, err = call(extract_main, ["--merge", str(out)], capsys)
    assert code == 0, err
    with h5py.File(out, "r") as file:
        rows = int(file.attrs["num_videos"])
    assert f"wrote {out}: {rows} videos" in err and rows == len(other.paths) - 1  # fake.mp4 skipped
