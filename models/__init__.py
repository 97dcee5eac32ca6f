"""Video models, built with the Keras functional API.

Public API:

    models.NAMES                                    # the model names registered at import
    models.names()                                  # every registered name, also later ones
    models.build(name, preset=None, **overrides)    # -> keras.Model
    models.get_config(name, preset=None, **overrides)
    models.presets(name)                            # {preset name: fields}
    models.get_family(name)                         # config, builder, training, presets

A preset is a named configuration kept as data beside its family (see
`models.registry.Family`); `overrides` apply on top of it.

Example:

>>> import models
>>> model = models.build("convlstm", input_shape=(8, 32, 32, 1))
>>> model.output_shape
(None, 1)
>>> models.get_config("convlstm", preset="tiny").input_shape
(4, 12, 12, 2)
"""

from models.registry import Family, Stage, TrainingSpec, get_family, names, register, unregister

# Importing a family module registers its names.
from models import convlstm  # noqa: E402,F401
from models import bilstm_attention  # noqa: E402,F401
from models import r2plus1d  # noqa: E402,F401
from models import keyframe_transformer  # noqa: E402,F401

NAMES = names()


def get_config(name: str, preset: str | None = None, **overrides):
    """The family's default config, then its preset `preset`, then
    `overrides`, validated.

    Raises:
        ValueError: unknown model name, preset, field or invalid value; the
            message lists the valid choices.
    """
    return get_family(name).get_config(preset, **overrides)


def build(name: str, preset: str | None = None, **overrides):
    """Builds the model `name` from its defaults, preset and overrides.

    Raises:
        ValueError: unknown model name, preset, field or invalid value; the
            message lists the valid choices.
    """
    return build_from_config(name, get_config(name, preset, **overrides))


def presets(name: str):
    """`{preset name: {field: value}}` of the model `name`."""
    return {key: dict(value) for key, value in get_family(name).presets.items()}


def build_from_config(name: str, config):
    return get_family(name).build(config)


__all__ = [
    "NAMES",
    "Family",
    "Stage",
    "TrainingSpec",
    "build",
    "build_from_config",
    "get_config",
    "get_family",
    "names",
    "presets",
    "register",
    "unregister",
]
