"""The one training engine: `train.run` and the tuner's hypermodel both call it.

`fit(model, spec, data, config, ...)` trains a built model through the
stages of its training recipe (`models.TrainingSpec.stages`): before each
stage it runs the stage's `prepare` (e.g. unfreezing backbone blocks),
compiles with the stage's optimizer, the recipe's loss and metrics and the
XLA choices (the whole step, or only the optimizer's update), then calls
`model.fit` with the class weights the config asks for and the callbacks
below. Epochs are numbered across stages: stage k
starts at the sum of the epochs planned for the stages before it, so one
history (and one tuner trial) covers the whole recipe.

With a run folder (`out`), the engine also keeps everything a run folder
promises: `last.keras` and `best.keras` (best on the recipe's monitor),
`history.csv`, TensorBoard logs, and a crash-safe backup from which a
re-run of the same command resumes at the next epoch (see
`train.engine.callbacks.BackupAndRestore`); a stage that finished leaves
`stage_<name>.weights.h5` and is not trained again. A resumed run is the run
it would have been: the backup holds the optimizer, the dropout seed
generators and early stopping's progress, and when the data can give any
epoch's batches (`DataBundle.train_epochs`), each epoch's order and
augmentation depend on the seed and the epoch number only. Without a run folder
(a tuner trial) it adds early stopping to the caller's callbacks and writes
nothing.

`setup(strategy, mixed_precision)` must run before any other TensorFlow
operation (a multi-worker strategy insists), and `build` creates the model
and its recipe inside the strategy's scope.
"""

import contextlib
import dataclasses
import os
import shutil
import time
import warnings

import keras
import numpy as np

import models
from common.files import read_json, write_json
from train.engine import callbacks as callbacks_lib
from train.engine import distribute


@dataclasses.dataclass(frozen=True)
class Setup:
    """Where and in which precision a model trains.

    Args:
        strategy: the `tf.distribute.Strategy`.
        precision: the Keras dtype policy name in effect.
    """

    strategy: object
    precision: str = "float32"


def setup(strategy="auto", mixed_precision=False):
    """Creates the strategy and sets the dtype policy (call this first)."""
    made = distribute.make_strategy(strategy)
    return Setup(made, distribute.set_mixed_precision(mixed_precision))


def default_setup():
    """TensorFlow's default placement in the current dtype policy."""
    import tensorflow as tf

    return Setup(tf.distribute.get_strategy(), keras.config.dtype_policy().name)


def build(model_name, config, setup_=None, steps_per_epoch=1):
    """(model, training spec) of `model_name` at `config`, built in the
    strategy's scope and checked against the dtype policy."""
    setup_ = setup_ or default_setup()
    with setup_.strategy.scope():
        model = models.build_from_config(model_name, config)
        spec = models.get_family(model_name).training(config, steps_per_epoch=steps_per_epoch)
    distribute.check_mixed_precision(model, setup_.precision)
    return model, spec


def stages_of(spec, config):
    """The recipe's stages; one stage of `config.epochs` when it lists none."""
    return spec.stages or (models.Stage("train", config.epochs, spec.optimizer),)


