"""Losses shared by the model families.

Every loss here is registered with Keras, so a `.keras` file that was
compiled with it reloads without `custom_objects`.
"""

import keras
from keras import ops

# Frame-score targets use this value (anything < 0) at padded steps; real
# importance targets are in [0, 1]. `data.summarization.PAD_TARGET` pads
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
