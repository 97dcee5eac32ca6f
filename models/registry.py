"""The model registry: one `Family` record per public model name."""

import dataclasses
import types
from typing import Any, Callable

from common.registry import Registry
from models.capabilities import parameter_count


@dataclasses.dataclass(frozen=True)
class Stage:
    """One phase of training, for models trained in several phases.

    Args:
        name: a short name, used in logs and in `history.csv`.
        epochs: epochs of this stage.
        optimizer: a fresh Keras optimizer for this stage.
        prepare: optional `model -> None` run before the stage compiles,
            e.g. to unfreeze the last blocks of a backbone.
    """

    name: str
    epochs: int
    optimizer: Any
    prepare: Callable | None = None


@dataclasses.dataclass(frozen=True)
class TrainingSpec:
    """What `model.compile` and the callbacks need, from the design notes.

    Args:
        optimizer: a Keras optimizer instance.
        loss: a Keras loss instance (or name).
        metrics: metrics to compile with.
        monitor: the history key that picks the best checkpoint and drives
            early stopping, e.g. `"val_auc"`.
        monitor_mode: `"max"` or `"min"`.
        stages: the training phases; empty means one stage of
            `config.epochs` epochs with `optimizer`.
    """

    optimizer: Any
    loss: Any
    metrics: list
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    stages: tuple = ()


@dataclasses.dataclass(frozen=True)
class Family:
    """Everything the rest of the suite needs to know about one model name.

    Args:
        name: the public name, e.g. `"convlstm"`.
        config: the default config instance (the design notes' values).
        build: `config -> keras.Model`.
        training: `(config, steps_per_epoch) -> TrainingSpec`.
        example_batch: `(config, batch_size, seed) -> (inputs, targets)`,
            random data of the model's input and target structure, for
            tests, benchmarks and smoke checks.
        serving_outputs: `(model, outputs) -> dict` naming the outputs of
            the exported `serving_default` signature; the default names the
            model's single output after its output layer.
        presets: named configurations as data, `{name: {field: value}}`,
            in the spirit of keras-hub presets. Conventional names:
            `"tiny"` (and `"tiny_*"` variants) for the shared contract
            test, `"benchmark"` for the benchmark report (its `batch_size`
            is the report's batch), `"demo"` for the embedded synthetic
            data. Every preset must give a valid config.

    Capabilities (see `models.capabilities`; code outside `models/` asks
    for these instead of naming a model):

        explanation: `model -> AttentionCurve | AttentionMap |
            GradCamTarget`, what `--explain` shows; None: no explanation.
        streaming: the family's `Streaming` form, or None.
        export_refusals: `{format name: why}`, formats the family does not
            export to.
        size_metrics: `model -> {name: number}` for the tuner's table
            (default: the parameter count).
        latency: the latency benchmark's `LatencyCase`, or None.
        benchmark_presets: the presets the benchmark report times.
        speedup_baseline: config fields that bring back the implementation
            before the family's speed-ups, for before/after timings.
        benchmark_xla_update: whether the benchmark report also times the
            step with the optimizer's update compiled by XLA (`python -m
            benchmarks --measure-update` times it for every family).
        ablation: an architecture `Ablation` grid, or None.
    """

    name: str
    config: Any
    build: Callable
    training: Callable
    example_batch: Callable
    serving_outputs: Callable | None = None
    presets: dict = dataclasses.field(default_factory=dict)
    explanation: Callable | None = None
    streaming: Any = None
    export_refusals: dict = dataclasses.field(default_factory=dict)
    size_metrics: Callable = parameter_count
    latency: Any = None
    benchmark_presets: tuple = ("benchmark",)
    speedup_baseline: dict = dataclasses.field(default_factory=dict)
    benchmark_xla_update: bool = False
    ablation: Any = None

    def __post_init__(self):
        # Read-only, so a caller cannot change a preset for everybody.
        frozen = {name: types.MappingProxyType(dict(fields)) for name, fields in self.presets.items()}
        object.__setattr__(self, "presets", types.MappingProxyType(frozen))
        object.__setattr__(self, "export_refusals", types.MappingProxyType(dict(self.export_refusals)))
        object.__setattr__(self, "speedup_baseline", types.MappingProxyType(dict(self.speedup_baseline)))

    @property
    def input_kind(self):
        """The kind of data the family eats (its config's `input_kind`),
        which names its task."""
        return type(self.config).input_kind

    def explain(self, model):
        """What `--explain` shows for `model` (see `models.capabilities`).

        Raises:
            ValueError: the family, or this configuration of it, has
                nothing to explain; the message says why.
        """
        if self.explanation is None:
            raise ValueError(f"--explain: model {self.name!r} has no explanation")
        return self.explanation(model)

    def check_export(self, format_name):
        """Raises ValueError saying why the family does not export to
        `format_name`; returns `format_name` otherwise."""
        if format_name in self.export_refusals:
            raise ValueError(
                f"{self.name} does not export to {format_name}: {self.export_refusals[format_name]}"
            )
        return format_name

    def preset(self, name):
        """The fields of preset `name`.

        Raises:
            ValueError: no such preset; the message lists the family's.
        """
        if name not in self.presets:
            raise ValueError(
                f"model {self.name!r} has no preset {name!r}; its presets are: "
                f"{', '.join(self.presets) or 'none'}"
            )
        return dict(self.presets[name])

    def get_config(self, preset=None, **overrides):
        """The default config, then preset `preset`, then `overrides`, validated."""
        fields = self.preset(preset) if preset is not None else {}
        return self.config.with_overrides(**{**fields, **overrides})

    def name_outputs(self, model, outputs):
        if self.serving_outputs is not None:
            return self.serving_outputs(model, outputs)
        if isinstance(outputs, dict):
            return dict(outputs)
        return {model.output_names[0]: outputs}


_FAMILIES = Registry("model", "name", "unknown model {name!r}; valid names are: {known}")
register = _FAMILIES.register
unregister = _FAMILIES.unregister
names = _FAMILIES.names


def get_family(name: str) -> Family:
    """The registered family `name`; ValueError listing the names otherwise."""
    return _FAMILIES.get(name)
