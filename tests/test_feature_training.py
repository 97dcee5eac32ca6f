"""Training and evaluating feature-sequence models from HDF5 feature files."""

import json
import os

import h5py
import numpy as np
import pytest

from data.features import FeatureWriter, read_feature_file
from tests.cli_calls import call
from data.synthetic_features import BlockMeanExtractor, synthetic_settings
from train import evaluate, run
from train.tasks.base import split_rows
from train.tasks.features import FeatureOptions, FeatureTask

# One worker runs the module: its module-scoped runs are built once.
pytestmark = pytest.mark.xdist_group("test_feature_training")

CLASSES = ("jump", "run", "walk")
DIM, STEPS = 6, 5
# A tiny model; the fixed input length keeps Keras to one traced graph.
TINY_FLAGS = [
    "--model", "bilstm_attention", "--projection-dim", "8", "--lstm-layers", "1",
    "--lstm-units", "4", "--attention-heads", "2", "--attention-key-dim", "4",
    "--pooling-dim", "4", "--classifier-units", "8,6,4", "--verbose", "0",
]
FIXED = ["--input-shape", f"{STEPS},{DIM}", "--batch-size", "6"]


def write_features(path, labels, dim=DIM, steps=STEPS, seed=0, classes=CLASSES,
                   backbone="tiny_backbone", lengths=None, splits=None, edit=None):
    """A feature file written by the extractor's own writer.

    Row i has class-dependent gaussian features, `lengths[i]` real frames
    (default 2..steps), and the split `splits[i]`; `edit(i, row)` may change
    a row before it is written.
    """
    rng = np.random.default_rng(seed)
    settings = {
        "backbone": backbone, "weights": "none", "frames": steps, "size": [32, 32],
        "multi_scale": False, "steps": steps,
    }
    writer = FeatureWriter(path, settings, classes, dim, log=lambda line: None)
    writer.open()
    for i, label in enumerate(labels):
        length = lengths[i] if lengths is not None else 2 + i % (steps - 1)
        row = rng.normal(label, 0.5, size=(length, dim)).astype("float32")
        if edit is not None:
            row = edit(i, row)
        writer.append(row, label, f"/videos/{seed}/{i}.mp4", splits[i] if splits else None)
    writer.finish()
    return str(path)


def probabilities_by_hand(run_folder, path, rows=None):
    """Softmax of a run's best model over rows of a feature file, padded to
    STEPS with masks built from num_frames, without the tf.data pipeline."""
    import keras

    model = keras.saving.load_model(os.path.join(run_folder, "best.keras"))
    data = read_feature_file(path)
    rows = np.arange(data.num_videos) if rows is None else np.asarray(rows)
    features = np.zeros((len(rows), STEPS, DIM), "float32")
    features[:, : data.max_frames] = data.features[rows]
    mask = np.arange(STEPS)[None, :] < data.num_frames[rows, None]
    logits = np.asarray(model({"features": features, "mask": mask}, training=False))
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True), data.labels[rows]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    return {
        "train": write_features(folder / "train.h5", [0, 1, 2] * 5, seed=1),
        "val": write_features(folder / "val.h5", [0, 1, 2] * 2, seed=2),
        "test": write_features(folder / "test.h5", [0, 1, 2] * 2, seed=3),
        "test2": write_features(folder / "test2.h5", [2, 1, 0, 0, 1, 2], seed=4),
        "folder": folder,
    }


@pytest.fixture(scope="module")
def ensemble(files, tmp_path_factory):
    """Two members trained on train.h5 (validation held out of it), tested
    on test.h5."""
    out = str(tmp_path_factory.mktemp("runs") / "ensemble")
    argv = TINY_FLAGS + FIXED + [
        "--features", files["train"], "--test-features", files["test"],
        "--epochs", "1", "--ensemble", "2", "--run-eagerly", "--out", out,
    ]
    assert run.main(argv) == 0
    return out


