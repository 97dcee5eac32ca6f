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
