"""`python -m train.export` in every format: layout, report, gates, bad input."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from tests.cli_calls import call
from train import export, formats, run

# One worker runs the module: its module-scoped runs are built once.
pytestmark = pytest.mark.xdist_group("test_export_cli")

FLAGS = [
    "--model", "convlstm", "--synthetic-clips", "16", "--input-shape", "4,16,16,3",
    "--filters", "2,3", "--batch-size", "4", "--learning-rate", "0.01", "--verbose", "0",
]
# The synthetic set of 16 training clips holds out 16 // 3 = 5 test and
# 16 // 4 = 4 validation clips.
HELD_OUT = {"test": 5, "val": 4}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "convlstm")
    assert run.main(FLAGS + ["--epochs", "6", "--run-eagerly", "--out", out]) == 0
    return out


def copy_run(run_folder, to, **record_changes):
    """A copy of a run folder whose config.json has `record_changes`
    (dotted keys reach into mappings)."""
    os.makedirs(to)
    for name in ("config.json", "class_names.json", "best.keras"):
        shutil.copy(os.path.join(run_folder, name), to)
    record = json.load(open(os.path.join(to, "config.json")))
    for key, value in record_changes.items():
        *parents, leaf = key.split(".")
        target = record
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    json.dump(record, open(os.path.join(to, "config.json"), "w"))
    return str(to)


def leftovers(folder):
    """Hidden staging folders anywhere under `folder`."""
    return [
        os.path.join(root, name)
        for root, names, files in os.walk(folder) for name in names + files
        if name.startswith(".tmp")
    ]


def report_of(folder):
    return json.load(open(os.path.join(folder, export.REPORT_NAME)))


@pytest.mark.slow
def test_litert_lands_beside_the_saved_model_versions(trained_run, tmp_path, capsys):
    # (ONNX takes the same path; the contract test converts every model to it.)
    base = str(tmp_path / "saved_models")
    for format_name, file_name in (("litert", "model.tflite"),):
        code, out, err = call(export.main, ["--run", trained_run, "--out", base,
                                            "--format", format_name], capsys)
        assert code == 0, err
        target = os.path.join(base, "convlstm", format_name, "1")
        assert sorted(os.listdir(target)) == [export.REPORT_NAME, file_name]
        assert f"exported {os.path.join(target, file_name)}" in out
        report = report_of(target)
        assert report["format"] == format_name and report["version"] == 1
        assert report["gate"]["passed"] and report["gate"]["threshold"] == 1e-4
        assert report["gate"]["value"] <= 1e-4
        assert report["checked_on"] == {"source": "the run's held-out data", **HELD_OUT}
        assert report["examples"] == sum(HELD_OUT.values())
        assert report["signature"]["inputs"]["frames"][0] == [None, 4, 16, 16, 3]
        assert report["bytes"] == os.path.getsize(os.path.join(target, file_name))
    # TF Serving's base path holds no numeric folder but SavedModel versions.
    assert sorted(os.listdir(os.path.join(base, "convlstm"))) == ["litert"]
    assert export.next_version(os.path.join(base, "convlstm")) == 1
    assert leftovers(base) == []

    # Versions are immutable.
    tflite = os.path.join(base, "convlstm", "litert", "1", "model.tflite")
    stamp = os.path.getmtime(tflite)
    code, _, err = call(export.main, ["--run", trained_run, "--out", base, "--format", "litert",
                                      "--version", "1"], capsys)
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    assert os.path.getmtime(tflite) == stamp


@pytest.mark.slow
def test_int8_is_calibrated_on_the_runs_training_clips(trained_run, tmp_path, capsys):
    base = str(tmp_path / "saved_models")
    code, out, err = call(export.main, ["--run", trained_run, "--out", base,
                                        "--format", "litert-int8"], capsys)
    assert code == 0, err
    report = report_of(os.path.join(base, "convlstm", "litert-int8", "1"))
    assert report["calibration"] == {"source": "the run's training data", "examples": 16}
    assert report["gate"]["metric"] == "top1_agreement"
    assert report["gate"]["value"] >= 0.99 and report["gate"]["passed"]
    assert report["examples"] == sum(HELD_OUT.values())
    assert report["flipped_examples_float_margins"] == []


def test_unknown_format_is_one_line(trained_run, capsys):
    code, _, err = call(export.main, ["--run", trained_run, "--format", "tflite"], capsys)
    assert code == 2 and "invalid choice: 'tflite'" in err and err.count("\n") == 1
    with pytest.raises(ValueError, match="formats are: saved_model, litert, litert-int8, onnx"):
        export.export_run(trained_run, format_name="tflite")


def test_int8_without_the_training_data_is_refused(trained_run, tmp_path, capsys):
    moved = str(tmp_path / "videos-moved-away")
    copy = copy_run(trained_run, tmp_path / "run", **{"data_options.data": moved})
    base = str(tmp_path / "saved_models")
    code, _, err = call(export.main, ["--run", copy, "--out", base, "--format", "litert-int8"],
                        capsys)
    assert code == 2 and err.count("\n") == 1
    assert "training data cannot be rebuilt for int8 calibration" in err and moved in err
    assert not os.path.exists(os.path.join(base, "convlstm", "litert-int8", "1"))
    assert leftovers(base) == []


@pytest.mark.slow
def test_a_float_export_without_the_data_is_checked_on_random_inputs(trained_run, tmp_path,
                                                                      capsys):
    copy = copy_run(trained_run, tmp_path / "run", **{"data_options.data": str(tmp_path / "gone")})
    base = str(tmp_path / "saved_models")
    code, out, err = call(export.main, ["--run", copy, "--out", base], capsys)
    assert code == 0, err
    report = report_of(os.path.join(base, "convlstm", "1"))
    assert report["checked_on"]["source"].startswith("random inputs of the model's shapes")
    assert "gone" in report["checked_on"]["source"] and report["gate"]["passed"]


def test_an_unsupported_pair_is_refused_before_any_work(trained_run, tmp_path, capsys):
    copy = copy_run(trained_run, tmp_path / "run", model="keyframe_transformer")
    code, _, err = call(export.main, ["--run", copy, "--format", "litert-int8",
                                      "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "keyframe_transformer does not export to litert-int8: " in err
    assert not os.path.exists(tmp_path / "out")


def test_a_failed_gate_leaves_nothing_behind(trained_run, tmp_path, capsys, monkeypatch):
    class Drifting(formats.Runner):
        """An export whose probabilities are 1e-3 off Keras'."""

        def __init__(self, model):
            self.model = model

        def run(self, inputs):
            return {"probabilities": np.asarray(self.model(inputs)) + 1e-3}

        def signature(self):
            return {}, {}

    model = keras.saving.load_model(os.path.join(trained_run, "best.keras"))

    def write(model_, name, folder, calibration=None, source=None):
        path = os.path.join(folder, "model.tflite")
        open(path, "wb").close()
        return formats.Written(path, [], None)

    litert = formats.get_format("litert")
    monkeypatch.setattr(litert, "write", write)
    monkeypatch.setattr(litert, "load_runner", lambda *args: Drifting(model))
    base = str(tmp_path / "saved_models")
    code, _, err = call(export.main, ["--run", trained_run, "--out", base, "--format", "litert"],
                        capsys)
    assert code == 2 and err.count("\n") == 1
    assert "litert export of" in err and "refused: max_abs_diff[probabilities] 0.001 > 0.0001" in err
    assert os.listdir(os.path.join(base, "convlstm", "litert")) == []


