"""The extension points are real: a model family and an export format that
exist only in this file go through every command.

`toy_clip` (a one-Conv3D clip classifier with its presets and capabilities)
trains through `train.run`, is evaluated, predicts on a written video (a
timeline), explains itself, exports to saved_model, litert and onnx through
their gates, runs a tuner trial and is listed by the latency benchmark;
`keras` (the `.keras` file with a reload check) is a format `train.export`
writes and the contract's export check passes. No project file names
either: they are registered here and removed afterwards.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import yaml

import models
from benchmarks import latency
from models.capabilities import GradCamTarget, LatencyCase
from models.config import ModelConfig, check_input_rank
from models.convlstm import classifier_training_spec, clip_example_batch
from tests.cli_calls import call
from tests.model_contract import check_export_contract
from tests.prediction_fixtures import write_scene_video
from train import evaluate, export, formats, predict, run
from train.formats.base import ExportFormat, Runner, Written
from train.formats.matrix import trained_tiny
from tuning import search

NAME = "toy_clip"


@dataclasses.dataclass(frozen=True)
class ToyClipConfig(ModelConfig):
    """A toy clip classifier.

    Args:
        filters: channels of its one Conv3D layer.
    """

    filters: int = 4

    def validate(self):
        super().validate()
        check_input_rank(self, 4, "(T, H, W, C)")


def build_toy_clip(config):
    frames = keras.Input(config.input_shape, name="frames")
    features = keras.layers.Conv3D(config.filters, 3, padding="same", activation="relu",
                                   name="features")(frames)
    pooled = keras.layers.GlobalAveragePooling3D(name="pool")(features)
    outputs = keras.layers.Dense(max(config.num_classes, 2), activation="softmax",
                                 name="probabilities")(pooled)
    return keras.Model({"frames": frames}, outputs, name=NAME)


def toy_training(config, steps_per_epoch):
    return classifier_training_spec(keras.optimizers.Adam(config.learning_rate),
                                    max(config.num_classes, 2))


def toy_explanation(model):
    return GradCamTarget(model.get_layer("pool").input, "its only feature map")


FAMILY = models.Family(
    name=NAME,
    config=ToyClipConfig(input_shape=(4, 16, 16, 3), num_classes=2, batch_size=4, epochs=1,
                         learning_rate=1e-2),
    build=build_toy_clip,
    training=toy_training,
    example_batch=clip_example_batch,
    presets={
        "tiny": dict(input_shape=(4, 16, 16, 3)),
        "demo": dict(input_shape=(4, 16, 16, 3)),
        "latency": dict(input_shape=(4, 32, 32, 3)),
    },
    explanation=toy_explanation,
    latency=LatencyCase(preset="latency", frames=4),
)


class KerasRunner(Runner):
    def __init__(self, path):
        self.model = keras.saving.load_model(path)

    def run(self, inputs):
        return {"probabilities": np.asarray(self.model(inputs, training=False))}

    def signature(self):
        inputs = {key: (list(t.shape), t.dtype) for key, t in self.model.input.items()}
        return inputs, {"probabilities": (list(self.model.output.shape), self.model.output.dtype)}


class KerasFileFormat(ExportFormat):
    """The `.keras` file itself, checked by reloading it."""

    name = "keras"
    runtime = "keras"
    file_name = "model.keras"

    def write(self, model, model_name, folder, calibration=None, source=None):
        model.save(self.path_in(folder))
        return Written(self.path_in(folder), [], None)

    def load_runner(self, folder, threads=None):
        return KerasRunner(self.path_in(folder))


@pytest.fixture(scope="module")
def registered():
    models.register(FAMILY)
    formats.register(KerasFileFormat())
    try:
        yield
    finally:
        models.unregister(NAME)
        formats.unregister("keras")


@pytest.fixture(scope="module")
def trained_run(registered, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("toy") / "run")
    assert run.main(["--model", NAME, "--out", out, "--synthetic-clips", "8", "--epochs", "1",
                     "--run-eagerly", "--verbose", "0", "--seed", "1"]) == 0
    return out


pytestmark = pytest.mark.xdist_group("extension-points")


@pytest.mark.slow
def test_a_family_from_a_test_file_goes_through_every_command(trained_run, tmp_path, capsys):
    capsys.readouterr()
    with open(os.path.join(trained_run, "config.json")) as file:
        record = json.load(file)
    assert record["model"] == NAME and record["preset"] == "demo"
    assert os.path.exists(os.path.join(trained_run, "best.keras"))

    code, out, err = call(evaluate.main, ["--runs", trained_run, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert json.loads(out[:out.rindex("}") + 1])["examples"] > 0

    video = str(tmp_path / "scenes.mp4")
    write_scene_video(video, seconds=3.0, scenes=2, size=(48, 64))
    code, out, err = call(predict.main, ["--run", trained_run, "--video", video, "--out",
                                         str(tmp_path / "predictions"), "--window", "1",
                                         "--stride", "1", "--explain"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == NAME and len(result["timeline"]) == 3
    assert result["explanation"]["kind"] == "heatmap"
    assert "its only feature map" in result["explanation"]["method"]
    assert os.path.exists(result["files"]["explanation_strip"])

    for format_name in ("saved_model", "litert", "onnx", "keras"):
        code, out, err = call(export.main, ["--run", trained_run, "--format", format_name,
                                            "--out", str(tmp_path / "exports")], capsys)
        assert code == 0, (format_name, err)
        assert "passed" in out
    report_path = tmp_path / "exports" / NAME / "keras" / "1" / export.REPORT_NAME
    with open(report_path) as file:
        assert json.load(file)["runtime"] == "keras"

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"filters": [2]}))
    code, out, err = call(search.main, ["--model", NAME, "--space", str(space), "--max-trials",
                                        "1", "--epochs", "1", "--synthetic-clips", "4",
                                        "--run-eagerly", "--verbose", "0",
                                        "--out", str(tmp_path / "search")], capsys)
    assert code == 0, err
    header = (tmp_path / "search" / "results.md").read_text().splitlines()[0]
    assert "| params |" in header  # the family's size metrics

    assert NAME in latency.cases()
    model, config, parts = latency.build(NAME, latency.cases()[NAME])
    assert parts is None and config.input_shape == (4, 32, 32, 3)


@pytest.mark.slow
def test_a_format_from_a_test_file_passes_the_export_contract(registered, tmp_path):
    assert "keras" in formats.names() and "keras" in formats.supported_formats(NAME)
    model, config, fit = trained_tiny(NAME)
    check_export_contract(model, NAME, config, fit, "keras", str(tmp_path))
