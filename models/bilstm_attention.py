"""Bidirectional LSTM with multi-head self-attention and attention pooling.

The design notes' temporal model over per-frame features from a frozen
backbone (D = 1280 for EfficientNetV2-S):

    features [B, T, D] --Dense(768)--LayerNorm--GELU--Dropout(0.2)-->
    4 x Bidirectional LSTM(768 per direction), Dropout(0.4) between -->
    MultiHeadAttention(12 heads x 128) + residual --LayerNorm-->
    attention pooling (Dense 768 tanh -> Dropout(0.2) -> Dense 1 -> softmax
    over real frames)
    --> Dense 768 -> 384 -> 192 (LayerNorm, activation, Dropout 0.4 each)
    --> Dense(num_classes) logits.

Padding never changes the result. `mask` [B, T] (True = real frame) is
passed explicitly to every LSTM, so each direction skips padded steps: the
forward pass carries its state unchanged through them, and the backward
pass starts at the last real frame (with right-padding the padded steps
come first in reversed order and leave the zero initial state untouched;
on a GPU the cuDNN kernel reverses each sequence within its own length).
Attention masks padded keys, and pooling gives padded frames weight zero.
Keep padding at the end: the cuDNN kernel takes right-padded masks only.

The LSTMs are `models.recurrent.FusedLSTM` (`lstm_implementation="auto"`):
Keras' LSTM with every step's input projection computed as one matmul
before the time loop, same weights and masking; with TensorFlow on a GPU it
runs Keras' cuDNN kernel instead. `lstm_implementation="keras"` builds
plain `keras.layers.LSTM`, the implementation before it.

A row with no real frame (bad input, refused by `data/sequences.py`) must
not produce NaN: the LSTMs see its first step as real (cuDNN rejects fully
masked rows), and pooling returns a zero vector for it instead of dividing
by zero, so its logits are the classifier's response to zeros.

The notes' table gives dropout "0.2 (input projection, pooling)": the
pooling's 0.2 sits inside its scoring network, between the tanh layer and
the score, so it perturbs which frames are weighted (not the pooled
features themselves). The notes' model is PyTorch: every LayerNorm uses
PyTorch's epsilon 1e-5 (Keras' default is 1e-3).

Choices where the notes are silent: the classifier's activation is GELU,
like the projection's (`classifier_activation`); there is no dropout inside
the attention (`attention_dropout = 0`); the dropout "between" LSTM layers
sits between consecutive layers only (3 layers of dropout for 4 LSTMs).
The LSTMs' recurrent kernels keep Keras' orthogonal initializer; every
other kernel is Glorot-uniform, every LayerNorm starts at gamma 1, beta 0.
AdamW decays every weight, as Keras' AdamW does by default.
"""

import dataclasses
from typing import ClassVar

import keras
import numpy as np
from keras import ops

from models.config import ModelConfig, check_input_rank, check_positive, check_rate
from models.losses import FocalLoss
from models.recurrent import FusedLSTM
from models.capabilities import AttentionCurve, LatencyCase, sub_model
from models.registry import Family, TrainingSpec, register

KERNEL_INIT = "glorot_uniform"
LSTM_IMPLEMENTATIONS = ("auto", "fused", "keras")