@pytest.mark.slow
def test_streaming_litert_export(trained_run, tmp_path, capsys):
    base = str(tmp_path / "saved_models")
    code, out, err = call(export.main, ["--run", trained_run, "--out", base, "--streaming",
                                        "--format", "litert"], capsys)
    assert code == 0, err
    target = os.path.join(base, "convlstm_stream", "litert", "1")
    report = report_of(target)
    assert report["streaming"] and report["gate"]["passed"]
    assert report["examples"] == sum(HELD_OUT.values())
    assert set(report["max_abs_diff"]) == {
        "probabilities_per_frame_vs_keras_step", "probabilities_last_frame_vs_clip_model"}
    assert sorted(report["signature"]["inputs"]) == ["c_1", "c_2", "frame", "h_1", "h_2"]
    assert report["max_abs_diff"]["probabilities_last_frame_vs_clip_model"] <= 1e-5

    code, _, err = call(export.main, ["--run", trained_run, "--out", base, "--streaming",
                                      "--format", "onnx"], capsys)
    assert code == 2 and "--streaming exports saved_model or litert, not onnx" in err


def test_streaming_a_model_without_a_streaming_form_is_refused(trained_run, tmp_path, capsys):
    copy = copy_run(trained_run, tmp_path / "run", model="r2plus1d")
    code, _, err = call(export.main, ["--run", copy, "--streaming"], capsys)
    assert code == 2 and "a r2plus1d run has no frame-by-frame form" in err and err.count("\n") == 1


def test_saved_model_versions_ignore_the_other_formats_folders(tmp_path):
    for name in ("1", "3", "litert", "onnx", ".tmp-4-x"):
        os.makedirs(tmp_path / "convlstm" / name)
    assert export.next_version(str(tmp_path / "convlstm")) == 4
    assert export.base_folder("out", "convlstm", "onnx") == os.path.join("out", "convlstm", "onnx")
    assert export.base_folder("out", "convlstm", streaming=True) == os.path.join("out", "convlstm_stream")
