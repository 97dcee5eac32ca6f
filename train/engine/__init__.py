"""The one training engine, and what it is made of.

- `train.engine.trainer` (this package's `fit`, `build`, `setup`): compile the
  recipe's stages and train, with the run folder's checkpoints, backup and
  logs; `train.run` and the tuner's hypermodel both call it.
- `train.engine.callbacks`: checkpoints, crash-safe backup, early stopping
  that resumes, the non-finite-loss guard.
- `train.engine.distribute`: strategies, mixed precision, the XLA choice.
- `train.engine.config`: config resolution (family defaults < preset <
  YAML < flags) and the flags of config fields.
"""

from train.engine.trainer import (
    RunClock,
    Setup,
    build,
    build_optimizer,
    class_weights,
    default_setup,
    fit,
    setup,
    stages_of,
    steps_per_epoch,
)

__all__ = [
    "RunClock",
    "Setup",
    "build",
    "build_optimizer",
    "class_weights",
    "default_setup",
    "fit",
    "setup",
    "stages_of",
    "steps_per_epoch",
]
