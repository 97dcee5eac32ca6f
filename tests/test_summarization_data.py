"""The summarization HDF5 reader, splits, tf.data batches and synthetic set."""

import json

import h5py
import numpy as np
import pytest

from data import summarization as sm
from data.sequences import sequence_dataset
from models.losses import PADDED_TARGET


def public_video(n_frames=40, step=5, dim=6, users=3, seed=0):
    """Fields of one video exactly as the public files store them."""
    rng = np.random.default_rng(seed)
    picks = np.arange(0, n_frames, step)
    change_points = np.array([[0, 9], [10, 24], [25, n_frames - 1]])
    return {
        "features": rng.normal(size=(picks.size, dim)).astype(np.float32),
        "gtscore": rng.uniform(size=picks.size).astype(np.float32),
        "user_summary": (rng.uniform(size=(users, n_frames)) > 0.8).astype(np.float32),
        "change_points": change_points.astype(np.int32),
        "n_frame_per_seg": (change_points[:, 1] - change_points[:, 0] + 1).astype(np.int32),
        "n_frames": np.int32(n_frames),
        "picks": picks.astype(np.int32),
        "gtsummary": np.zeros(picks.size, np.float32),  # present in public files, unused
    }


def write_public_file(path, videos):
    with h5py.File(path, "w") as out:
        for key, fields in videos.items():
            group = out.create_group(key)
            for name, value in fields.items():
                group.create_dataset(name, data=value)
    return path


@pytest.fixture
def public_file(tmp_path):
    videos = {f"video_{i}": public_video(n_frames=40 + 5 * i, seed=i) for i in (1, 2, 10)}
    return write_public_file(tmp_path / "eccv16_dataset_summe_google_pool5.h5", videos), videos


# -- reading ----------------------------------------------------------------


def test_reads_the_public_schema_in_natural_order(public_file):
    path, written = public_file
    videos = sm.read_summary_file(path, expected_dim=6)
    assert list(videos) == ["video_1", "video_2", "video_10"]
    video = videos["video_2"]
    np.testing.assert_array_equal(video.features, written["video_2"]["features"])
    np.testing.assert_array_equal(video.picks, written["video_2"]["picks"])
    np.testing.assert_array_equal(video.change_points, written["video_2"]["change_points"])
    assert video.n_frames == 50 and video.n_picks == 10
    assert video.user_summary.shape == (3, 50) and video.user_scores is None
    assert sm.default_reduction(path) == "max"
    assert sm.default_reduction("eccv16_dataset_tvsum_google_pool5.h5") == "avg"


def test_writer_round_trips_through_the_reader(tmp_path):
    records = sm.synthetic_summary_records(3, seed=4, feature_dim=16, frames=(20, 30))
    path = sm.write_summary_file(records, tmp_path / "toy.h5")
    videos = sm.read_summary_file(path)
    for key, record in records.items():
        np.testing.assert_allclose(videos[key].features, record.features)
        np.testing.assert_allclose(videos[key].gtscore, record.gtscore)
        np.testing.assert_array_equal(videos[key].user_summary, record.user_summary)
        np.testing.assert_array_equal(videos[key].user_scores, record.user_scores)
        assert videos[key].n_frames == record.n_frames
    with h5py.File(path) as handle:
        assert sorted(handle["video_1"]) == sorted([*sm.REQUIRED_FIELDS, "user_scores"])
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v: v.pop("picks"), "video 'video_1' has no field 'picks'"),
        (lambda v: v.update(gtscore=np.zeros(3, np.float32)),
         r"field 'gtscore' must hold one score per pick \(8\)"),
        (lambda v: v.update(picks=v["picks"][::-1].copy()), "field 'picks' must be increasing"),
        (lambda v: v.update(user_summary=np.zeros((3, 39), np.float32)),
         r"field 'user_summary' must be \[n_users, n_frames=40\]"),
        (lambda v: v.update(change_points=np.zeros((3, 3), np.int32)),
         r"field 'change_points' must be \[n_segs, 2\]"),
        (lambda v: v.update(n_frame_per_seg=np.zeros(2, np.int32)),
         "field 'n_frame_per_seg' must have one entry per change point"),
        (lambda v: v["features"].__setitem__((0, 0), np.nan), "field 'features' holds NaN"),
        (lambda v: v.update(features=np.zeros(8, np.float32)), r"must be \[n_picks, D\]"),
        (lambda v: v.update(n_frames=np.int32(0)), "'n_frames' must be one positive integer"),
        (lambda v: v["user_summary"].__setitem__((1, 7), np.nan),
         r"field 'user_summary' holds NaN or Inf \(user 1, frame 7\)"),
        (lambda v: v["gtscore"].__setitem__(3, np.inf), "field 'gtscore' holds NaN or Inf"),
        (lambda v: v.update(user_scores=np.where(np.arange(40) == 5, np.inf, 1.0)[None].repeat(2, 0)),
         r"field 'user_scores' holds NaN or Inf \(annotator 0, frame 5\)"),
        # change_points [[0, 9], [10, 24], [25, 39]] hold 10, 15 and 15 frames
        (lambda v: v.update(n_frame_per_seg=np.array([10, 15, 14], np.int32)),
         r"field 'n_frame_per_seg' disagrees with 'change_points': segment 2 \[25, 39\] "
         r"holds 15 frames \(last - first \+ 1\) but n_frame_per_seg says 14"),
    ],
)
def test_wrong_schema_names_file_video_and_field(tmp_path, change, message):
    video = public_video()
    change(video)
    path = write_public_file(tmp_path / "bad.h5", {"video_1": video})
    with pytest.raises(ValueError, match=message) as error:
        sm.read_summary_file(path)
    assert str(path) in str(error.value)


