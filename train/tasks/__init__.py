"""Tasks: everything that depends on the kind of data a model eats.

One `Task` per input kind, registered here like the models are registered
in `models/`: "clips" (clip classifiers), "features" (classifiers of
per-frame feature sequences) and "frame_scores" (per-frame importance
scorers). A model family's config names its kind (`input_kind`);
`train.run`, `train.evaluate`, `train.predict` and the tuner ask for the
model's task and call it, so no module outside this package compares kind
names.

Example:

>>> task = task_for("convlstm")
>>> task.kind, task.Options.__name__
('clips', 'ClipOptions')
"""

from common.registry import Registry
from train.tasks.base import DataBundle, Task

_TASKS = Registry("task", "kind", "no task for input kind {name!r}; known: {known}")
register = _TASKS.register
get_task = _TASKS.get
kinds = _TASKS.names


def task_for(model_name) -> Task:
    """The task of a registered model, from its config's `input_kind`."""
    return get_task(type(models.get_family(model_name).config).input_kind)



import models
# Importing a task module defines its task; registering here keeps the
# list in one place.
from train.tasks.clips import ClipTask  # noqa: E402
from train.tasks.features import FeatureTask  # noqa: E402
from train.tasks.frame_scores import FrameScoreTask  # noqa: E402

register(ClipTask())
register(FeatureTask())
register(FrameScoreTask())

__all__ = ["DataBundle", "Task", "get_task", "kinds", "register", "task_for"]