def fit(model, spec, data, config, *, out=None, setup_=None, jit_compile=False,
        xla_update=False, run_eagerly=False, verbose=1, callbacks=(), class_weight="config",
        initial_epoch=0, epochs=None):
    """Trains `model` through every stage of `spec`.

    Args:
        model: the built model.
        spec: its `models.TrainingSpec`.
        data: a `DataBundle` (train or train_epochs, and val, are used).
        config: the model's config (epochs, patience, class_weight).
        out: the run folder, or None to write nothing.
        setup_: the `Setup` (default: TensorFlow's default placement).
        jit_compile, run_eagerly: passed to `model.compile`.
        xla_update: compile each stage's optimizer update with XLA
            (`train.engine.distribute.compile_optimizer_update`; decide with
            `train.engine.distribute.resolve_xla_update`).
        verbose: Keras progress output.
        callbacks: more callbacks for every stage (e.g. the tuner's).
        class_weight: "config" (from `config.class_weight` and the data's
            training labels), None, or a `{class: weight}` dict.
        initial_epoch, epochs: train only the recipe's epochs in
            `[initial_epoch, epochs)` (epochs counted across stages), as
            Keras Tuner's Hyperband asks of a trial; default: all of them.

    Returns:
        A `keras.callbacks.History` of every epoch this call trained, with
        `train_seconds`: the seconds trained in the whole run, resumed
        sessions included (epochs that a kill cut short are not counted).

    Raises:
        ValueError: the loss became NaN or infinite (the message names the
            epoch); no checkpoint or backup holds that epoch.
    """
    setup_ = setup_ or default_setup()
    if class_weight == "config":
        class_weight = class_weights(config, data.train_labels)
    history = keras.callbacks.History()
    history.set_model(model)
    history.on_train_begin()
    clock = RunClock(out)
    first_epoch = 0
    for stage in stages_of(spec, config):
        if stage.prepare is not None:
            stage.prepare(model)
        end = first_epoch + stage.epochs if epochs is None else min(first_epoch + stage.epochs, epochs)
        if _restore_finished_stage(model, stage, out) or max(first_epoch, initial_epoch) >= end:
            first_epoch += stage.epochs
            continue
        _compile_stage(model, spec, stage, setup_.strategy, jit_compile, xla_update, run_eagerly)
        guard = callbacks_lib.StopOnNonFiniteLoss()
        early = callbacks_lib.ResumableEarlyStopping(
            monitor=spec.monitor, mode=spec.monitor_mode, patience=config.patience,
            restore_best_weights=True,
        )
        start = max(first_epoch, initial_epoch)
        if out is None:
            stage_callbacks = [callbacks_lib.RaiseDataErrors(), guard, early, *callbacks]
        else:
            backup, start = _resume_from_backup(model, out, stage, early, clock, start)
            stage_callbacks = _run_folder_callbacks(
                out, spec, setup_.strategy, guard, early, callbacks, backup
            )
        stage_history = _fit_epochs(
            model, data, start, end, stage_callbacks, class_weight, verbose, clock, setup_.strategy
        )
        for epoch, _ in enumerate(stage_history.epoch):
            history.on_epoch_end(
                stage_history.epoch[epoch],
                {key: values[epoch] for key, values in stage_history.history.items()},
            )
        _raise_if_the_loss_diverged(guard, out, config)
        if out is not None:
            _mark_stage_finished(model, out, stage, clock)
        first_epoch += stage.epochs
    history.train_seconds = clock.seconds()
    return history


def _finished_stage_marker(out, stage):
    """The weights a finished stage leaves in the run folder."""
    return os.path.join(out, f"stage_{stage.name}.weights.h5")


def _restore_finished_stage(model, stage, out):
    """Loads the weights of a stage an earlier session of the run finished;
    returns whether there was one (then the stage is not trained again)."""
    if not out or not os.path.exists(_finished_stage_marker(out, stage)):
        return False
    model.load_weights(_finished_stage_marker(out, stage))
    print(f"stage {stage.name}: already done, weights restored")
    return True


def _compile_stage(model, spec, stage, strategy, jit_compile, xla_update, run_eagerly):
    """Compiles the model with the stage's optimizer and the recipe's loss
    and metrics, in the strategy's scope, creates the optimizer's
    variables before the first step (`build_optimizer`) and, with
    `xla_update`, compiles the optimizer's update with XLA
    (`train.engine.distribute.compile_optimizer_update`)."""
    with strategy.scope():
        model.compile(
            optimizer=stage.optimizer, loss=spec.loss, metrics=list(spec.metrics),
            jit_compile=jit_compile, run_eagerly=run_eagerly,
        )
        build_optimizer(model)
        if xla_update:
            distribute.compile_optimizer_update(model.optimizer)


def _resume_from_backup(model, out, stage, early, clock, start):
    """The stage's crash-safe backup callback, and the epoch to start at.

    When an earlier session of the run left a backup of this stage, the
    model, its optimizer, early stopping and the clock are restored from
    it and training starts at the epoch after the backed-up one;
    `history.csv` is cut back to the epochs before that one, so that an
    epoch a kill interrupted is not listed twice.

    Returns:
        (the `BackupAndRestore` callback, the first epoch to train).
    """
    backup = callbacks_lib.BackupAndRestore(
        os.path.join(out, "backup", stage.name), early_stopping=early, clock=clock.seconds
    )
    state = backup.restore(model)
    if state is not None:
        start = state["epoch"]
        clock.resume(state.get("train_seconds"))
    callbacks_lib.truncate_history(os.path.join(out, "history.csv"), start)
    return backup, start