def test_ensemble_of_two_trains_records_its_data_and_reports(ensemble, files):
    members = [os.path.join(ensemble, f"member_{k}") for k in range(2)]
    records = [json.load(open(os.path.join(m, "config.json"))) for m in members]
    assert [r["seed"] for r in records] == [0, 1]
    for member, record in zip(members, records):
        assert os.path.exists(os.path.join(member, "best.keras"))
        data = record["data"]
        assert data["feature_dim"] == DIM and data["backbone"] == "tiny_backbone"
        assert data["features"] == os.path.abspath(files["train"])
        assert data["test_features"] == os.path.abspath(files["test"])
        assert data["max_frames"] == STEPS and data["class_names"] == list(CLASSES)
        # 15 training rows, 5 per class: one of each class held out.
        assert data["rows"] == {"train": 12, "val": 3, "test": 6}
        assert record["config"]["input_shape"] == [STEPS, DIM]
        assert record["config"]["num_classes"] == 3
    # Both members hold out the same rows: the split follows --seed, not the member.
    assert records[0]["data"]["data_seed"] == records[1]["data"]["data_seed"] == 0

    report = json.load(open(os.path.join(ensemble, "test_report.json")))
    assert os.path.exists(os.path.join(ensemble, "test_confusion_matrix.png"))
    assert report["runs"] == members and report["split"] == "test"
    first, labels = probabilities_by_hand(members[0], files["test"])
    second, _ = probabilities_by_hand(members[1], files["test"])
    predicted = ((first + second) / 2).argmax(-1)
    assert report["summary"]["accuracy"] == pytest.approx(float((predicted == labels).mean()))
    metrics = json.load(open(os.path.join(ensemble, "metrics.json")))
    assert metrics["test_accuracy"] == report["summary"]["accuracy"]


def test_evaluate_averages_the_members_on_another_test_file(ensemble, files, tmp_path, capsys,
                                                           monkeypatch):
    from train.tasks import classification

    reported = []
    original = classification.classification_report

    def classification_report(probabilities, *args, **kwargs):
        reported.append(np.asarray(probabilities))
        return original(probabilities, *args, **kwargs)

    monkeypatch.setattr(classification, "classification_report", classification_report)
    members = [os.path.join(ensemble, f"member_{k}") for k in range(2)]
    out = str(tmp_path / "report")
    code, stdout, err = call(
        evaluate.main, ["--runs", *members, "--test-features", files["test2"], "--out", out], capsys
    )
    assert code == 0, err
    # The report is made of the members' mean class probabilities.
    first, labels = probabilities_by_hand(members[0], files["test2"])
    second, _ = probabilities_by_hand(members[1], files["test2"])
    np.testing.assert_allclose(reported[0], (first + second) / 2, atol=1e-5)
    assert np.abs(first - second).max() > 1e-3  # one member alone would differ
    # Named by the evaluated file; a second evaluation gets its own report.
    report = json.load(open(os.path.join(out, "evaluate_test_test2_report.json")))
    assert os.path.exists(os.path.join(out, "evaluate_test_test2_confusion_matrix.png"))
    code, _, err = call(
        evaluate.main, ["--runs", *members, "--test-features", files["test2"], "--out", out], capsys
    )
    assert code == 0, err
    assert json.load(open(os.path.join(out, "evaluate_test_test2-2_report.json"))) == report
    assert json.load(open(os.path.join(out, "evaluate_test_test2_report.json"))) == report

    predicted = ((first + second) / 2).argmax(-1)
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (labels, predicted), 1)
    assert report["confusion_matrix"] == confusion.tolist()
    assert report["summary"]["accuracy"] == pytest.approx(float((predicted == labels).mean()))
    recall = np.diag(confusion) / confusion.sum(1)
    assert report["per_class"]["jump"]["recall"] == pytest.approx(recall[0])
    assert set(report["per_class"]) == set(CLASSES)
    assert "macro_f1" in report["summary"]


def test_evaluate_rebuilds_the_held_out_validation_rows(ensemble, files, tmp_path, capsys):
    member = os.path.join(ensemble, "member_1")
    out = str(tmp_path / "val")
    code, _, err = call(evaluate.main, ["--runs", member, "--subset", "val", "--out", out], capsys)
    assert code == 0, err
    report = json.load(open(os.path.join(out, "evaluate_val_report.json")))
    labels = read_feature_file(files["train"]).labels.tolist()
    held = split_rows(None, labels, 0.15, 0)["val"]
    probabilities, truth = probabilities_by_hand(member, files["train"], held)
    predicted = probabilities.argmax(-1)
    assert report["summary"]["examples"] == 3
    assert report["summary"]["accuracy"] == pytest.approx(float((predicted == truth).mean()))


