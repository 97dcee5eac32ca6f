"""The PyTorch twins of `benchmarks.torch_twin`: their parameter counts
against the Keras models, and the runner without PyTorch. No timings are
asserted. PyTorch is not a project requirement, so the twin tests skip
without it; the runner's skip line is checked everywhere."""

import numpy as np
import pytest

import models
from benchmarks import torch_twin

# Every family at its tiny preset, and the keyframe model's frames mode on
# EfficientNet-B0 (the twin's only frame backbone) at a small frame size.
TINY_CASES = [
    ("convlstm", "tiny", {}),
    ("convlstm", "tiny_3_layers", {}),
    ("bilstm_attention", "tiny", {}),
    ("keyframe_transformer", "tiny", {}),
    ("keyframe_transformer", "tiny_frames",
     {"backbone": "efficientnet_b0", "input_shape": (2, 32, 32, 3)}),
    ("r2plus1d", "tiny", {}),
    ("r2plus1d_perceiver", "tiny", {}),
]


def test_without_torch_the_runner_prints_one_line_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(torch_twin, "torch_available", lambda: False)
    assert torch_twin.main(["--models", "convlstm"]) == 0
    assert capsys.readouterr().out.strip() == torch_twin.TORCH_MISSING


@pytest.mark.parametrize("name, preset, overrides", TINY_CASES)
def test_each_twin_has_the_keras_models_parameters(name, preset, overrides):
    torch = pytest.importorskip("torch")
    config = models.get_config(name, preset=preset, **overrides)
    keras_model = models.build_from_config(name, config)
    inputs, targets = models.get_family(name).example_batch(config, 2, seed=0)
    twin = torch_twin.build_twin(name, config, inputs, targets)
    total, trainable = torch_twin.torch_parameter_counts(twin.model)
    difference, _ = twin.difference
    assert total - keras_model.count_params() == difference
    keras_trainable = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    if name == "bilstm_attention":  # the extra LSTM biases train
        keras_trainable += difference
    assert trainable == keras_trainable
    # One train step runs and gives a finite loss.
    twin.model.train()
    assert torch.isfinite(torch_twin.twin_train_step(twin))


def test_the_lstm_bias_difference_is_what_the_twin_states():
    pytest.importorskip("torch")
    config = models.get_config("bilstm_attention", preset="tiny")
    inputs, targets = models.get_family("bilstm_attention").example_batch(config, 2, seed=0)
    twin = torch_twin.build_twin("bilstm_attention", config, inputs, targets)
    lstm_biases = sum(p.numel() for n, p in twin.model.lstm.named_parameters()
                      if n.startswith("bias_hh"))
    assert twin.difference[0] == lstm_biases
