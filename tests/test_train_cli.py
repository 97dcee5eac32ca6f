"""train.run, train.evaluate and train.export from the command line."""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.cli_calls import call
from train import evaluate, export, run

# One worker runs the module: its module-scoped runs are built once.
pytestmark = pytest.mark.xdist_group("test_train_cli")

# Eagerly: a few steps of a tiny model start sooner without tracing (the
# graph path is trained by test_resume and test_model_contract).
TINY_FLAGS = [
    "--model", "convlstm", "--synthetic-clips", "8", "--input-shape", "4,16,16,1",
    "--filters", "2,3", "--batch-size", "4", "--learning-rate", "8e-5", "--verbose", "0",
    "--run-eagerly",
]


# What `Model.fit` was given while the module's run trained.
FIT_CLASS_WEIGHTS = []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    import keras

    out = str(tmp_path_factory.mktemp("runs") / "convlstm-tiny")
    original = keras.Model.fit

    def fit(self, *args, **kwargs):
        FIT_CLASS_WEIGHTS.append(kwargs.get("class_weight"))
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "fit", fit)
        # 7 clips: 4 of class 0 and 3 of class 1 train.
        assert run.main(TINY_FLAGS + ["--synthetic-clips", "7", "--epochs", "2", "--out", out]) == 0
    return out


def test_convlstm_trains_with_balanced_class_weights(finished_run):
    # "balanced" is convlstm's default: n / (classes * count) = 7 / 8 and 7 / 6.
    record = json.load(open(os.path.join(finished_run, "config.json")))
    assert record["config"]["class_weight"] == "balanced"
    assert FIT_CLASS_WEIGHTS == [pytest.approx({0: 7 / 8, 1: 7 / 6})]


def test_run_writes_the_run_folder(finished_run):
    names = set(os.listdir(finished_run))
    assert {
        "config.json", "class_names.json", "best.keras", "last.keras", "history.csv",
        "metrics.json", "logs", "test_report.json", "test_confusion_matrix.png",
    } <= names
    record = json.load(open(os.path.join(finished_run, "config.json")))
    assert record["model"] == "convlstm"
    assert record["config"]["input_shape"] == [4, 16, 16, 1]
    assert record["config"]["filters"] == [2, 3]
    assert record["distribute"]["run_eagerly"] is True and record["distribute"]["jit_compile"] is False
    assert record["distribute"]["xla_update"] is False
    rows = list(csv.DictReader(open(os.path.join(finished_run, "history.csv"))))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"val_loss", "val_binary_crossentropy", "val_auc"} <= set(rows[0])
    metrics = json.load(open(os.path.join(finished_run, "metrics.json")))
    assert metrics["monitor"] == "val_loss"  # the notes keep the lowest validation loss
    assert metrics["test_examples"] == 2
    assert json.load(open(os.path.join(finished_run, "class_names.json"))) == ["horizontal", "vertical"]


def hand_test_metrics(finished_run):
    """Accuracy, AUC and confusion of best.keras on the run's test clips,
    counted here from the model's outputs."""
    import keras

    import models
    from train import tasks
    from train.tasks.clips import ClipOptions

    record = json.load(open(os.path.join(finished_run, "config.json")))
    config = models.get_config("convlstm", **record["config"])
    bundle = tasks.get_task("clips").load(
        ClipOptions(synthetic_clips=7), config, record["seed"], split_seed=record["seed"])
    model = keras.saving.load_model(os.path.join(finished_run, "best.keras"))
    scores, labels = [], []
    for inputs, targets in bundle.test:
        scores.extend(np.asarray(model(inputs, training=False)).reshape(-1).tolist())
        labels.extend(np.asarray(targets).reshape(-1).astype(int).tolist())
    positives = [s for s, y in zip(scores, labels) if y == 1]
    negatives = [s for s, y in zip(scores, labels) if y == 0]
    pairs = [(p > n) + 0.5 * (p == n) for p in positives for n in negatives]
    predicted = [int(s > 0.5) for s in scores]
    confusion = [[sum(1 for y, q in zip(labels, predicted) if (y, q) == (t, c)) for c in (0, 1)]
                 for t in (0, 1)]
    return {
        "accuracy": sum(q == y for q, y in zip(predicted, labels)) / len(labels),
        "auc": sum(pairs) / len(pairs) if pairs else float("nan"),
        "confusion": confusion,
    }


