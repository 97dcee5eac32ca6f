"""ConvLSTM2D clip classifier.

The design notes' stack: ConvLSTM2D(16) -> per-frame max-pool -> per-frame
batch norm -> ConvLSTM2D(32, last state) -> global max pool -> sigmoid.

Keras 3's `TimeDistributed` unrolls a Python loop over the time axis, so
`TimeDistributed(BatchNormalization)` would keep one batch statistic per
time step and update the moving statistics T times per step (tf.keras 2,
which the notes were written for, reshaped to (B*T, ...) instead). The same
math is written here directly on the 5-D tensor: `MaxPool3D((1, 2, 2))` pools
each frame on its own, and `BatchNormalization(axis=-1)` normalises over
batch, time and space together, exactly what the reshaped version computes.

The notes' `recurrent_activation='hard_sigmoid'` was tf.keras 2's hard
sigmoid, clip(0.2 x + 0.5, 0, 1). Keras 3 kept the name for
clip(x / 6 + 0.5, 0, 1) (0.667 instead of 0.7 at x = 1, saturating at
+-3 instead of +-2.5), so the notes' function is defined here as
`tf2_hard_sigmoid` and is the default; `recurrent_activation="hard_sigmoid"`
selects Keras 3's.

Training follows the notes' compile: Adam, binary cross-entropy, metrics
binary cross-entropy and AUC (plus accuracy), and the best model is the one
with the lowest validation loss.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from models.config import ModelConfig, check_input_rank, check_positive, check_rate
from models.capabilities import GradCamTarget, LatencyCase, Streaming, first_input
from models.registry import Family, TrainingSpec, register


@keras.saving.register_keras_serializable(package="video_suite", name="tf2_hard_sigmoid")
def tf2_hard_sigmoid(x):
    """tf.keras 2's hard sigmoid: `clip(0.2 * x + 0.5, 0, 1)`.

    The design notes' ConvLSTM gates use `recurrent_activation=
    'hard_sigmoid'` in tf.keras 2, where it meant this piecewise-linear
    function. Keras 3's `"hard_sigmoid"` is `clip(x / 6 + 0.5, 0, 1)`, a
    different slope. Registered, so a `.keras` file that uses it reloads
    without `custom_objects`.

    Args:
        x: a tensor.

    Returns:
        A tensor of the same shape and dtype, in [0, 1].

    Example:

    >>> np.asarray(tf2_hard_sigmoid(np.array([-3.0, -1.0, 0.0, 1.0, 3.0], "float32")))
    array([0. , 0.3, 0.5, 0.7, 1. ], dtype=float32)
    """
    x = ops.convert_to_tensor(x)
    return ops.clip(x * 0.2 + 0.5, 0.0, 1.0)


# Activations this module defines, by the name a config gives them; every
# other name goes to Keras as it is.
RECURRENT_ACTIVATIONS = {"tf2_hard_sigmoid": tf2_hard_sigmoid}


def recurrent_activation_of(name):
    """The activation function a config's `recurrent_activation` names."""
    return RECURRENT_ACTIVATIONS.get(name, name)


def cell_arguments(config, filters):
    """The `ConvLSTM2D` arguments that the clip model and its one-frame
    step model share, so that one's weights fit the other."""
    return dict(
        filters=filters,
        kernel_size=config.kernel_size,
        padding="valid",
        activation="tanh",
        recurrent_activation=recurrent_activation_of(config.recurrent_activation),
        use_bias=False,
    )


@dataclasses.dataclass(frozen=True)
class ConvLSTMConfig(ModelConfig):
    """Config of the `convlstm` family; defaults are the design notes'.

    Args:
        input_shape: clip shape (T, H, W, C); the notes use 30x120x160x4.
        num_classes: 1 gives one sigmoid output with binary cross-entropy
            and AUC; > 1 gives softmax with sparse categorical cross-entropy.
        filters: one entry per ConvLSTM2D layer (1 to 4 layers). Every layer
            but the last returns sequences and is followed by the per-frame
            max-pool and batch norm.
        kernel_size: square kernel of every ConvLSTM2D layer.
        dropout: input dropout of every ConvLSTM2D layer. The notes give no
            value; 0.2 is our choice.
        recurrent_activation: the gates' activation. `"tf2_hard_sigmoid"`
            (default) is the notes' tf.keras 2 `hard_sigmoid`, clip(0.2 x +
            0.5, 0, 1); `"hard_sigmoid"` is Keras 3's clip(x / 6 + 0.5, 0,
            1); any other Keras activation name works too.
        l1: L1 weight of the ConvLSTM2D kernels' L1L2 regularizer, a
            factor on the sum of absolute kernel weights added to the loss;
            0 (off) as in the notes' code, `L1L2(l1=0, l2=0)`, whose table
            says "regularizers: None".
        l2: L2 weight of the same regularizer, a factor on the sum of
            squared kernel weights added to the loss; 0 (off) as in the
            notes' code.
        learning_rate: Adam's step size, 8e-5 in the notes.
        beta_1: Adam's decay rate of the gradient's running mean, 0.9 in
            the notes.
        beta_2: Adam's decay rate of the squared gradient's running mean,
            0.999 in the notes.
        batch_size: training batch size, 4 in the notes.
        class_weight: `"balanced"` weights classes by inverse frequency of
            the training labels; `"none"` leaves them equal.
    """

    input_shape: tuple = (30, 120, 160, 4)
    num_classes: int = 1
    filters: tuple = (16, 32)
    kernel_size: int = 3
    dropout: float = 0.2
    recurrent_activation: str = "tf2_hard_sigmoid"
    l1: float = 0.0
    l2: float = 0.0
    learning_rate: float = 8e-5
    beta_1: float = 0.9
    beta_2: float = 0.999
    batch_size: int = 4
    epochs: int = 20
    patience: int = 6
    class_weight: str = "balanced"

    def validate(self):
        super().validate()
        check_input_rank(self, 4, "(T, H, W, C)")
        if not 1 <= len(self.filters) <= 4:
            raise ValueError(
                f"filters must list 1 to 4 ConvLSTM2D layers, got {self.filters!r}"
            )
        check_positive(self, "filters", "kernel_size")
        check_rate(self, "dropout")
        if self.recurrent_activation not in RECURRENT_ACTIVATIONS:
            try:
                keras.activations.get(self.recurrent_activation)
            except ValueError:
                raise ValueError(
                    f"recurrent_activation must be {', '.join(RECURRENT_ACTIVATIONS)} or a "
                    f"Keras activation name, got {self.recurrent_activation!r}"
                ) from None
        if self.l1 < 0 or self.l2 < 0:
            raise ValueError(f"l1 and l2 must be >= 0, got {self.l1!r}, {self.l2!r}")
        if self.class_weight not in ("balanced", "none"):
            raise ValueError(
                f"class_weight must be 'balanced' or 'none', got {self.class_weight!r}"
            )
        for size in self.input_shape[1:3]:
            if size is None:
                continue
            for _ in self.filters[:-1]:
                size = (size - self.kernel_size + 1) // 2
            if size - self.kernel_size + 1 < 1:
                raise ValueError(
                    f"input_shape {self.input_shape!r} is too small for "
                    f"{len(self.filters)} ConvLSTM2D layers of kernel {self.kernel_size}"
                )


def build_convlstm(config: ConvLSTMConfig) -> keras.Model:
    """Builds the ConvLSTM2D stack as a functional model.

    Example:

    >>> model = build_convlstm(ConvLSTMConfig(input_shape=(8, 32, 32, 1)))
    >>> model.output_names
    ['probabilities']
    """
    frames = keras.Input(shape=config.input_shape, name="frames")
    x = frames
    for index, filters in enumerate(config.filters):
        last = index == len(config.filters) - 1
        x = keras.layers.ConvLSTM2D(
            **cell_arguments(config, filters),
            dropout=config.dropout,
            kernel_regularizer=keras.regularizers.L1L2(l1=config.l1, l2=config.l2),
            return_sequences=not last,
            name=f"conv_lstm_{index + 1}",
        )(x)
        if not last:
            x = keras.layers.MaxPool3D((1, 2, 2), name=f"frame_max_pool_{index + 1}")(x)
            x = keras.layers.BatchNormalization(
                center=False, scale=False, name=f"frame_batch_norm_{index + 1}"
            )(x)
    x = keras.layers.GlobalMaxPool2D(name="global_max_pool")(x)
    # float32 output under a mixed-precision policy: probabilities and the
    # loss keep full precision, and the exported signature stays float32.
    if config.num_classes == 1:
        outputs = keras.layers.Dense(
            1, activation="sigmoid", dtype="float32", name="probabilities"
        )(x)
    else:
        outputs = keras.layers.Dense(
            config.num_classes, activation="softmax", dtype="float32", name="probabilities"
        )(x)
    return keras.Model({"frames": frames}, outputs, name="convlstm")


def convlstm_state_shapes(config: ConvLSTMConfig):
    """`{name: (H, W, filters)}` of every recurrent state of the stack.

    Layer `l` (from 1) has a hidden state `h_l` and a cell state `c_l` of
    the size of its output map: a "valid" convolution leaves `size - k + 1`
    pixels, and the per-frame max-pool after every layer but the last
    halves that, rounding down (the arithmetic of `ConvLSTMConfig.validate`).

    Example:

    >>> convlstm_state_shapes(ConvLSTMConfig(input_shape=(4, 12, 12, 2), filters=(3, 4)))
    {'h_1': (10, 10, 3), 'c_1': (10, 10, 3), 'h_2': (3, 3, 4), 'c_2': (3, 3, 4)}
    """
    height, width = config.input_shape[1:3]
    if height is None or width is None:
        raise ValueError(
            f"input_shape {config.input_shape!r}: a streaming ConvLSTM needs a fixed "
            "frame height and width"
        )
    shapes = {}
    for index, filters in enumerate(config.filters):
        height, width = height - config.kernel_size + 1, width - config.kernel_size + 1
        shapes[f"h_{index + 1}"] = shapes[f"c_{index + 1}"] = (height, width, filters)
        height, width = height // 2, width // 2
    return shapes


def build_convlstm_step(config: ConvLSTMConfig) -> keras.Model:
    """The frame-by-frame form of `build_convlstm`, for streaming video.

    One step takes a frame and the recurrent states of every ConvLSTM2D
    layer and returns the probabilities after that frame and the new
    states; running it over the frames of a clip from zero states ends
    with exactly the clip model's output, and after frame `t` it gives the
    clip model's output on the first `t` frames. Every operation between
    two ConvLSTM2D layers of the clip model acts on each frame alone (a
    max-pool of time size 1, batch norm in inference mode: a per-channel
    affine map), so the step applies the same layers to the one frame:
    `MaxPool3D((1, 2, 2))` becomes `MaxPool2D((2, 2))`, and each ConvLSTM2D
    runs a sequence of one frame from the given states (`return_state`).

    The layers carry the clip model's names, so `convlstm_step_from`
    copies its weights by name. Dropout is left out: the step is for
    inference.

    Inputs: `frame` [B, H, W, C] and `h_1`, `c_1`, ..., `h_L`, `c_L` (see
    `convlstm_state_shapes`). Outputs: `probabilities` and the new
    `h_1`, `c_1`, ..., under the same names as the inputs, so a caller
    feeds each step's states to the next.

    Example:

    >>> config = ConvLSTMConfig(input_shape=(4, 12, 12, 2), filters=(3, 4))
    >>> step = build_convlstm_step(config)
    >>> sorted(step.input), sorted(step.output)
    (['c_1', 'c_2', 'frame', 'h_1', 'h_2'], ['c_1', 'c_2', 'h_1', 'h_2', 'probabilities'])
    """
    shapes = convlstm_state_shapes(config)
    frame = keras.Input(shape=config.input_shape[1:], name="frame")
    states = {name: keras.Input(shape=shape, name=name) for name, shape in shapes.items()}
    new_states = {}
    x = frame
    for index, filters in enumerate(config.filters):
        number = index + 1
        last = index == len(config.filters) - 1
        sequence = keras.layers.Reshape((1, *x.shape[1:]), name=f"frame_as_sequence_{number}")(x)
        x, hidden, cell = keras.layers.ConvLSTM2D(
            **cell_arguments(config, filters),
            return_state=True,
            # One step: unrolled, so the exported graph has no while loop.
            unroll=True,
            name=f"conv_lstm_{number}",
        )(sequence, initial_state=[states[f"h_{number}"], states[f"c_{number}"]])
        new_states[f"h_{number}"], new_states[f"c_{number}"] = hidden, cell
        if not last:
            x = keras.layers.MaxPool2D((2, 2), name=f"frame_max_pool_{number}")(x)
            x = keras.layers.BatchNormalization(
                center=False, scale=False, name=f"frame_batch_norm_{number}"
            )(x)
    x = keras.layers.GlobalMaxPool2D(name="global_max_pool")(x)
    activation = "sigmoid" if config.num_classes == 1 else "softmax"
    probabilities = keras.layers.Dense(
        config.num_classes, activation=activation, dtype="float32", name="probabilities"
    )(x)
    return keras.Model(
        {"frame": frame, **states}, {"probabilities": probabilities, **new_states},
        name="convlstm_step",
    )


def convlstm_step_from(model, config: ConvLSTMConfig) -> keras.Model:
    """`build_convlstm_step(config)` holding the weights of the clip model
    `model` (built by `build_convlstm` from the same config).

    Raises:
        ValueError: `model` lacks a layer of the step or its weights have
            other shapes (it was not built from `config`).
    """
    step = build_convlstm_step(config)
    for layer in step.layers:
        if not layer.weights:
            continue
        try:
            source = model.get_layer(layer.name)
        except ValueError:
            raise ValueError(
                f"the clip model {model.name!r} has no layer {layer.name!r}; "
                "is it a convlstm model of this config?"
            ) from None
        weights = source.get_weights()
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(w.shape) for w in weights] != expected:
            raise ValueError(
                f"layer {layer.name!r}: the clip model's weights have shapes "
                f"{[tuple(w.shape) for w in weights]}, the step expects {expected}"
            )
        layer.set_weights(weights)
    return step


def convlstm_training(config: ConvLSTMConfig, steps_per_epoch: int) -> TrainingSpec:
    """Adam; the best model has the lowest validation loss, as in the notes."""
    optimizer = keras.optimizers.Adam(
        learning_rate=config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2
    )
    return classifier_training_spec(
        optimizer, config.num_classes, monitor="val_loss", binary_cross_entropy_metric=True
    )


def is_class_distribution(y_true, y_pred):
    """Whether softmax targets are class distributions [B, K] (MixUp,
    CutMix) rather than integer labels [B] or [B, 1]; decided on static
    shapes, once per traced step."""
    classes = y_pred.shape[-1]
    return len(y_true.shape) == 2 and classes is not None and classes > 1 and (
        y_true.shape[-1] == classes
    )


def dominant_class(y_true, y_pred):
    """Integer labels from softmax targets: a distribution's most weighted
    class (ties to the lower id), integer labels as they are."""
    if is_class_distribution(y_true, y_pred):
        return keras.ops.argmax(y_true, axis=-1)
    return y_true


@keras.saving.register_keras_serializable(package="video_suite")
class SparseOrSoftCategoricalCrossentropy(keras.losses.SparseCategoricalCrossentropy):
    """Categorical cross-entropy of integer labels or of class distributions.

    Integer labels [B] (or [B, 1]) give exactly
    `SparseCategoricalCrossentropy`; float targets [B, K] (the mixed
    targets of MixUp and CutMix) give `categorical_crossentropy`, which on
    a one-hot row equals the sparse loss of its label. One loss serves a
    training set of mixed targets and a validation set of labels.

    Args:
        from_logits, ignore_class, reduction, name, dtype: as
            `keras.losses.SparseCategoricalCrossentropy`.

    Example:

    >>> import numpy as np
    >>> loss = SparseOrSoftCategoricalCrossentropy()
    >>> probs = np.array([[0.2, 0.8]], "float32")
    >>> soft = loss(np.array([[0.0, 1.0]], "float32"), probs)
    >>> bool(np.isclose(float(soft), float(loss(np.array([1]), probs))))
    True
    """

    def call(self, y_true, y_pred):
        if is_class_distribution(y_true, y_pred):
            return keras.losses.categorical_crossentropy(
                y_true, y_pred, from_logits=self._fn_kwargs["from_logits"]
            )
        return super().call(y_true, y_pred)


@keras.saving.register_keras_serializable(package="video_suite")
class DominantClassAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Accuracy against integer labels, or against the dominant class of
    mixed targets [B, K] (see `dominant_class`).

    Args:
        name, dtype: as `keras.metrics.SparseCategoricalAccuracy`.

    Example:

    >>> import numpy as np
    >>> metric = DominantClassAccuracy()
    >>> metric.update_state(np.array([[0.3, 0.7]], "float32"), np.array([[0.1, 0.9]], "float32"))
    >>> float(metric.result())
    1.0
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(dominant_class(y_true, y_pred), y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="video_suite")
class DominantClassTopKAccuracy(keras.metrics.SparseTopKCategoricalAccuracy):
    """Top-k accuracy against integer labels, or against the dominant class
    of mixed targets [B, K] (see `dominant_class`).

    Args:
        k, name, dtype: as `keras.metrics.SparseTopKCategoricalAccuracy`.

    Example:

    >>> import numpy as np
    >>> metric = DominantClassTopKAccuracy(k=2)
    >>> y_pred = np.array([[0.5, 0.3, 0.2]], "float32")
    >>> metric.update_state(np.array([[0.1, 0.2, 0.7]], "float32"), y_pred)
    >>> float(metric.result())
    0.0
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(dominant_class(y_true, y_pred), y_pred, sample_weight)


def _rounded_binary_target(y_true):
    # A mixed positive-class weight counts as positive when it is the
    # larger share (ties negative, as `dominant_class` breaks them).
    return keras.ops.cast(keras.ops.greater(y_true, 0.5), "float32")


@keras.saving.register_keras_serializable(package="video_suite")
class DominantClassBinaryAccuracy(keras.metrics.BinaryAccuracy):
    """Binary accuracy against the dominant class of a target in [0, 1]
    (hard 0/1 targets as they are; mixed ones rounded, ties negative).

    Args:
        name, dtype, threshold: as `keras.metrics.BinaryAccuracy`.

    Example:

    >>> import numpy as np
    >>> metric = DominantClassBinaryAccuracy()
    >>> metric.update_state(np.array([[0.7]], "float32"), np.array([[0.9]], "float32"))
    >>> float(metric.result())
    1.0
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(_rounded_binary_target(y_true), y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="video_suite")
class DominantClassAUC(keras.metrics.AUC):
    """ROC AUC against the dominant class of a target in [0, 1] (hard 0/1
    targets as they are; mixed ones rounded, ties negative).

    Args:
        the arguments of `keras.metrics.AUC`.

    Example:

    >>> import numpy as np
    >>> metric = DominantClassAUC()
    >>> metric.update_state(np.array([[0.8], [0.3]], "float32"), np.array([[0.9], [0.1]], "float32"))
    >>> round(float(metric.result()), 3)
    1.0
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(_rounded_binary_target(y_true), y_pred, sample_weight)


def classifier_training_spec(optimizer, num_classes, monitor="val_accuracy",
                             binary_cross_entropy_metric=False):
    """Loss, metrics and monitor of a clip classifier.

    One sigmoid output (`num_classes == 1`): binary cross-entropy with AUC
    and accuracy, plus a `BinaryCrossentropy` metric when
    `binary_cross_entropy_metric` (the metric is unweighted, while the
    training loss carries the class weights). Softmax: sparse categorical
    cross-entropy with accuracy and top-5 accuracy (top-k with k = min(5,
    classes)).

    Training with MixUp or CutMix gives mixed targets: class distributions
    [B, K] for softmax, the positive class's weight in [0, 1] for one
    sigmoid. The losses take them as they are (cross-entropy is linear in
    the target, so a mixed target's loss is the mix of its clips' losses);
    accuracy, top-k accuracy and AUC compare the prediction with the
    target's dominant class, so a mixed run's training metrics count the
    larger share as the label. Validation and test data keep integer (or
    0/1) labels, on which every loss and metric is the usual one.

    Args:
        optimizer: a Keras optimizer.
        num_classes: 1 for one sigmoid output, else the softmax width.
        monitor: the history key that picks the best checkpoint and drives
            early stopping; minimised when it names a loss, else maximised.
        binary_cross_entropy_metric: add the binary cross-entropy metric.
    """
    mode = "min" if monitor.endswith("loss") else "max"
    if num_classes == 1:
        metrics = [DominantClassAUC(name="auc"), DominantClassBinaryAccuracy(name="accuracy")]
        if binary_cross_entropy_metric:
            metrics.insert(0, keras.metrics.BinaryCrossentropy(name="binary_crossentropy"))
        return TrainingSpec(
            optimizer=optimizer,
            loss=keras.losses.BinaryCrossentropy(),
            metrics=metrics,
            monitor=monitor,
            monitor_mode=mode,
        )
    return TrainingSpec(
        optimizer=optimizer,
        loss=SparseOrSoftCategoricalCrossentropy(),
        metrics=[
            DominantClassAccuracy(name="accuracy"),
            DominantClassTopKAccuracy(k=min(5, num_classes), name="top5_accuracy"),
        ],
        monitor=monitor,
        monitor_mode=mode,
    )


def clip_example_batch(config, batch_size: int, seed: int = 0):
    """Random clips in [0, 1] and integer labels for a clip classifier."""
    rng = np.random.default_rng(seed)
    shape = tuple(d if d is not None else 8 for d in config.input_shape)
    frames = rng.uniform(0.0, 1.0, size=(batch_size, *shape)).astype("float32")
    labels = rng.integers(0, max(config.num_classes, 2), size=(batch_size,))
    if config.num_classes == 1:
        labels = labels.reshape(batch_size, 1).astype("float32")
    return {"frames": frames}, labels


PRESETS = {
    "tiny": dict(input_shape=(4, 12, 12, 2), filters=(3, 4)),
    "tiny_3_layers": dict(input_shape=(3, 18, 18, 1), filters=(2, 2, 3), num_classes=3),
    # The design notes' 30x120x160x4 clip at their batch of 4.
    "benchmark": dict(batch_size=4),
    # The embedded synthetic clips: 16 frames of 48x64, small enough for a
    # CPU demo; the channels stay the notes' 4.
    # The embedded clips are an easy task: 4 epochs at 1e-3 reach a test
    # AUC of 1.0 where the notes' recipe (20 epochs at 8e-5, kept for real
    # data) takes about 40 minutes on 2 CPU cores.
    "demo": dict(input_shape=(16, 48, 64, 4), epochs=4, learning_rate=1e-3),
    # The latency benchmark: 30 RGB frames of 120x160, as a camera gives.
    "latency": dict(input_shape=(30, 120, 160, 3)),
}

def convlstm_explanation(model):
    """Grad-CAM on the feature map the last ConvLSTM2D layer reads: the
    latest map that still has a time axis (the last layer returns only its
    final state). A one-layer model has no such map, only its input frames."""
    stack = [layer for layer in model.layers if isinstance(layer, keras.layers.ConvLSTM2D)]
    if len(stack) < 2:
        raise ValueError(
            "--explain: a one-layer convlstm has no feature map over time before its last "
            "state, so it has no explanation"
        )
    return GradCamTarget(first_input(stack[-1]), "the feature maps the last ConvLSTM layer reads")


register(
    Family(
        name="convlstm",
        config=ConvLSTMConfig(),
        build=build_convlstm,
        training=convlstm_training,
        example_batch=clip_example_batch,
        presets=PRESETS,
        explanation=convlstm_explanation,
        streaming=Streaming(step_model=convlstm_step_from, state_shapes=convlstm_state_shapes),
        latency=LatencyCase(preset="latency", frames=30),
    )
)
