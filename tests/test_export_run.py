"""train.export --run for every model, and the refusal of an export that
does not reproduce its model."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from tests.cli_calls import call
from tests.prediction_fixtures import make_run
from train import export


# One model per task: the contract test exports every model to every
# format, so these add the --run path only (clips: test_train_cli exports
# its convlstm run the same way).
@pytest.mark.slow  # a SavedModel written and reloaded per model
@pytest.mark.parametrize("name", ["bilstm_attention", "keyframe_transformer"])
def test_export_cli_writes_a_saved_model_that_serves_like_the_run(name, tmp_path, capsys):
    run = make_run(tmp_path / "run", name, data={"data": "synthetic"})
    if name == "bilstm_attention":
        # The embedded feature set is wider than the tiny preset's input:
        # record a feature file that is gone, so the export is checked on
        # random inputs of the model's shapes (and says so).
        path = os.path.join(run, "config.json")
        record = json.load(open(path))
        record["data_options"] = {"features": str(tmp_path / "gone.h5")}
        json.dump(record, open(path, "w"))
    base = tmp_path / "saved_models"
    code, out, err = call(export.main, ["--run", run, "--out", str(base)], capsys)
    assert code == 0, err
    target = base / name / "1"
    assert out.startswith(f"exported {target}\n")
    assert sorted(os.listdir(base / name)) == ["1"]  # no staging folder left

    model = keras.saving.load_model(os.path.join(run, "best.keras"))
    config = models.get_config(name, preset="tiny")
    inputs, _ = models.get_family(name).example_batch(config, 3, seed=1)
    serve = tf.saved_model.load(str(target)).signatures["serving_default"]
    assert sorted(serve.structured_input_signature[1]) == sorted(inputs)
    served = serve(**{key: tf.constant(value) for key, value in inputs.items()})
    outputs = model(inputs, training=False)
    outputs = outputs if isinstance(outputs, dict) else {model.output_names[0]: outputs}
    for key, value in outputs.items():
        np.testing.assert_allclose(served[key].numpy(), np.asarray(value), atol=1e-5,
                                   err_msg=f"{name} {key}")


def test_an_export_that_differs_from_keras_is_refused_and_its_staging_removed(
        tmp_path, monkeypatch):
    from train import formats

    run = make_run(tmp_path / "run", "convlstm", data={"data": "synthetic"})
    saved_model = formats.get_format("saved_model")
    written = saved_model.write

    def export_then_change_the_model(model, *args, **kwargs):
        result = written(model, *args, **kwargs)
        # The SavedModel keeps the weights it wrote; Keras now computes
        # something else, as a wrong export would.
        for variable in model.trainable_variables:
            variable.assign(variable + 0.5)
        return result

    monkeypatch.setattr(saved_model, "write", export_then_change_the_model)
    base = tmp_path / "saved_models"
    with pytest.raises(export.ExportRefused, match="saved_model export of .* refused: max_abs_diff"):
        export.export_run(run, out_root=str(base))
    assert os.listdir(base / "convlstm") == []  # neither version 1 nor a staging folder