def _run_folder_callbacks(out, spec, strategy, guard, early, callbacks, backup):
    """The callbacks of a stage that writes a run folder, in the order they
    must run: the moving statistics are averaged across replicas before
    the checkpoints are written, and the backup comes last, because it
    names an epoch only once everything before it has it."""
    return [
        callbacks_lib.RaiseDataErrors(),
        guard,
        distribute.SyncMovingStatistics(strategy),
        callbacks_lib.RunCheckpoint(out, spec.monitor, spec.monitor_mode),
        early,
        *callbacks,
        keras.callbacks.CSVLogger(os.path.join(out, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(out, "logs")),
        backup,
    ]


def _fit_epochs(model, data, start, end, callbacks, class_weight, verbose, clock, strategy):
    """Keras' `fit` over the epochs `[start, end)`, timed by the run's clock,
    with Keras patched for the strategy (`distribute.keras_patched_for`).

    When the data can give any epoch's batches (`DataBundle.train_epochs`),
    the stream starts at `start`, so a resumed run sees the batches an
    uninterrupted one would have seen.

    Returns:
        The stage's `keras.callbacks.History`.
    """
    if data.train_epochs is not None:
        train, steps = data.train_epochs(start), data.steps_per_epoch
    else:
        train, steps = data.train, None
    with warnings.catch_warnings():
        # A stream of video files skips unreadable ones, so its length is
        # unknown until the first epoch has run out of data; Keras then
        # warns that training was interrupted. It was not: no
        # steps_per_epoch is asked for, every epoch is one pass.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        with clock.running(), distribute.keras_patched_for(strategy):
            return model.fit(
                train,
                validation_data=data.val,
                initial_epoch=start,
                epochs=end,
                steps_per_epoch=steps,
                callbacks=callbacks,
                class_weight=class_weight,
                shuffle=False,  # the pipeline shuffles
                verbose=verbose,
            )


def _raise_if_the_loss_diverged(guard, out, config):
    """Ends the run with the epoch whose loss became NaN or infinite.

    Raises:
        ValueError: the guard stopped training (the message names the
            epoch, the learning rate and the best checkpoint kept, if any).
    """
    if guard.stopped_at is None:
        return
    epoch, loss = guard.stopped_at
    saved = f"; {out}/best.keras holds the best earlier epoch" if out and os.path.exists(
        os.path.join(out, "best.keras")) else ""
    raise ValueError(
        f"training stopped in epoch {epoch + 1}: the loss became {loss} (a learning "
        f"rate of {config.learning_rate} may be too high for this model and data){saved}"
    )


def _mark_stage_finished(model, out, stage, clock):
    """Writes the finished stage's weights (the marker that it is done) and
    the seconds trained, then removes the stage's backup."""
    callbacks_lib.save_model_atomic(model, _finished_stage_marker(out, stage))
    clock.save()
    # Only now: a kill before the marker exists resumes from the backup.
    shutil.rmtree(os.path.join(out, "backup", stage.name), ignore_errors=True)
    with contextlib.suppress(OSError):  # other stages may still have theirs
        os.rmdir(os.path.join(out, "backup"))


class RunClock:
    """Seconds spent training in a run, across the sessions of a resumed run.

    The count of earlier sessions comes from the backup of the epoch a run
    resumes at, or from `progress.json` in the run folder once a stage has
    finished, so time spent on epochs that a kill cut short is not counted.
    """

    def __init__(self, out):
        self.path = os.path.join(out, "progress.json") if out else None
        self.before = 0.0
        if self.path and os.path.exists(self.path):
            self.before = float(read_json(self.path, "run progress").get("train_seconds", 0.0))
        self.started = None
        self.session = 0.0

    def resume(self, seconds):
        if seconds is not None:
            self.before, self.session = float(seconds), 0.0

    @contextlib.contextmanager
    def running(self):
        self.started = time.time()
        try:
            yield
        finally:
            self.session += time.time() - self.started
            self.started = None

    def seconds(self):
        running = time.time() - self.started if self.started is not None else 0.0
        return round(self.before + self.session + running, 1)

    def save(self):
        if self.path:
            write_json(self.path, {"train_seconds": self.seconds()})


def build_optimizer(model):
    """Creates the compiled optimizer's variables before the first step.

    Keras (TensorFlow backend, no distribution strategy in scope when the
    model was built) creates them inside the first traced train step, and
    TensorFlow then traces the step a second time. Built beforehand, the
    step is traced once: compile + fit over 2 batches of the tiny presets
    is 1.16x (convlstm) to 1.97x (r2plus1d_perceiver) faster on 2 CPU cores
    (`python -m benchmarks.first_step`). Call in the strategy's scope,
    after `compile`.
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def class_weights(config, labels):
    """Inverse-frequency class weights when the config asks for them.

    Example:

    >>> class Config:
    ...     class_weight, num_classes = "balanced", 1
    >>> class_weights(Config(), [0, 0, 0, 1])
    {0: 0.6666666666666666, 1: 2.0}
    """
    if getattr(config, "class_weight", "none") != "balanced" or labels is None:
        return None
    labels = np.asarray(labels).astype(int).ravel()
    classes = max(config.num_classes, 2)
    counts = np.bincount(labels, minlength=classes).astype(float)
    present = counts > 0
    weights = np.zeros(classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {index: float(weight) for index, weight in enumerate(weights)}


def steps_per_epoch(data, config):
    """Batches per epoch, for schedules counted in epochs. A pipeline that
    may skip unreadable files has no known length: count the labels."""
    if data.steps_per_epoch:
        return data.steps_per_epoch
    steps = int(data.train.cardinality())
    if steps < 0 and data.train_labels is not None:
        steps = -(-len(data.train_labels) // config.batch_size)
    return max(steps, 1)