def assert_is_a_drawn_png(path):
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 100
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10  # not blank


def test_evaluate_reproduces_the_runs_test_metrics(finished_run, capsys):
    code, out, _ = call(evaluate.main, ["--runs", finished_run], capsys)
    assert code == 0
    expected = hand_test_metrics(finished_run)
    metrics = json.load(open(os.path.join(finished_run, "metrics.json")))
    report = json.load(open(os.path.join(finished_run, "evaluate_test_report.json")))
    for summary in (report["summary"], {"accuracy": metrics["test_accuracy"],
                                        "auc": metrics["test_auc"]}):
        assert summary["accuracy"] == pytest.approx(expected["accuracy"])
        assert summary["auc"] == pytest.approx(expected["auc"], nan_ok=True)
    assert report["confusion_matrix"] == expected["confusion"]
    assert_is_a_drawn_png(os.path.join(finished_run, "evaluate_test_confusion_matrix.png"))
    assert_is_a_drawn_png(os.path.join(finished_run, "test_confusion_matrix.png"))


def test_evaluate_with_views(finished_run, tmp_path, capsys):
    def report_of(views):
        argv = ["--runs", finished_run, "--views", views, "--out", str(tmp_path)]
        code, out, _ = call(evaluate.main, argv, capsys)
        assert code == 0, out
        return out.rsplit("report: ", 1)[1].strip()

    path = report_of("2x3")
    assert os.path.basename(path) == "evaluate_test_views2x3_report.json"
    report = json.load(open(path))
    assert report["views"]["setting"] == "2x3" and report["summary"]["examples"] == 2
    assert os.path.basename(report_of("2x3")) == "evaluate_test_views2x3-2_report.json"

    # 1x1 is single-view testing: the run's own test numbers.
    one = json.load(open(report_of("1x1")))
    metrics = json.load(open(os.path.join(finished_run, "metrics.json")))
    assert one["views"]["setting"] == "1x1"
    assert one["summary"]["auc"] == pytest.approx(metrics["test_auc"])

    err = one_line_error(evaluate.main, ["--runs", finished_run, "--views", "2x2"], capsys)
    assert "--views 2x2: expected CLIPSxCROPS" in err


