"""Published numbers appear beside ours only on the data they were measured on."""

import numpy as np
import pytest

import models
from data import summarization as sm
from train import tasks
from train.tasks.classification import HMDB51_CLASSES, ClassifierTask
from train.tasks.clips import ClipOptions, recognise_benchmark
from train.tasks.frame_scores import FrameScoreOptions, comparison_table, summary_report


def tiny_records(count, users):
    """`count` videos of 30 frames in the public schema, `users` summaries each."""
    rng = np.random.default_rng(0)
    picks = np.arange(0, 30, 3)
    return {
        f"video_{i + 1}": {
            "features": rng.normal(size=(len(picks), 4)).astype(np.float32),
            "gtscore": rng.uniform(size=len(picks)).astype(np.float32),
            "user_summary": (rng.uniform(size=(users, 30)) < 0.2).astype(np.float32),
            "change_points": np.array([[0, 14], [15, 29]]),
            "n_frame_per_seg": np.array([15, 15]),
            "n_frames": 30,
            "picks": picks,
        }
        for i in range(count)
    }


def table_of(dataset=None, synthetic_videos=6):
    """The comparison table of a report whose predictions are the gtscore."""
    config = models.get_config("keyframe_transformer", preset="tiny")
    if dataset is not None:
        config = config.with_overrides(input_shape=(None, 4))
    options = FrameScoreOptions(dataset=dataset, synthetic_videos=synthetic_videos)
    bundle = tasks.get_task("frame_scores").load(options, config, seed=0)
    predictions = {key: bundle.videos[key].gtscore for key in bundle.keys["test"]}
    report = summary_report(predictions, bundle)
    return report, comparison_table(report)


def test_the_synthetic_set_gets_no_published_anchors():
    report, table = table_of()
    assert report["benchmark"] is None and report["anchors"] == {}
    assert "| ours (" in table
    for name in ("DSNet", "VASNet", "PGL-SUM", "human"):
        assert name not in table
    assert "No published anchors" in table


@pytest.mark.parametrize(
    "count, users, name, expected, absent",
    [
        (50, 20, "my_videos.h5", ["DSNet (published, tvsum) | 62.05", "human annotators (tvsum) | | 0.177 | 0.204",
                                  "PGL-SUM (published, tvsum) | 61.00 | 0.157 | 0.206"], []),
        (25, 16, "renamed.h5", ["DSNet (published, summe) | 50.19", "VASNet (published, summe) | 49.63",
                                "PGL-SUM (published, summe) | 55.60 |  |  |"], ["human", "tvsum"]),
        # The public name, but not the public set: no anchors.
        (6, 20, "eccv16_dataset_tvsum_google_pool5.h5", [], ["DSNet", "human"]),
    ],
)
def test_a_file_structured_like_the_public_set_gets_its_anchors(
        tmp_path, count, users, name, expected, absent):
    path = sm.write_summary_file(tiny_records(count, users), tmp_path / name)
    report, table = table_of(str(path))
    for row in expected:
        assert row in table
    for word in absent:
        assert word not in table
    assert bool(expected) == bool(report["anchors"])


def write_hmdb_layout(tmp_path, classes, split=1):
    from tests.video_files import write_video

    root, lists = tmp_path / "hmdb", tmp_path / "splits"
    lists.mkdir()
    for name in classes:
        (root / name).mkdir(parents=True)
        write_video(str(root / name / "a.avi"), num_frames=3, size=(8, 8), fourcc="MJPG")
        (lists / f"{name}_test_split{split}.txt").write_text("a.avi 1\n")
    return str(root), str(lists)


def test_hmdb51_runs_get_the_notes_numbers_and_others_do_not(tmp_path):
    root, lists = write_hmdb_layout(tmp_path, HMDB51_CLASSES)
    config = models.get_config("r2plus1d", preset="tiny")
    bundle = tasks.get_task("clips").load(ClipOptions(data=root, split_dir=lists), config, seed=0)
    assert bundle.info["benchmark"] == "hmdb51"
    # Another split number's lists are not there: not recognised.
    assert recognise_benchmark(lists, 2, HMDB51_CLASSES) is None
    # A few HMDB51 classes in its layout are not HMDB51.
    assert recognise_benchmark(lists, 1, HMDB51_CLASSES[:3]) is None

    summary = {"accuracy": 0.25, "examples": 51}
    table = ClassifierTask().describe({"summary": summary, "benchmark": "hmdb51"})
    assert "| ours (51 videos) | 0.250 |" in table
    assert "R(2+1)D-18 baseline (design notes, hmdb51) | 0.727" in table
    assert "R(2+1)D + Perceiver 8+1+1 (design notes, hmdb51) | 0.703" in table
    assert "design notes" not in ClassifierTask().describe({"summary": summary, "benchmark": None})


def test_a_synthetic_clip_report_names_no_benchmark():
    config = models.get_config("convlstm", preset="tiny")
    bundle = tasks.get_task("clips").load(ClipOptions(synthetic_clips=4), config, seed=0)
    model = models.build("convlstm", preset="tiny")
    report = tasks.get_task("clips").evaluate([("convlstm", model)], bundle, "test")
    described = tasks.get_task("clips").describe(report)
    assert report["benchmark"] is None and "design notes" not in described
    # The baselines stand beside our numbers whatever the data.
    assert "| majority class |" in described and "| uniform random |" in described
