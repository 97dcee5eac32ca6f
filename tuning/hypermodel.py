"""The Keras Tuner hypermodel that builds and trains any registered model."""

import dataclasses

import keras_tuner as kt

import models
from train import engine

# The history keys of a trial's size metrics (the family's `size_metrics`,
# e.g. "size: CNN params"); the results table shows them as columns.
SIZE_PREFIX = "size: "


class SuiteHyperModel(kt.HyperModel):
    """Builds one trial's model from a `SearchSpace` and trains it with the
    training engine (`train.engine.fit`), so a trial trains what
    `train.run` trains: every stage of the recipe, its class weights and
    early stopping.

    Args:
        space: the `tuning.space.SearchSpace`.
        data: the `DataBundle` every trial trains on.
        data_updates: config fields the data fixes (input shape, classes);
            they override the search's base fields.
        steps_per_epoch: training batches per epoch at `data_batch_size`.
        data_batch_size: batch size of the given datasets; a trial with
            another `batch_size` rebatches them (`rebatched`), its epoch
            stream included, and its schedules count its own steps.
        verbose: Keras progress output of each trial's `fit`.
        jit_compile: passed to `model.compile` ("auto" lets Keras use XLA).
        run_eagerly: passed to `model.compile`; skips graph tracing, which
            dominates the trials of tiny models.
    """

    def __init__(self, space, data, data_updates, steps_per_epoch, data_batch_size, verbose=0,
                 jit_compile="auto", run_eagerly=False):
        super().__init__(name="video_suite")
        self.space = space
        self.data = data
        self.data_updates = dict(data_updates)
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.data_batch_size = data_batch_size
        self.verbose = verbose
        self.jit_compile = False if run_eagerly else jit_compile
        self.run_eagerly = run_eagerly

    def trial(self, hp):
        """(Setting, validated config) of the trial that `hp` describes."""
        setting, values = self.space.declare(hp)
        overrides = {**values, **self.data_updates}
        return setting, self.space.config(setting, overrides)

    def trial_data(self, config):
        """The data at the trial's batch size, and its steps per epoch."""
        if config.batch_size == self.data_batch_size:
            return self.data, self.steps_per_epoch
        data = rebatched(self.data, config.batch_size, self.steps_per_epoch)
        return data, data.steps_per_epoch

    def build(self, hp):
        setting, config = self.trial(hp)
        _, steps = self.trial_data(config)
        model, _ = engine.build(setting.model, config, steps_per_epoch=steps)
        return model

    def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, **kwargs):
        setting, config = self.trial(hp)
        data, steps = self.trial_data(config)
        spec = models.get_family(setting.model).training(config, steps)
        history = engine.fit(
            model, spec, data, config, callbacks=list(callbacks or []),
            jit_compile=self.jit_compile, run_eagerly=self.run_eagerly, verbose=self.verbose,
            initial_epoch=initial_epoch, epochs=epochs,
        )
        # The oracle keeps every history key at the best epoch: the sizes
        # ride along so the results table needs no rebuild.
        sizes = models.get_family(setting.model).size_metrics(model)
        for label, value in sizes.items():
            history.history[SIZE_PREFIX + label] = [float(value)] * len(history.epoch)
        return history


def examples_per_epoch(data, steps_per_epoch):
    """Training examples in one epoch of the bundle: its training labels, or
    else those counted in the first epoch of its stream."""
    if data.train_labels is not None:
        return len(data.train_labels)
    stream = data.train_epochs(0).take(steps_per_epoch) if data.train_epochs else data.train
    return sum(int(_batch_size(batch)) for batch in stream)


def _batch_size(batch):
    import tensorflow as tf

    return tf.shape(tf.nest.flatten(batch)[0])[0]


def rebatched(data, batch_size, steps_per_epoch):
    """The bundle with its training and validation batches regrouped into
    batches of `batch_size`. The epoch stream (`DataBundle.train_epochs`,
    what the engine trains on) is regrouped one epoch at a time, so an
    epoch holds the same examples in the same order, and the bundle's
    `steps_per_epoch` becomes an epoch's batches at the new size.

    Example:

    >>> import tensorflow as tf
    >>> from train.tasks.base import DataBundle
    >>> def epoch(number):  # 5 examples in batches of 2: 2, 2, 1
    ...     return tf.data.Dataset.range(5).map(lambda i: (i + 10 * number, i)).batch(2)
    >>> def stream(first):
    ...     return tf.data.Dataset.range(first, 100).flat_map(epoch)
    >>> data = DataBundle(epoch(0), None, None, [], {}, train_labels=[0] * 5,
    ...                   train_epochs=stream, steps_per_epoch=3)
    >>> data = rebatched(data, 4, 3)
    >>> data.steps_per_epoch
    2
    >>> [batch[0].numpy().tolist() for batch in data.train_epochs(0).take(4)]
    [[0, 1, 2, 3], [4], [10, 11, 12, 13], [14]]
    """
    import tensorflow as tf

    updates = {
        split: getattr(data, split).unbatch().batch(batch_size)
        for split in ("train", "val") if getattr(data, split) is not None
    }
    examples = examples_per_epoch(data, steps_per_epoch)
    updates["steps_per_epoch"] = max(-(-examples // batch_size), 1)
    if data.train_epochs is not None:
        make_epochs = data.train_epochs

        def regroup(*parts):
            return tf.data.Dataset.zip(parts if len(parts) > 1 else parts[0]).unbatch().batch(
                batch_size)

        def train_epochs(first_epoch):
            # `steps_per_epoch` batches are one epoch of the stream.
            return make_epochs(first_epoch).window(steps_per_epoch).flat_map(regroup)

        updates["train_epochs"] = train_epochs
    return dataclasses.replace(data, **updates)
