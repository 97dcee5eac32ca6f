"""What a model family can do beyond training, declared next to its builder.

Code outside `models/` asks a family (`models.get_family(name)`) instead of
naming a model:

- `explanation(model)`: what `--explain` shows, one of `AttentionCurve`
  (a weight per step, computed by the model's own attention layer),
  `AttentionMap` (a heat map per token frame) or `GradCamTarget` (the
  feature map Grad-CAM weighs); it raises `ValueError` saying why when a
  configuration of the family has nothing to explain.
- `streaming`: a `Streaming` form (one frame in, the probabilities so far
  out) for families that read their frames in order.
- `export_refusals`: `{format name: why}` for formats whose gate the
  family does not pass, refused before any work.
- `size_metrics(model)`: the numbers the tuner's results table shows for
  a trial (parameter counts).
- `latency`: the `LatencyCase` of the latency benchmark.
- `benchmark_presets`, `speedup_baseline`: the rows of the benchmark
  report, and the config fields that bring back the implementation before
  the family's speed-ups (the report times both, interleaved).
- `benchmark_xla_update`: whether the report's rows also time the step
  with the optimizer's update compiled by XLA (for families whose profiles
  show the per-variable update ops).
- `ablation`: an `Ablation` grid that `tuning.search --grid` searches.

Example:

>>> import models
>>> family = models.get_family("r2plus1d_perceiver")
>>> family.ablation.label((8, 1, 6)), family.ablation.resolve((8, 0, 0))[0]
('8+1+6', 'r2plus1d')
>>> models.get_family("convlstm").streaming is not None
True
"""

import dataclasses
import math
from typing import Any, Callable

import keras


@dataclasses.dataclass(frozen=True)
class AttentionCurve:
    """An explanation that is a weight per step.

    Args:
        method: what the weights are, in words.
        weights: `inputs -> [B, T]` weights, summing to 1 over the real steps.
    """

    method: str
    weights: Callable
    kind = "curve"


@dataclasses.dataclass(frozen=True)
class AttentionMap:
    """An explanation that is a heat map per token frame.

    Args:
        method: what the maps are, in words.
        maps: `inputs -> [B, T', H', W']` non-negative maps.
    """

    method: str
    maps: Callable
    kind = "heatmap"


@dataclasses.dataclass(frozen=True)
class GradCamTarget:
    """Grad-CAM of the predicted class on a feature map of the model.

    Args:
        features: the symbolic feature map [B, T', H', W', C] of the model.
        where: the map, in words ("the backbone's last feature map").
        output_layer: the `Dense` layer whose logits are explained; its
            input is the pooled feature map.
    """

    features: Any
    where: str
    output_layer: str = "probabilities"
    kind = "heatmap"


@dataclasses.dataclass(frozen=True)
class Streaming:
    """The frame-by-frame form of a clip model.

    Args:
        step_model: `(model, config) -> keras.Model` holding the clip
            model's weights: `frame` and the states in, `probabilities` and
            the new states (named as the inputs) out.
        state_shapes: `config -> {state name: shape without batch}`.
    """

    step_model: Callable
    state_shapes: Callable

    def zero_states(self, config, batch_size):
        import numpy as np

        return {name: np.zeros((batch_size, *shape), np.float32)
                for name, shape in self.state_shapes(config).items()}


@dataclasses.dataclass(frozen=True)
class LatencyCase:
    """How the latency benchmark runs a family.

    Args:
        preset: the preset of config fields it builds.
        frames: frames sampled from the video; None samples 2 per second.
        backbone: the per-frame backbone of a model over features, or None.
        split: for a model that holds its backbone, `(model, config) ->
            (backbone, head)`: an images -> features model and the model on
            features, sharing the model's weights.
    """

    preset: str = "benchmark"
    frames: int | None = None
    backbone: str | None = None
    split: Callable | None = None


@dataclasses.dataclass(frozen=True)
class Ablation:
    """An architecture grid searched as one categorical hyperparameter.

    Args:
        fields: the grid's config fields, in the order a row names them.
        rows: named row lists, e.g. `{"seed-ablation": ((8, 0, 0), ...)}`.
        full_grid: `{field: values}` whose product `--grid full` searches.
        resolve: `row -> (model name, config fields)`.
        label: `row -> str` (e.g. "8+1+6").
        defaults: the values of a field a grid file leaves out.
        skip: `row -> bool`, combinations a cartesian grid leaves out.
    """

    fields: tuple
    rows: dict
    full_grid: dict
    resolve: Callable
    label: Callable
    defaults: dict = dataclasses.field(default_factory=dict)
    skip: Callable = lambda row: False


def count_params(model, trainable_only=False):
    """The model's parameter count (only its trainable ones when asked)."""
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(math.prod(w.shape) for w in weights))


def parameter_count(model):
    """The default size metrics: `{"params": all parameters}`."""
    return {"params": count_params(model)}


def first_input(layer):
    """The tensor a layer was called on (its first argument)."""
    value = layer.input
    return value[0] if isinstance(value, (list, tuple)) else value


def sub_model(model, layer_name):
    """(layer, model from the model's inputs to the tensor the layer reads)."""
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise ValueError(f"the model has no layer {layer_name!r} to explain with") from None
    return layer, keras.Model(model.input, first_input(layer))
