"""Losses shared by the model families.

Every loss here is registered with Keras, so a `.keras` file that was
compiled with it reloads without `custom_objects`.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="video_suite")
class FocalLoss(keras.losses.Loss):
    """Multi-class focal loss with label smoothing, on sparse integer labels.

    For one example with integer label `y`, class probabilities `p` and `K`
    classes, the smoothed target is `q = (1 - s) * one_hot(y) + s / K` and
    the loss is

        -sum_k q_k * (1 - p_k) ** gamma * log(p_k).

    `gamma` down-weights classes the model already predicts well, so the
    gradient concentrates on the hard examples; `gamma = 0` and `s = 0`
    give plain sparse categorical cross-entropy. There is no per-class
    `alpha` weight (the design notes use none). With `from_logits=True`,
    `log(p)` comes from a log-softmax, so large logits stay finite.

    Args:
        gamma: focusing exponent, >= 0. Defaults to 2.0.
        label_smoothing: `s` above, in [0, 1). Defaults to 0.1.
        from_logits: whether `y_pred` holds logits (the default) or
            probabilities that sum to 1.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: loss name.
        dtype: dtype of the loss computation.

    Example:

    >>> loss = FocalLoss(gamma=2.0, label_smoothing=0.1)
    >>> value = loss([0, 2], [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> round(float(value), 4)
    0.164
    """

    def __init__(
        self,
        gamma: float = 2.0,
        label_smoothing: float = 0.1,
        from_logits: bool = True,
        reduction="sum_over_batch_size",
        name: str = "focal_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        gamma = float(gamma)
        label_smoothing = float(label_smoothing)
        if not gamma >= 0.0:
            raise ValueError(f"FocalLoss: gamma must be >= 0, got {gamma!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"FocalLoss: label_smoothing must be in [0, 1), got {label_smoothing!r}"
            )
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        num_classes = y_pred.shape[-1]
        # Sparse labels arrive as [B] or [B, 1].
        labels = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])
        target = ops.one_hot(labels, num_classes, dtype=y_pred.dtype)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + (
                self.label_smoothing / num_classes
            )
        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
            log_probs = ops.log(
                ops.clip(probs, keras.config.epsilon(), 1.0 - keras.config.epsilon())
            )
        probs = ops.exp(log_probs)
        if self.gamma:
            # Clip at zero: rounding can give p slightly above 1.
            weight = ops.power(ops.maximum(1.0 - probs, 0.0), self.gamma)
        else:
            weight = ops.ones_like(probs)
        return -ops.sum(target * weight * log_probs, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            gamma=self.gamma,
            label_smoothing=self.label_smoothing,
            from_logits=self.from_logits,
            dtype=self._dtype_policy.name,
        )
        return config



# Frame-score targets use this value (anything < 0) at padded steps; real
# importance targets are in [0, 1]. `data.sequences.sequence_dataset` pads
# with it, so the losses need no separate mask input.
PADDED_TARGET = -1.0


def _valid_steps(y_true, dtype):
    return ops.cast(ops.greater_equal(y_true, 0.0), dtype)


@keras.saving.register_keras_serializable(package="video_suite")
def masked_mean_squared_error(y_true, y_pred):
    """Mean squared error over the real steps of each sequence.

    Steps whose target is negative (padding) are left out. Returns one value
    per sequence, [B]; a sequence without a real step gives 0.

    Example:

    >>> float(masked_mean_squared_error([[0.5, -1.0]], [[0.25, 9.0]])[0])
    0.0625
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    valid = _valid_steps(y_true, y_pred.dtype)
    count = ops.maximum(ops.sum(valid, axis=-1), 1.0)
    return ops.sum(valid * ops.square(y_pred - y_true), axis=-1) / count


@keras.saving.register_keras_serializable(package="video_suite")
class SpearmanRankingLoss(keras.losses.Loss):
    """One minus a differentiable Spearman correlation, per sequence.

    For every sequence of frame scores `p` and importance targets `t` (both
    [T], padded steps marked by a negative target and left out):

    - the soft rank of frame i is `sum_j sigmoid((p_i - p_j) / temperature)`
      over the real frames j, a smooth version of its rank that tends to the
      hard rank as `temperature` goes to 0;
    - the target rank is the hard mid-rank `#{t_j < t_i} + #{t_j = t_i} / 2`
      (no gradient is needed there, and ties share their rank);
    - the loss is `1 - pearson(soft_rank(p), rank(t))`, plus
      `mse_weight * mean((p - t)^2)` over the real frames.

    A rank objective only cares about the order of the scores, which is all
    the knapsack summary and Kendall / Spearman read; the optional MSE term
    anchors their scale to the targets. The [T, T] pairwise matrix is
    written with `keras.ops`, so the loss compiles in graph mode on every
    backend. A constant target gives correlation 0 (loss 1) instead of NaN.

    Args:
        temperature: softness of the ranks, > 0. Defaults to 0.1, suited to
            scores in [0, 1].
        mse_weight: weight of the MSE term, >= 0. Defaults to 0.
        reduction: Keras loss reduction. Defaults to `"sum_over_batch_size"`
            (the mean over sequences).
        name: loss name.
        dtype: dtype of the loss computation.

    Example:

    >>> loss = SpearmanRankingLoss(temperature=1e-3)
    >>> # Target ranks 1, 3, 2, 4 against predicted ranks 1, 2, 3, 4: rho 0.8.
    >>> round(float(loss([[0.1, 0.4, 0.3, 0.9]], [[0.2, 0.3, 0.5, 0.8]])), 4)
    0.2
    """

    def __init__(
        self,
        temperature: float = 0.1,
        mse_weight: float = 0.0,
        reduction="sum_over_batch_size",
        name: str = "spearman_ranking_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        temperature, mse_weight = float(temperature), float(mse_weight)
        if not temperature > 0.0:
            raise ValueError(
                f"SpearmanRankingLoss: temperature must be > 0, got {temperature!r}"
            )
        if not mse_weight >= 0.0:
            raise ValueError(
                f"SpearmanRankingLoss: mse_weight must be >= 0, got {mse_weight!r}"
            )
        self.temperature = temperature
        self.mse_weight = mse_weight

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        valid = _valid_steps(y_true, y_pred.dtype)  # [B, T]
        other = ops.expand_dims(valid, 1)  # [B, 1, T]: which j count

        pairs = (ops.expand_dims(y_pred, 2) - ops.expand_dims(y_pred, 1)) / self.temperature
        soft_rank = ops.sum(ops.sigmoid(pairs) * other, axis=-1)

        target_pairs = ops.expand_dims(y_true, 2) - ops.expand_dims(y_true, 1)
        below = ops.cast(ops.greater(target_pairs, 0.0), y_pred.dtype)
        tied = ops.cast(ops.equal(target_pairs, 0.0), y_pred.dtype)
        target_rank = ops.stop_gradient(ops.sum((below + 0.5 * tied) * other, axis=-1))

        loss = 1.0 - _masked_pearson(soft_rank, target_rank, valid)
        if self.mse_weight:
            loss = loss + self.mse_weight * masked_mean_squared_error(y_true, y_pred)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            temperature=self.temperature,
            mse_weight=self.mse_weight,
            dtype=self._dtype_policy.name,
        )
        return config


def _masked_pearson(x, y, valid, epsilon=1e-8):
    count = ops.maximum(ops.sum(valid, axis=-1, keepdims=True), 1.0)
    dx = (x - ops.sum(x * valid, axis=-1, keepdims=True) / count) * valid
    dy = (y - ops.sum(y * valid, axis=-1, keepdims=True) / count) * valid
    covariance = ops.sum(dx * dy, axis=-1)
    scale = ops.sqrt(ops.sum(dx * dx, axis=-1) * ops.sum(dy * dy, axis=-1) + epsilon)
    return covariance / scale