def test_other_bad_files(tmp_path, public_file):
    with pytest.raises(ValueError, match="does not exist"):
        sm.read_summary_file(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        sm.read_summary_file(text)
    with h5py.File(tmp_path / "flat.h5", "w") as out:
        out.create_dataset("features", data=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="'features' is a dataset; expected one group per video"):
        sm.read_summary_file(tmp_path / "flat.h5")
    with pytest.raises(ValueError, match="features are 6-d but the model expects 1024-d"):
        sm.read_summary_file(public_file[0], expected_dim=1024)


def test_mixed_feature_widths_name_the_file_both_videos_and_both_widths(tmp_path):
    videos = {"video_1": public_video(dim=6), "video_2": public_video(dim=6, seed=1),
              "video_10": public_video(dim=8, seed=2)}
    path = write_public_file(tmp_path / "mixed.h5", videos)
    with pytest.raises(
        ValueError,
        match=r"mixed.h5: video 'video_10' has 8-d features but video 'video_1' has 6-d",
    ):
        sm.read_summary_file(path)


# -- splits -----------------------------------------------------------------


def test_random_splits_are_eighty_twenty_and_seeded(tmp_path):
    keys = [f"video_{i}" for i in range(1, 26)]
    splits = sm.make_splits(keys, seed=3)
    assert len(splits) == 5
    for split in splits:
        assert len(split["train_keys"]) == 20 and len(split["test_keys"]) == 5
        assert sorted(split["train_keys"] + split["test_keys"]) == sorted(keys)
    assert splits == sm.make_splits(keys, seed=3)
    assert splits != sm.make_splits(keys, seed=4)
    assert len({tuple(s["test_keys"]) for s in splits}) > 1
    path = tmp_path / "splits.json"
    sm.save_splits(splits, path)
    assert json.loads(path.read_text()) == splits
    assert sm.load_splits(path, keys) == splits


def test_public_split_files_load_and_bad_ones_are_named(tmp_path):
    keys = ["video_1", "video_2", "video_3"]
    path = tmp_path / "tvsum_splits.json"
    path.write_text(json.dumps([
        {"train_keys": ["data/tvsum.h5/video_1", "video_2"], "test_keys": ["video_3"]},
    ]))
    assert sm.load_splits(path, keys) == [{"train_keys": ["video_1", "video_2"], "test_keys": ["video_3"]}]
    with pytest.raises(ValueError, match="split 1 does not exist; valid splits are 0..0"):
        sm.select_split(sm.load_splits(path, keys), 1, str(path))
    path.write_text(json.dumps([{"train_keys": ["video_1"], "test_keys": ["video_9"]}]))
    with pytest.raises(ValueError, match="split 0 test_keys names videos not in the dataset: video_9"):
        sm.load_splits(path, keys)
    path.write_text(json.dumps({"train_keys": []}))
    with pytest.raises(ValueError, match="expected a list of"):
        sm.load_splits(path, keys)
    path.write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        sm.load_splits(path, keys)


# -- tf.data ----------------------------------------------------------------


def test_batches_are_right_padded_with_mask_and_pad_targets(public_file):
    videos = sm.read_summary_file(public_file[0])
    keys = list(videos)
    batches = list(sm.summary_dataset(videos, keys, batch_size=2))
    inputs, targets = batches[0]
    assert inputs["features"].shape == (2, 10, 6) and inputs["mask"].dtype.name == "bool"
    mask = inputs["mask"].numpy()
    np.testing.assert_array_equal(mask.sum(axis=1), [9, 10])
    assert not mask[0, 9] and mask[0, :9].all()
    np.testing.assert_allclose(targets.numpy()[0, :9], videos["video_1"].gtscore)
    assert targets.numpy()[0, 9] == PADDED_TARGET
    np.testing.assert_array_equal(inputs["features"].numpy()[0, 9], 0.0)
    assert batches[1][0]["features"].shape == (1, 18, 6)


def test_shuffled_batches_are_seeded_and_reshuffled_every_epoch():
    sequences = [np.full((3 + i, 2), i, np.float32) for i in range(8)]
    targets = [np.full(3 + i, 0.1 * i, np.float32) for i in range(8)]

    def orders(seed):
        dataset = sequence_dataset(sequences, None, targets, 8, shuffle=True, seed=seed)
        return [tuple(batch[0]["features"].numpy()[:, 0, 0].astype(int)) for batch in (
            next(iter(dataset)), next(iter(dataset)))]

    first = orders(0)
    assert first == orders(0)
    assert first[0] != first[1]
    assert sorted(first[0]) == list(range(8))


def test_sequence_dataset_checks_lengths():
    with pytest.raises(ValueError, match="sequence 1: shape"):
        sequence_dataset([np.zeros((3, 2)), np.zeros((4, 2))], None, [np.zeros(3), np.zeros(5)], 2)


# -- synthetic --------------------------------------------------------------


def test_synthetic_videos_mark_their_events():
    videos = sm.synthetic_summary_videos(6, frames=(30, 40), height=16, width=16, seed=1)
    assert videos[0]["frames"].dtype == np.uint8 and videos[0]["frames"].shape[1:] == (16, 16, 3)
    for video in videos:
        importance, frames = video["importance"], video["frames"].astype(float)
        assert 1 <= len(video["events"]) <= 3
        inside = np.zeros(len(importance), bool)
        for first, last, kind in video["events"]:
            inside[first:last + 1] = True
            assert np.allclose(importance[first:last + 1], 1.0)
            if kind == "flash":
                assert frames[first].mean() > frames[first - 1].mean() + 30
            else:  # a saturated red object appears
                red = (frames[..., 0] > 200) & (frames[..., 1] < 80)
                assert red[first].sum() > red[first - 1].sum() + 5
        assert 0.05 <= importance.min() < 0.1
        assert importance[~inside].max() < 1.0
    again = sm.synthetic_summary_videos(6, frames=(30, 40), height=16, width=16, seed=1)
    assert all(np.array_equal(a["frames"], b["frames"]) for a, b in zip(videos, again))


def test_synthetic_file_has_the_public_schema_and_learnable_features(tmp_path):
    path = sm.write_synthetic_summary_file(tmp_path / "synthetic.h5", num_videos=12, seed=2)
    videos = sm.read_summary_file(path, expected_dim=1024)
    assert len(videos) == 12
    video = videos["video_1"]
    np.testing.assert_array_equal(video.picks, np.arange(0, video.n_frames, 2))
    assert video.n_frame_per_seg.sum() == video.n_frames
    budget = int(0.15 * video.n_frames)
    assert (video.user_summary.sum(axis=1) <= budget).all() and video.user_summary.sum() > 0
    # Event frames and quiet frames have visibly different features.
    features = np.concatenate([v.features for v in videos.values()])
    scores = np.concatenate([v.gtscore for v in videos.values()])
    hot, cold = features[scores > 0.9].mean(axis=0), features[scores < 0.1].mean(axis=0)
    assert np.abs(hot - cold).mean() > 0.1
