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
        steps_per_epoch: training batches per epoch, for the schedules.
        data_batch_size: batch size of the given datasets; a trial with
            another `batch_size` rebatches them.
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

    def build(self, hp):
        setting, config = self.trial(hp)
        model, _ = engine.build(setting.model, config, steps_per_epoch=self.steps_per_epoch)
        return model

    def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, **kwargs):
        setting, config = self.trial(hp)
        spec = models.get_family(setting.model).training(config, self.steps_per_epoch)
        data = self.data
        if config.batch_size != self.data_batch_size:
            data = dataclasses.replace(data, **{
                split: getattr(data, split).unbatch().batch(config.batch_size)
                for split in ("train", "val") if getattr(data, split) is not None
            })
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