def test_another_feature_dimension_is_refused_naming_both(ensemble, files, tmp_path, capsys):
    wide = write_features(tmp_path / "wide.h5", [0, 1, 2], dim=7, seed=5)
    member = os.path.join(ensemble, "member_0")
    code, _, err = call(evaluate.main, ["--runs", member, "--test-features", wide], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert wide in err and "feature_dim 7" in err and "expects 6" in err

    out = str(tmp_path / "run")
    flags = TINY_FLAGS + ["--input-shape", "none,8", "--features", files["train"], "--out", out]
    code, _, err = call(run.main, flags, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "--input-shape none,8" in err and "none,6" in err
    assert os.path.abspath(files["train"]) in err
    assert not os.path.exists(os.path.join(out, "best.keras"))

    # Validation features of another dimension than the training file's.
    flags = TINY_FLAGS + ["--features", files["train"], "--val-features", wide, "--out", out]
    code, _, err = call(run.main, flags, capsys)
    assert code == 2 and "feature_dim 7" in err and "expects 6" in err


def test_resuming_a_run_with_features_of_another_dimension_names_both(ensemble, files, tmp_path, capsys):
    import shutil

    out = str(tmp_path / "interrupted")
    os.makedirs(out)
    shutil.copy(os.path.join(ensemble, "member_0", "config.json"), out)
    wide = write_features(tmp_path / "wide.h5", [0, 1, 2] * 5, dim=7, seed=1)
    flags = TINY_FLAGS + [
        "--batch-size", "6", "--epochs", "1", "--features", wide, "--out", out,
    ]
    code, _, err = call(run.main, flags, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "different config (input_shape: recorded [5, 6], now [None, 7])" in err, err


def test_longer_sequences_than_trained_on_are_refused(ensemble, tmp_path, capsys):
    long = write_features(tmp_path / "long.h5", [0, 1, 2], steps=8, lengths=[3, 8, 2], seed=6)
    member = os.path.join(ensemble, "member_0")
    code, _, err = call(evaluate.main, ["--runs", member, "--test-features", long], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{long}: row 1 has 8 frames, longer than the 5" in err


def test_other_classes_or_backbone_are_refused(files, tmp_path, capsys):
    out = str(tmp_path / "run")
    other = write_features(tmp_path / "other.h5", [0, 1], classes=("a", "b"), seed=7)
    code, _, err = call(
        run.main, TINY_FLAGS + ["--features", files["train"], "--val-features", other, "--out", out],
        capsys,
    )
    assert code == 2 and f"{other}: classes ['a', 'b'] differ" in err, err
    resnet = write_features(tmp_path / "resnet.h5", [0, 1, 2], backbone="resnet50", seed=8)
    code, _, err = call(
        run.main, TINY_FLAGS + ["--features", files["train"], "--test-features", resnet, "--out", out],
        capsys,
    )
    assert code == 2 and "backbone 'resnet50'" in err and "'tiny_backbone'" in err, err


def write_empty_file(path):
    """A file of the design notes' schema with no rows."""
    with h5py.File(path, "w") as file:
        file.create_dataset("features", shape=(0, STEPS, DIM), dtype="float32")
        file.create_dataset("labels", shape=(0,), dtype="int64")
        file.create_dataset("num_frames", shape=(0,), dtype="int32")
        file.attrs.update(
            num_videos=0, max_frames=STEPS, feature_dim=DIM, multi_scale=True,
            category_mapping=json.dumps({name: i for i, name in enumerate(CLASSES)}),
        )
    return str(path)


def with_nan(i, row):
    if i == 2:
        row[1, 3] = np.nan
    return row


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda p: write_features(p, [0, 1, 2, 0], edit=with_nan), [], "features row 2 (/videos/0/2.mp4) contains NaN or Inf"),
        (lambda p: write_features(p, [0, 5, 2]), [], "labels row 1 is 5, outside the 3 classes"),
        (lambda p: write_features(p, [0, 1, 2]), ["--num-classes", "2"], "--num-classes 2 but"),
        (lambda p: write_features(p, [0, 1, 2], lengths=[2, 3, 0]), [], "num_frames row 2 is 0, expected 1.."),
        (write_empty_file, [], "contains no sequences"),
    ],
    ids=["nan", "label-outside-classes", "num-classes", "no-real-frame", "empty"],
)
def test_bad_feature_files_end_in_one_line(make, extra, message, tmp_path, capsys):
    path = make(str(tmp_path / "bad.h5"))
    out = str(tmp_path / "run")
    code, _, err = call(run.main, TINY_FLAGS + extra + ["--features", path, "--out", out], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and path in err and message in err, err
    assert not os.path.exists(os.path.join(out, "best.keras"))


def test_missing_file_and_bad_flags(files, tmp_path, capsys):
    out = str(tmp_path / "run")
    for flags, message in [
        (["--features", str(tmp_path / "nope.h5")], "--features"),
        (["--features", files["train"], "--test-features", str(tmp_path / "no.h5")], "--test-features"),
        (["--features", files["train"], "--val-fraction", "1.5"], "--val-fraction must be in (0, 1)"),
        (["--features", files["train"], "--frame-dropout", "1"], "--frame-dropout must be in [0, 1)"),
    ]:
        code, _, err = call(run.main, TINY_FLAGS + flags + ["--out", out], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_files_marking_splits_and_a_validation_file(files, tmp_path):
    import models

    config = models.get_family("bilstm_attention").config
    splits = ["train"] * 6 + ["val"] * 2 + ["test"] * 3 + ["unused"]
    marked = write_features(tmp_path / "marked.h5", [0, 1, 2] * 4, splits=splits, seed=9)
    bundle = FeatureTask().load(FeatureOptions(features=marked), config, seed=0)
    assert bundle.info["rows"] == {"train": 6, "val": 2, "test": 3}
    assert bundle.config_updates == {"input_shape": (None, DIM), "num_classes": 3}
    assert bundle.train_labels.tolist() == [0, 1, 2, 0, 1, 2]
    batch, labels = next(iter(bundle.test))
    assert labels.numpy().tolist() == [2, 0, 1]
    np.testing.assert_array_equal(batch["mask"].numpy().sum(1), [2, 3, 4])

    # A validation file replaces the marked validation rows; no rows are carved.
    options = FeatureOptions(features=files["train"], val_features=files["val"])
    bundle = FeatureTask().load(options, config, seed=0)
    assert bundle.info["rows"] == {"train": 15, "val": 6, "test": 0}
    assert bundle.test is None
    assert bundle.info["augmentation"] == {
        "crop_min_fraction": 0.8, "frame_dropout": 0.1, "noise_std": 0.05,
    }

    # Evaluating a run that had no test data says what to pass.
    trained = config.with_overrides(input_shape=(None, DIM), num_classes=3)
    record = {"model": "bilstm_attention", "seed": 0, "config": trained.to_dict(),
              "data": dict(bundle.info, data_seed=0)}
    with pytest.raises(ValueError, match="the run has no test data; pass --test-features FILE"):
        FeatureTask().load_split(options, record, "test")
    fallback = FeatureTask().load_split(options, record, None)
    assert fallback.test is None and fallback.info["rows"] == 6 and fallback.info["split"] == "val"


def test_split_rows_carves_a_seeded_stratified_share():
    labels = [0] * 10 + [1] * 6 + [2]
    rows = split_rows(None, labels, 0.2, seed=3)
    held = [labels[i] for i in rows["val"]]
    assert sorted(held) == [0, 0, 1]  # round(10 * .2), round(6 * .2); a lone class stays
    assert sorted(rows["train"] + rows["val"]) == list(range(17)) and rows["test"] == []
    assert rows == split_rows(None, labels, 0.2, seed=3)
    assert rows != split_rows(None, labels, 0.2, seed=4)
    marked = split_rows(["train", "test", "", "unused", "train"], [0, 1, 0, 1, 1], 0.5, 0, carve=False)
    assert marked == {"train": [0, 2, 4], "val": [], "test": [1]}


def test_block_mean_extractor_locates_the_bright_block():
    extractor = BlockMeanExtractor((48, 64), (6, 8))
    frames = np.full((2, 48, 64, 3), 60, np.uint8)
    frames[0, 8:16, 24:32] = 220  # block (1, 3)
    frames[1, 40:48, 56:64] = 220  # block (5, 7)
    features = extractor.frame_features(frames).reshape(2, 6, 8, 3)
    assert features.shape == (2, 6, 8, 3) and extractor.feature_dim == 144
    assert np.unravel_index(features[0, ..., 0].argmax(), (6, 8)) == (1, 3)
    assert np.unravel_index(features[1, ..., 2].argmax(), (6, 8)) == (5, 7)
    # Standardised per frame: a brighter background changes nothing, a flat frame is zero.
    brighter = extractor.frame_features(frames + 20).reshape(2, 6, 8, 3)
    np.testing.assert_allclose(brighter, features, atol=1e-5)
    np.testing.assert_array_equal(extractor.frame_features(np.full((1, 48, 64, 3), 90, np.uint8)), 0)


def test_synthetic_default_extracts_once_into_the_cache(tmp_path, capsys):
    import models

    cache = str(tmp_path / "cache")
    config = models.get_config("bilstm_attention", preset="demo")
    options = FeatureOptions(synthetic_clips=6, feature_cache=cache)
    bundle = FeatureTask().load(options, config, seed=0)
    assert "extracting features of the embedded synthetic videos" in capsys.readouterr().err
    data = bundle.info
    assert data["backbone"] == "block_mean_6x8" and data["feature_dim"] == 144
    assert data["rows"] == {"train": 6, "val": 2, "test": 2}
    assert data["max_frames"] == 18  # 16 frames, scales 1.0 / 0.85 / 1.15
    assert bundle.config_updates == {"input_shape": (None, 144), "num_classes": 4}
    inputs, labels = next(iter(bundle.train))
    assert inputs["features"].shape[0] == 6 and inputs["features"].shape[2] == 144

    path = data["synthetic"]["cache"]
    assert os.path.dirname(path) == os.path.abspath(cache)
    assert [n for n in os.listdir(cache) if n.endswith(".h5")] == [os.path.basename(path)]
    stored = read_feature_file(path)
    assert stored.splits.count("test") == 2 and all(os.path.exists(s) for s in stored.sources)
    assert stored.class_names == ("horizontal", "vertical", "diagonal", "anti_diagonal")

    # A second use reads the cache; other settings get another file.
    stamp = os.path.getmtime(path)
    again = FeatureTask().load(options, config, seed=0)
    assert "extracting" not in capsys.readouterr().err
    assert again.info["synthetic"]["cache"] == path and os.path.getmtime(path) == stamp
    assert synthetic_settings(192, "shape", 4, 0) != synthetic_settings(192, "motion", 4, 0)

    # Evaluation rebuilds the test rows from the same cache.
    trained = config.with_overrides(input_shape=(None, 144))
    record = {"model": "bilstm_attention", "seed": 0, "config": trained.to_dict(), "data": data}
    evaluation = FeatureTask().load_split(options, record, None)
    assert evaluation.train is None and evaluation.val is None
    _, labels = next(iter(evaluation.test))
    np.testing.assert_array_equal(labels.numpy(), stored.labels[np.array(stored.splits) == "test"])


def test_embedded_data_takes_the_demo_preset_beneath_the_users_fields(capsys):
    from train import tasks
    from train.tasks.base import options_from_args

    args = run.parse_args(["--model", "bilstm_attention", "--lstm-units", "16", "--epochs", "3"])
    task = tasks.task_for("bilstm_attention")
    config, preset, user = run.resolve_config(args, task, options_from_args(task.Options, args))
    assert preset == "demo" and set(user) == {"lstm_units", "epochs"}
    assert config.lstm_units == 16 and config.epochs == 3  # the user's
    assert config.batch_size == 32 and config.lstm_layers == 2  # the demo preset's
    assert "preset 'demo' of bilstm_attention" in capsys.readouterr().err

    # With the user's own data, the family's defaults (the design notes').
    args = run.parse_args(["--model", "bilstm_attention", "--features", "train.h5"])
    config, preset, _ = run.resolve_config(args, task, options_from_args(task.Options, args))
    assert preset is None and config.lstm_units == 768 and config.batch_size == 48


def test_two_makers_of_the_same_cache_wait_for_one_another(tmp_path, capsys):
    import threading

    from data import synthetic_features

    settings = synthetic_features.synthetic_settings(2, "motion", 2, data_seed=0)
    cache = str(tmp_path / "cache")
    results, errors = [], []

    def make():
        try:
            results.append(synthetic_features.synthetic_feature_file(settings, cache)[0])
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=make) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    # Made once: the second maker found the first one's file.
    assert capsys.readouterr().err.count("extracting features of the embedded") == 1
    assert read_feature_file(results[0]).splits.count("train") == 2
