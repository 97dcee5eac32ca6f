"""Video models, built with the Keras functional API.

Public API:

    models.NAMES                       # the registered model names
    models.build(name, **overrides)    # -> keras.Model
    models.get_config(name, **overrides)
    models.get_family(name)            # config, builder, training defaults

Example:

    >>> import models
    >>> model = models.build("convlstm", input_shape=(8, 32, 32, 1))
    >>> model.output_shape
    (None, 1)
"""

from models.registry import Family, Stage, TrainingSpec, get_family, names, register

# Importing a family module registers its names.
from models import convlstm  # noqa: E402,F401
from models import bilstm_attention  # noqa: E402,F401
from models import r2plus1d  # noqa: E402,F401
from models import keyframe_transformer  # noqa: E402,F401

NAMES = names()


def get_config(name: str, **overrides):
    """The family's default config with `overrides` applied and validated.

    Raises:
        ValueError: unknown model name, unknown field or invalid value.
    """
    return get_family(name).config.with_overrides(**overrides)


def build(name: str, **overrides):
    """Builds the model `name` with its config fields overridden.

    Raises:
        ValueError: unknown model name, unknown field or invalid value; the
            message lists the valid choices.
    """
    return build_from_config(name, get_config(name, **overrides))


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
    "register",
]
