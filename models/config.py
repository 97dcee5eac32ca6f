"""Config dataclasses shared by every model family.

A family's config is a frozen dataclass whose defaults are the design
notes' values. It holds both the architecture and the training defaults
(optimizer, batch size, epochs), so one object describes a run and one
mechanism (`with_overrides`) applies YAML files and command-line flags.
"""

import dataclasses
import types
import typing
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Fields every family has.

    Args:
        input_shape: shape of one example without the batch axis.
        num_classes: number of classes (1 means one sigmoid output).
        batch_size: training batch size.
        epochs: maximum number of training epochs.
        learning_rate: peak learning rate of the optimizer.
        patience: early-stopping patience in epochs.
    """

    # Which data the model eats: "clips" ([T, H, W, C] frames with a label),
    # "features" (HDF5 feature sequences with a label) or "frame_scores"
    # (feature sequences with a per-frame importance target).
    input_kind: ClassVar[str] = "clips"

    input_shape: tuple = ()
    num_classes: int = 1
    batch_size: int = 4
    epochs: int = 10
    learning_rate: float = 1e-3
    patience: int = 5

    @property
    def reads_frames(self):
        """Whether the model reads video frames (`frames`) rather than
        per-frame features (`features`); tasks of both kinds ask this."""
        return self.input_kind == "clips"

    @classmethod
    def field_names(cls):
        return [f.name for f in dataclasses.fields(cls)]

    def with_overrides(self, **overrides):
        """Returns a validated copy with `overrides` applied.

        Values may be strings (from the command line) or YAML scalars and
        lists; they are converted to each field's declared type.

        Raises:
            ValueError: an unknown key (the message lists the valid ones),
                a value that does not convert, or an invalid combination.
        """
        config = self.converted(**overrides)
        config.validate()
        return config

    def converted(self, **overrides):
        """A copy with `overrides` converted to the fields' types but not
        validated: part of a configuration, to read before the rest arrives.

        Raises:
            ValueError: an unknown key or a value that does not convert.
        """
        valid = self.field_names()
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown field(s) {', '.join(unknown)}; "
                f"valid fields are: {', '.join(valid)}"
            )
        hints = typing.get_type_hints(type(self))
        converted = {
            key: _convert(key, value, hints[key]) for key, value in overrides.items()
        }
        return dataclasses.replace(self, **converted)

    def to_dict(self):
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    def validate(self):
        """Raises ValueError naming the field when a value is out of range."""
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(
                f"num_classes must be an integer >= 1, got {self.num_classes!r}"
            )
        check_positive(self, "batch_size", "epochs", "patience")
        if not self.learning_rate > 0:
            raise ValueError(
                f"learning_rate must be > 0, got {self.learning_rate!r}"
            )


def check_positive(config, *names):
    for name in names:
        value = getattr(config, name)
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(
            not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0
            for v in values
        ):
            raise ValueError(f"{name} must be > 0, got {value!r}")


def check_rate(config, *names):
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def check_input_rank(config, rank, layout):
    shape = config.input_shape
    if len(shape) != rank or any(
        d is not None and (not isinstance(d, int) or d <= 0) for d in shape
    ):
        raise ValueError(
            f"input_shape must have rank {rank} {layout} with positive sizes, "
            f"got {shape!r}"
        )


def _convert(key, value, hint):
    """Converts a CLI string or YAML value to the field's declared type."""
    origin = typing.get_origin(hint)
    try:
        if origin is tuple or hint is tuple:
            if isinstance(value, str):
                value = [v for v in value.replace("x", ",").split(",") if v.strip()]
            args = [a for a in typing.get_args(hint) if a is not Ellipsis]
            item_type = args[0] if args else int
            return tuple(_scalar(v, item_type) for v in value)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
                return None
            return _scalar(value, args[0])
        return _scalar(value, hint)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"field {key!r} expects {getattr(hint, '__name__', hint)}, got {value!r}"
        ) from error


def _scalar(value: Any, kind):
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError("not an integer")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("not an integer")
        return int(value)
    if kind is float:
        return float(value)
    if kind is str:
        return str(value)
    return value