def test_export_writes_a_versioned_saved_model_and_refuses_to_overwrite(finished_run, tmp_path, capsys):
    base = str(tmp_path / "saved_models")
    code, out, _ = call(export.main, ["--run", finished_run, "--out", base], capsys)
    assert code == 0, out
    target = os.path.join(base, "convlstm", "1")
    assert os.path.exists(os.path.join(target, "saved_model.pb"))
    serve = tf.saved_model.load(target).signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["frames"]
    assert list(serve.structured_outputs) == ["probabilities"]

    import keras

    model = keras.saving.load_model(os.path.join(finished_run, "best.keras"))
    frames = np.random.default_rng(0).uniform(size=(3, 4, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(
        serve(frames=tf.constant(frames))["probabilities"].numpy(),
        model({"frames": frames}).numpy(), atol=1e-5,
    )

    stamp = os.path.getmtime(os.path.join(target, "saved_model.pb"))
    code, _, err = call(export.main, ["--run", finished_run, "--out", base, "--version", "1"], capsys)
    assert code == 2
    assert "already exists" in err and err.count("\n") == 1
    assert os.path.getmtime(os.path.join(target, "saved_model.pb")) == stamp
    code, _, _ = call(export.main, ["--run", finished_run, "--out", base], capsys)
    assert code == 0 and os.path.isdir(os.path.join(base, "convlstm", "2"))


def test_a_finished_run_is_not_overwritten(finished_run, capsys):
    before = os.path.getmtime(os.path.join(finished_run, "best.keras"))
    code, _, err = call(run.main, TINY_FLAGS + ["--epochs", "2", "--out", finished_run], capsys)
    assert code == 2 and "finished run" in err
    assert os.path.getmtime(os.path.join(finished_run, "best.keras")) == before


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--filters=-3,2"], "filters must be > 0"),
        (["--input-shape", "4,16,16"], "input_shape must have rank 4"),
        (["--dropout", "1.5"], "dropout must be in [0, 1)"),
        (["--batch-size", "four"], "field 'batch_size' expects int"),
        (["--data", "/nonexistent/videos"], "--data /nonexistent/videos: no such file"),
        (["--run-eagerly", "--jit-compile", "on"], "--run-eagerly traces no graph for XLA"),
    ],
)
def test_bad_values_end_in_one_line(flags, message, tmp_path, capsys):
    out = str(tmp_path / "run")
    code, _, err = call(run.main, TINY_FLAGS + flags + ["--out", out], capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1, err
    assert not os.path.exists(os.path.join(out, "best.keras"))


def test_unknown_model_lists_the_valid_names(capsys):
    code, _, err = call(run.main, ["--model", "convlsmt"], capsys)
    assert code == 2
    assert "invalid choice: 'convlsmt'" in err and "convlstm" in err
    assert err.count("\n") == 1


def test_yaml_with_unknown_keys(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text("filters: [4, 8]\nlearning_rte: 0.1\n")
    code, _, err = call(run.main, TINY_FLAGS + ["--config", str(path), "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert "unknown key(s) learning_rte" in err and "learning_rate" in err


def test_yaml_values_apply_and_flags_win(tmp_path):
    from train.engine.config import user_overrides
    import models

    path = tmp_path / "config.yaml"
    path.write_text("filters: [4, 8]\nlearning_rate: 0.01\n")
    family = models.get_family("convlstm")
    user = user_overrides(family.config, str(path), {"learning_rate": "0.5"})
    assert user == {"filters": [4, 8], "learning_rate": "0.5"}
    config = family.get_config("demo", **user)
    assert config.filters == (4, 8) and config.learning_rate == 0.5
    assert config.input_shape == (16, 48, 64, 4)


def test_out_holding_another_models_run_is_refused(tmp_path, capsys):
    out = tmp_path / "other"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"model": "bilstm_attention"}))
    code, _, err = call(run.main, TINY_FLAGS + ["--out", str(out)], capsys)
    assert code == 2 and "holds a run of model 'bilstm_attention'" in err
    assert json.load(open(out / "config.json")) == {"model": "bilstm_attention"}


def test_run_trains_from_a_video_folder(tmp_path):
    from tests.video_files import write_class_tree

    root = tmp_path / "videos"
    write_class_tree(
        str(root),
        {"jump": [f"j{i}.avi" for i in range(5)], "run": [f"r{i}.mp4" for i in range(5)],
         "wave": [f"w{i}.avi" for i in range(5)]},
        num_frames=9, size=(20, 26),
    )
    out = str(tmp_path / "run")
    flags = [
        "--model", "convlstm", "--data", str(root), "--input-shape", "4,16,16,4",
        "--filters", "2,3", "--batch-size", "4", "--epochs", "1", "--verbose", "0",
        "--out", out, "--val-fraction", "0.2", "--run-eagerly",
    ]
    assert run.main(flags) == 0
    record = json.load(open(os.path.join(out, "config.json")))
    # Frames and size from the config, channels and classes from the videos.
    assert record["config"]["input_shape"] == [4, 16, 16, 3]
    assert record["config"]["num_classes"] == 3
    assert record["data"]["videos"] == {"train": 12, "val": 3, "test": 0}
    assert json.load(open(os.path.join(out, "class_names.json"))) == ["jump", "run", "wave"]
    # No test split: the validation videos are evaluated, and named so.
    assert not os.path.exists(os.path.join(out, "test_report.json"))
    report = json.load(open(os.path.join(out, "val_report.json")))
    assert report["summary"]["examples"] == 3 and report["split"] == "val"
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["val_examples"] == 3 and not any(k.startswith("test_") for k in metrics)


def broken_copy(finished_run, folder, config=None, best=None):
    """A copy of the run with config.json and/or best.keras replaced."""
    import shutil

    shutil.copytree(finished_run, folder)
    if config is not None:
        (folder / "config.json").write_text(config)
    if best is not None:
        (folder / "best.keras").write_bytes(best)
    return str(folder)


def one_line_error(main, argv, capsys):
    code, _, err = call(main, argv, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_a_broken_run_folder_is_named_in_one_line(finished_run, tmp_path, capsys):
    from tests.video_files import write_video
    from train import predict

    video = write_video(tmp_path / "v.mp4", num_frames=8)
    cases = [
        ("[1, 2]", "config.json: expected a JSON mapping with a 'model' name"),
        ('{"seed": 0}', "config.json: expected a JSON mapping with a 'model' name"),
        ('{"model": ', "config.json: not a valid JSON run config"),
    ]
    for index, (config, expected) in enumerate(cases):
        folder = broken_copy(finished_run, tmp_path / f"config{index}", config=config)
        for main, argv in (
            (evaluate.main, ["--runs", folder]),
            (export.main, ["--run", folder, "--out", str(tmp_path / "exports")]),
            (predict.main, ["--run", folder, "--video", video]),
        ):
            err = one_line_error(main, argv, capsys)
            assert os.path.join(folder, expected) in err, (main.__module__, err)

    data = open(os.path.join(finished_run, "best.keras"), "rb").read()
    folder = broken_copy(finished_run, tmp_path / "truncated", best=data[: len(data) // 2])
    err = one_line_error(evaluate.main, ["--runs", folder], capsys)
    assert os.path.join(folder, "best.keras") + ": cannot be loaded as a Keras model" in err


def test_a_lambda_layer_checkpoint_is_refused_naming_the_file(finished_run, tmp_path, capsys):
    import keras

    inputs = keras.Input((4, 16, 16, 1), name="frames")
    model = keras.Model({"frames": inputs}, keras.layers.Lambda(lambda x: x[:, 0, 0, 0])(inputs))
    folder = broken_copy(finished_run, tmp_path / "lambda")
    model.save(os.path.join(folder, "best.keras"))
    err = one_line_error(evaluate.main, ["--runs", folder], capsys)
    assert os.path.join(folder, "best.keras") + ": cannot be loaded" in err
    assert "Lambda" in err


def test_out_that_is_a_file_and_a_cache_in_a_missing_folder(tmp_path, capsys):
    from tests.video_files import write_class_tree

    out = tmp_path / "taken"
    out.write_text("not a folder")
    err = one_line_error(run.main, TINY_FLAGS + ["--epochs", "1", "--out", str(out)], capsys)
    assert f"--out {out} is a file; expected a run folder" in err

    root = tmp_path / "videos"
    write_class_tree(str(root), {"a": ["1.mp4", "2.mp4"], "b": ["3.mp4", "4.mp4"]}, num_frames=6)
    run_dir = tmp_path / "cached"
    err = one_line_error(run.main, TINY_FLAGS + [
        "--data", str(root), "--cache", str(tmp_path / "nowhere" / "clips"), "--epochs", "1",
        "--out", str(run_dir)], capsys)
    assert "--cache" in err and "nowhere" in err and "does not exist" in err
    assert not run_dir.exists()


def test_on_error_fail_names_the_undecodable_video_in_one_line(tmp_path, capsys):
    from tests.video_files import write_class_tree, write_text_file

    root = tmp_path / "videos"
    write_class_tree(str(root), {"a": ["1.mp4", "2.mp4", "3.mp4"], "b": ["4.mp4", "5.mp4"]},
                     num_frames=6)
    bad = write_text_file(root / "b" / "6.mp4")
    err = one_line_error(run.main, TINY_FLAGS + [
        "--data", str(root), "--on-error", "fail", "--epochs", "1", "--val-fraction", "0.3",
        "--out", str(tmp_path / "run")], capsys)
    assert f"{bad}: cannot be opened as a video" in err


def test_an_ensemble_of_runs_with_other_classes_is_refused(finished_run, tmp_path, capsys):
    other = broken_copy(finished_run, tmp_path / "other")
    (tmp_path / "other" / "class_names.json").write_text(json.dumps(["0", "1"]))
    err = one_line_error(evaluate.main, ["--runs", finished_run, other], capsys)
    assert "classes ['0', '1']" in err and "['horizontal', 'vertical']" in err
    assert not os.path.exists(os.path.join(finished_run, "evaluate_test-2_report.json"))