@dataclasses.dataclass(frozen=True)
class BiLSTMAttentionConfig(ModelConfig):
    """Config of the `bilstm_attention` family; defaults are the design notes'.

    Args:
        input_shape: (T, D); T may be None (any length), D is the feature
            dimension of the backbone, 1280 by default.
        num_classes: number of classes, >= 2 (softmax over logits).
        projection_dim: width of the input projection, 768.
        projection_dropout: dropout after the projection, 0.2.
        lstm_layers: number of stacked bidirectional LSTMs, 4.
        lstm_units: units per direction, 768 (so 1536 out).
        lstm_dropout: dropout between consecutive LSTM layers, 0.4.
        lstm_implementation: which LSTM runs, same weights either way:
            `"auto"` (default) is `models.recurrent.FusedLSTM`, whose input
            projection is one matmul before the time loop, except with
            TensorFlow on a GPU, where it keeps Keras' cuDNN kernel;
            `"fused"` always runs the fused loop; `"keras"` is plain
            `keras.layers.LSTM` (its per-step loop on CPUs), kept to
            measure one against the other.
        attention_heads: heads of the self-attention, 12.
        attention_key_dim: size of each head, 128.
        attention_dropout: dropout on the attention weights, 0.
        pooling_dim: hidden width of the attention-pooling scorer, 768.
        pooling_dropout: dropout inside the attention-pooling scorer,
            after its tanh layer, 0.2.
        layer_norm_epsilon: epsilon of every LayerNormalization, 1e-5
            (PyTorch's default, which the notes' model used).
        classifier_units: hidden widths of the classifier, (768, 384, 192).
        classifier_activation: activation between classifier layers, GELU.
        classifier_dropout: dropout between classifier layers, 0.4.
        focal_gamma: focal loss exponent, 2.0.
        label_smoothing: focal loss label smoothing, 0.1.
        learning_rate: AdamW peak learning rate, 1e-3.
        weight_decay: AdamW decoupled weight decay, 5e-4.
        beta_1: AdamW's decay rate of the gradient's running mean, 0.9.
        beta_2: AdamW's decay rate of the squared gradient's running
            mean, 0.999.
        restart_epochs: first period of the cosine decay with warm
            restarts, in epochs (converted to steps), 20.
        restart_t_mul: each period is this many times the previous, 2.
        min_learning_rate: floor of the cosine decay, 1e-6.
        clipnorm: global gradient-norm clip, 1.0.
        batch_size: training batch size, 48.
        epochs: maximum number of training epochs, 150.
        patience: early-stopping patience in epochs on val_loss (best
            weights restored), 25.
    """

    input_kind: ClassVar[str] = "features"

    input_shape: tuple = (None, 1280)
    num_classes: int = 4
    projection_dim: int = 768
    projection_dropout: float = 0.2
    lstm_layers: int = 4
    lstm_units: int = 768
    lstm_dropout: float = 0.4
    lstm_implementation: str = "auto"
    attention_heads: int = 12
    attention_key_dim: int = 128
    attention_dropout: float = 0.0
    pooling_dim: int = 768
    pooling_dropout: float = 0.2
    layer_norm_epsilon: float = 1e-5
    classifier_units: tuple = (768, 384, 192)
    classifier_activation: str = "gelu"
    classifier_dropout: float = 0.4
    focal_gamma: float = 2.0
    label_smoothing: float = 0.1
    learning_rate: float = 1e-3
    weight_decay: float = 5e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    restart_epochs: int = 20
    restart_t_mul: float = 2.0
    min_learning_rate: float = 1e-6
    clipnorm: float = 1.0
    batch_size: int = 48
    epochs: int = 150
    patience: int = 25

    def validate(self):
        super().validate()
        check_input_rank(self, 2, "(T, D)")
        if self.input_shape[1] is None:
            raise ValueError(
                f"input_shape must give the feature dimension D in (T, D), "
                f"got {self.input_shape!r}"
            )
        if self.lstm_implementation not in LSTM_IMPLEMENTATIONS:
            raise ValueError(
                f"lstm_implementation must be one of {', '.join(LSTM_IMPLEMENTATIONS)}, "
                f"got {self.lstm_implementation!r}"
            )
        if self.num_classes < 2:
            raise ValueError(
                f"num_classes must be >= 2 for a softmax classifier, got {self.num_classes!r}"
            )
        check_positive(
            self,
            "projection_dim",
            "lstm_layers",
            "lstm_units",
            "attention_heads",
            "attention_key_dim",
            "pooling_dim",
            "classifier_units",
            "restart_epochs",
            "restart_t_mul",
            "clipnorm",
            "min_learning_rate",
            "layer_norm_epsilon",
        )
        for name in ("projection_dim", "lstm_layers", "lstm_units", "attention_heads",
                     "attention_key_dim", "pooling_dim", "restart_epochs"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if any(not isinstance(u, int) for u in self.classifier_units):
            raise ValueError(
                f"classifier_units must be positive integers, got {self.classifier_units!r}"
            )
        check_rate(
            self,
            "projection_dropout",
            "lstm_dropout",
            "attention_dropout",
            "pooling_dropout",
            "classifier_dropout",
            "label_smoothing",
        )
        try:
            keras.activations.get(self.classifier_activation)
        except ValueError:
            raise ValueError(
                f"classifier_activation must be a Keras activation name, "
                f"got {self.classifier_activation!r}"
            ) from None
        if not self.focal_gamma >= 0:
            raise ValueError(f"focal_gamma must be >= 0, got {self.focal_gamma!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        check_rate(self, "beta_1", "beta_2")
        if not self.min_learning_rate < self.learning_rate:
            raise ValueError(
                f"min_learning_rate must be below learning_rate {self.learning_rate!r}, "
                f"got {self.min_learning_rate!r}"
            )


@keras.saving.register_keras_serializable(package="video_suite")
class NonEmptyMask(keras.layers.Layer):
    """Marks the first step real in rows whose mask has no real step.

    Rows with at least one real step pass through unchanged. The LSTMs get
    this mask so that a fully masked row cannot reach the cuDNN kernel
    (which rejects it); everything downstream of the LSTMs uses the
    original mask, so the extra step never counts.

    Example:

    >>> NonEmptyMask()(np.array([[True, False], [False, False]])).numpy()
    array([[ True, False],
           [ True, False]])
    """

    def call(self, mask):
        mask = ops.cast(mask, "bool")
        position = ops.cumsum(ops.ones_like(mask, dtype="int32"), axis=1)
        empty = ops.logical_not(ops.any(mask, axis=1, keepdims=True))
        return ops.logical_or(mask, ops.logical_and(empty, position == 1))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, mask):
        return keras.KerasTensor(mask.shape, dtype="bool")


@keras.saving.register_keras_serializable(package="video_suite")
class KeyPaddingMask(keras.layers.Layer):
    """Turns a [B, T] frame mask into a [B, 1, T] attention mask over keys.

    `MultiHeadAttention` broadcasts it over queries and heads, so no query
    attends to a padded frame.

    Example:

    >>> KeyPaddingMask()(np.array([[True, False]])).shape
    TensorShape([1, 1, 2])
    """

    def call(self, mask):
        return ops.expand_dims(ops.cast(mask, "bool"), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, input_shape[1])

    def compute_output_spec(self, mask):
        return keras.KerasTensor((mask.shape[0], 1, mask.shape[1]), dtype="bool")


@keras.saving.register_keras_serializable(package="video_suite")
class AttentionPooling(keras.layers.Layer):
    """Weighted sum over time with learned, masked softmax weights.

    Each frame gets a score `w2 . dropout(tanh(W1 x_t + b1)) + b2`; the
    softmax runs over the real frames only and the output is
    `sum_t a_t x_t`. A row with no real frame gets all-zero weights and a
    zero output instead of NaN. The dropout acts in training only.

    Args:
        hidden_dim: width of the tanh scoring layer.
        dropout: dropout rate between the tanh layer and the score.
        kernel_initializer: initializer of both scoring kernels.

    Example:

    >>> pool = AttentionPooling(hidden_dim=4)
    >>> x = np.ones((2, 3, 6), "float32")
    >>> pool(x, mask=np.array([[True, True, False], [False, False, False]])).shape
    TensorShape([2, 6])
    """

    def __init__(self, hidden_dim=768, dropout=0.0, kernel_initializer=KERNEL_INIT, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.hidden = keras.layers.Dense(
            hidden_dim,
            activation="tanh",
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="score_hidden",
        )
        self.hidden_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="score_dropout"
        )
        self.score = keras.layers.Dense(
            1, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="score"
        )

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.score.build((*input_shape[:-1], self.hidden_dim))
        self.built = True

    def pooling_weights(self, inputs, mask=None, training=None):
        """The softmax weights [B, T] the pooling takes the sum with: they
        sum to 1 over each row's real frames, 0 at padding (and 0 in a row
        without a real frame). `--explain` shows them."""
        hidden = self.hidden_dropout(self.hidden(inputs), training=training)
        scores = ops.squeeze(self.score(hidden), axis=-1)
        if mask is None:
            mask = ops.ones_like(scores, dtype="bool")
        mask = ops.cast(mask, "bool")
        # Padded scores drop far below the real ones; subtracting the row
        # maximum keeps exp() finite, and zeroing padded terms afterwards
        # makes their weight exactly 0 whatever garbage they held.
        scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        scores = scores - ops.max(scores, axis=1, keepdims=True)
        weights = ops.exp(scores) * ops.cast(mask, scores.dtype)
        # A row with a real frame sums to >= 1 (its maximum gives exp(0));
        # a row with none sums to 0 and keeps zero weights.
        total = ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1e-9)
        return weights / total

    def call(self, inputs, mask=None, training=None):
        weights = self.pooling_weights(inputs, mask, training=training)
        return ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


