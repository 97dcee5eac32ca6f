"""The Keras Tuner hypermodel that builds and trains any registered model."""

import keras
import keras_tuner as kt

import models
from models import r2plus1d


class SuiteHyperModel(kt.HyperModel):
    """Builds one trial's model from a `SearchSpace` and trains it.

    Args:
        space: the `tuning.space.SearchSpace`.
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

    def __init__(self, space, data_updates, steps_per_epoch, data_batch_size, verbose=0,
                 jit_compile="auto", run_eagerly=False):
        super().__init__(name="video_suite")
        self.space = space
        self.data_updates = dict(data_updates)
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.data_batch_size = data_batch_size
        self.verbose = verbose
        self.jit_compile = jit_compile
        self.run_eagerly = run_eagerly

    def trial(self, hp):
        """(Setting, validated config) of the trial that `hp` describes."""
        setting, values = self.space.declare(hp)
        overrides = {**values, **self.data_updates}
        return setting, self.space.config(setting, overrides)

    def build(self, hp):
        setting, config = self.trial(hp)
        family = models.get_family(setting.model)
        model = models.build_from_config(setting.model, config)
        spec = family.training(config, steps_per_epoch=self.steps_per_epoch)
        model.compile(
            optimizer=spec.optimizer, loss=spec.loss, metrics=list(spec.metrics),
            jit_compile=False if self.run_eagerly else self.jit_compile,
            run_eagerly=self.run_eagerly,
        )
        return model

    def fit(self, hp, model, train, validation_data=None, callbacks=None, **kwargs):
        setting, config = self.trial(hp)
        spec = models.get_family(setting.model).training(config, self.steps_per_epoch)
        callbacks = list(callbacks or []) + [
            keras.callbacks.EarlyStopping(
                monitor=spec.monitor, mode=spec.monitor_mode, patience=config.patience
            )
        ]
        if config.batch_size != self.data_batch_size:
            train = train.unbatch().batch(config.batch_size)
            if validation_data is not None:
                validation_data = validation_data.unbatch().batch(config.batch_size)
        kwargs.setdefault("epochs", config.epochs)
        kwargs["verbose"] = self.verbose  # the tuner's own verbosity is separate
        kwargs["shuffle"] = False  # the input pipeline shuffles
        history = model.fit(
            train, validation_data=validation_data, callbacks=callbacks, **kwargs
        )
        # The oracle keeps every history key at the best epoch: the sizes
        # ride along so the results table needs no rebuild.
        sizes = {
            "cnn_params": r2plus1d.cnn_params(model),
            "attention_params": r2plus1d.attention_params(model),
            "params": r2plus1d.count_params(model, trainable_only=False),
        }
        epochs = len(history.epoch)
        for key, value in sizes.items():
            history.history[key] = [float(value)] * epochs
        return history