def lstm_layer(config: BiLSTMAttentionConfig):
    """One direction's LSTM, as `config.lstm_implementation` chooses.

    Every choice has the same variables under the same paths (kernel,
    recurrent kernel, bias of `keras.layers.LSTMCell`), so weights saved
    with one load into the others.
    """
    arguments = dict(return_sequences=True, kernel_initializer=KERNEL_INIT)
    if config.lstm_implementation == "keras":
        return keras.layers.LSTM(config.lstm_units, **arguments)
    fused = "auto" if config.lstm_implementation == "auto" else True
    return FusedLSTM(config.lstm_units, fused=fused, **arguments)


def build_bilstm_attention(config: BiLSTMAttentionConfig) -> keras.Model:
    """Builds the BiLSTM + attention classifier as a functional model.

    Inputs are `features` [B, T, D] float32 and `mask` [B, T] bool (True =
    real frame, padding at the end); the output is `logits` [B, classes].

    Example:

    >>> config = BiLSTMAttentionConfig(input_shape=(None, 16), lstm_units=8)
    >>> model = build_bilstm_attention(config)
    >>> model.output_shape
    (None, 4)
    """
    features = keras.Input(shape=config.input_shape, name="features", dtype="float32")
    mask = keras.Input(shape=config.input_shape[:1], name="mask", dtype="bool")

    x = keras.layers.Dense(
        config.projection_dim, kernel_initializer=KERNEL_INIT, name="projection"
    )(features)
    x = keras.layers.LayerNormalization(
        epsilon=config.layer_norm_epsilon, name="projection_norm"
    )(x)
    x = keras.layers.Activation("gelu", name="projection_gelu")(x)
    x = keras.layers.Dropout(config.projection_dropout, name="projection_dropout")(x)

    lstm_mask = NonEmptyMask(name="lstm_mask")(mask)
    for index in range(config.lstm_layers):
        if index:
            x = keras.layers.Dropout(config.lstm_dropout, name=f"lstm_dropout_{index}")(x)
        x = keras.layers.Bidirectional(
            lstm_layer(config), name=f"bilstm_{index + 1}"
        )(x, mask=lstm_mask)

    attention = keras.layers.MultiHeadAttention(
        num_heads=config.attention_heads,
        key_dim=config.attention_key_dim,
        dropout=config.attention_dropout,
        kernel_initializer=KERNEL_INIT,
        name="self_attention",
    )(x, x, attention_mask=KeyPaddingMask(name="key_padding_mask")(mask))
    x = keras.layers.Add(name="attention_residual")([x, attention])
    x = keras.layers.LayerNormalization(
        epsilon=config.layer_norm_epsilon, name="attention_norm"
    )(x)

    x = AttentionPooling(
        config.pooling_dim, dropout=config.pooling_dropout, name="attention_pooling"
    )(x, mask=mask)

    for index, units in enumerate(config.classifier_units):
        x = keras.layers.Dense(
            units, kernel_initializer=KERNEL_INIT, name=f"classifier_dense_{index + 1}"
        )(x)
        x = keras.layers.LayerNormalization(
            epsilon=config.layer_norm_epsilon, name=f"classifier_norm_{index + 1}"
        )(x)
        x = keras.layers.Activation(
            config.classifier_activation, name=f"classifier_activation_{index + 1}"
        )(x)
        x = keras.layers.Dropout(
            config.classifier_dropout, name=f"classifier_dropout_{index + 1}"
        )(x)
    # float32 under a mixed-precision policy: logits, loss and the exported
    # signature keep full precision.
    logits = keras.layers.Dense(
        config.num_classes, kernel_initializer=KERNEL_INIT, dtype="float32", name="logits"
    )(x)
    return keras.Model({"features": features, "mask": mask}, logits, name="bilstm_attention")


def bilstm_attention_training(config: BiLSTMAttentionConfig, steps_per_epoch: int) -> TrainingSpec:
    """AdamW with cosine warm restarts, focal loss, early stopping on val_loss."""
    steps_per_epoch = max(int(steps_per_epoch), 1)
    schedule = keras.optimizers.schedules.CosineDecayRestarts(
        initial_learning_rate=config.learning_rate,
        first_decay_steps=config.restart_epochs * steps_per_epoch,
        t_mul=config.restart_t_mul,
        m_mul=1.0,
        alpha=config.min_learning_rate / config.learning_rate,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        global_clipnorm=config.clipnorm,
    )
    return TrainingSpec(
        optimizer=optimizer,
        loss=FocalLoss(gamma=config.focal_gamma, label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        monitor="val_loss",
        monitor_mode="min",
    )


def feature_example_batch(config, batch_size: int, seed: int = 0):
    """Random right-padded feature sequences, masks and integer labels.

    Row 0 always has padding; every row has at least one real frame.
    """
    rng = np.random.default_rng(seed)
    steps = config.input_shape[0] or 6
    dim = config.input_shape[1]
    lengths = rng.integers(1, steps + 1, size=batch_size)
    lengths[0] = max(1, steps // 2)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    features = rng.normal(size=(batch_size, steps, dim)).astype("float32")
    features[~mask] = 0.0
    labels = rng.integers(0, config.num_classes, size=(batch_size,))
    return {"features": features, "mask": mask}, labels


def serving_outputs(model, logits):
    """The exported signature returns logits and softmax probabilities."""
    return {"logits": logits, "probabilities": ops.softmax(logits, axis=-1)}


PRESETS = {
    "tiny": dict(
        input_shape=(None, 8), num_classes=3, projection_dim=8, lstm_layers=2,
        lstm_units=4, attention_heads=2, attention_key_dim=4, pooling_dim=4,
        classifier_units=(8, 6, 4),
    ),
    # 64 frames of 1280-d EfficientNet features, batch 8.
    "benchmark": dict(input_shape=(64, 1280), batch_size=8),
    # The latency benchmark: 64 frames of EfficientNet-B0 features.
    "latency": dict(input_shape=(64, 1280)),
    # The embedded synthetic features: 227k parameters instead of 65M.
    # Measured on 2 shared CPU cores, the default command takes 2.3-2.7
    # minutes (extraction 6 s, 60 epochs 2-2.5 min) and reaches 0.81-0.86
    # test accuracy on the 4-class motion task (chance 0.25).
    "demo": dict(
        projection_dim=64, lstm_layers=2, lstm_units=64, attention_heads=4,
        attention_key_dim=16, pooling_dim=64, classifier_units=(64, 32, 16),
        batch_size=32, epochs=60,
    ),
}

def bilstm_attention_explanation(model):
    """The attention-pooling weights: a curve over the steps that sums to 1
    over the real ones (`AttentionPooling.pooling_weights`)."""
    pooling, values = sub_model(model, "attention_pooling")
    return AttentionCurve(
        "how much each moment counts in the video's answer (attention-pooling weights)",
        lambda inputs: pooling.pooling_weights(values(inputs, training=False), inputs["mask"]),
    )


register(
    Family(
        name="bilstm_attention",
        config=BiLSTMAttentionConfig(),
        build=build_bilstm_attention,
        training=bilstm_attention_training,
        example_batch=feature_example_batch,
        serving_outputs=serving_outputs,
        presets=PRESETS,
        explanation=bilstm_attention_explanation,
        export_refusals={
            "litert-int8": (
                "full-integer int8 changes its decisions (top-1 agreement 0.95 with Keras, "
                "flipped examples had float margins above 0.99): the int8 LSTM, masked attention "
                "and LayerNorm kernels of TFLite lose the signal; export litert (float) instead"
            ),
        },
        latency=LatencyCase(preset="latency", frames=64, backbone="efficientnet_b0"),
        speedup_baseline={"lstm_implementation": "keras"},
    )
)
