"""Perceiver attention layers: a latent array that reads a token set.

A Perceiver keeps a small learned array of N latents and lets it attend to
M input tokens (cross-attention, cost O(M*N)), then refines the latents with
self-attention (cost O(N^2) per block), so the cost never grows as M^2.

Every block is pre-norm with residual connections:

    x = x + Attention(LayerNorm(x), ...)
    x = x + GEGLU(LayerNorm(x))

and the feed-forward is a GEGLU: `Dense(2 * hidden)` split into a value and
a gate, `value * gelu(gate)`, then `Dense(dim)`.
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="video_suite")
class GEGLUFeedForward(keras.layers.Layer):
    """Gated-GELU feed-forward: `Dense(dim)(a * gelu(b))`, `[a, b] = Dense(2h)(x)`.

    Args:
        multiplier: the hidden width is `multiplier * dim`, where `dim` is
            the input's last axis.
        dropout: dropout rate on the output.

    Example:

    >>> layer = GEGLUFeedForward(multiplier=4)
    >>> tuple(layer(keras.ops.ones((2, 5, 8))).shape)
    (2, 5, 8)
    """

    def __init__(self, multiplier=4, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.multiplier = multiplier
        self.dropout = dropout
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        dim = input_shape[-1]
        hidden = self.multiplier * dim
        self.hidden = hidden
        self.expand = keras.layers.Dense(2 * hidden, dtype=self.dtype_policy, name="expand")
        self.expand.build(input_shape)
        self.project = keras.layers.Dense(dim, dtype=self.dtype_policy, name="project")
        self.project.build((*input_shape[:-1], hidden))

    def call(self, inputs, training=None):
        value, gate = ops.split(self.expand(inputs), 2, axis=-1)
        hidden = value * keras.activations.gelu(gate, approximate=False)
        return self.dropout_layer(self.project(hidden), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(multiplier=self.multiplier, dropout=self.dropout)
        return config


class _AttentionBlock(keras.layers.Layer):
    """What the cross- and self-attention blocks share: their hyperparameters,
    the attention layer, its dropout and the pre-norm GEGLU feed-forward."""

    def __init__(self, num_heads, head_dim, ff_multiplier, dropout, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.ff_multiplier = ff_multiplier
        self.dropout = dropout

    def _add_attention_and_feed_forward(self):
        # Sublayers follow this layer's dtype policy, as in keras-hub.
        dtype = self.dtype_policy
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads, self.head_dim, dtype=dtype, name="attention"
        )
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=dtype)
        self.ff_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=dtype, name="ff_norm")
        self.feed_forward = GEGLUFeedForward(
            self.ff_multiplier, self.dropout, dtype=dtype, name="feed_forward"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            ff_multiplier=self.ff_multiplier,
            dropout=self.dropout,
        )
        return config


@keras.saving.register_keras_serializable(package="video_suite")
class CrossAttentionBlock(_AttentionBlock):
    """Latents attend to tokens, then a GEGLU feed-forward; pre-norm, residual.

    Both the latents (queries) and the tokens (keys and values) get their own
    LayerNorm. Tokens may have another width than the latents: the key and
    value projections map them straight to the heads.

    Args:
        num_heads: attention heads (the Perceiver uses 1).
        head_dim: width of each head.
        ff_multiplier: GEGLU hidden width as a multiple of the latent width.
        dropout: dropout on the attention and feed-forward outputs.

    Example:

    >>> block = CrossAttentionBlock(num_heads=1, head_dim=16)
    >>> tuple(block(keras.ops.ones((2, 4, 32)), keras.ops.ones((2, 50, 24))).shape)
    (2, 4, 32)
    """

    def __init__(self, num_heads=1, head_dim=64, ff_multiplier=4, dropout=0.0, **kwargs):
        super().__init__(num_heads, head_dim, ff_multiplier, dropout, **kwargs)
        self.latent_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="latent_norm"
        )
        self.token_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="token_norm"
        )
        self._add_attention_and_feed_forward()

    def build(self, latents_shape, tokens_shape):
        self.latent_norm.build(latents_shape)
        self.token_norm.build(tokens_shape)
        self.attention.build(latents_shape, tokens_shape)
        self.ff_norm.build(latents_shape)
        self.feed_forward.build(latents_shape)

    def call(self, latents, tokens, training=None):
        tokens = self.token_norm(tokens)
        attended = self.attention(
            self.latent_norm(latents), tokens, tokens, training=training
        )
        latents = latents + self.attention_dropout(attended, training=training)
        return latents + self.feed_forward(self.ff_norm(latents), training=training)

    def compute_output_shape(self, latents_shape, tokens_shape):
        return tuple(latents_shape)


@keras.saving.register_keras_serializable(package="video_suite")
class SelfAttentionBlock(_AttentionBlock):
    """Multi-head self-attention, then a GEGLU feed-forward; pre-norm, residual.

    Args:
        num_heads: attention heads (the Perceiver's latent blocks use 8).
        head_dim: width of each head.
        ff_multiplier: GEGLU hidden width as a multiple of the input width.
        dropout: dropout on the attention and feed-forward outputs.

    Example:

    >>> block = SelfAttentionBlock(num_heads=2, head_dim=8)
    >>> tuple(block(keras.ops.ones((2, 6, 16))).shape)
    (2, 6, 16)
    """

    def __init__(self, num_heads=8, head_dim=64, ff_multiplier=4, dropout=0.0, **kwargs):
        super().__init__(num_heads, head_dim, ff_multiplier, dropout, **kwargs)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="attention_norm"
        )
        self._add_attention_and_feed_forward()

    def build(self, input_shape):
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.ff_norm.build(input_shape)
        self.feed_forward.build(input_shape)

    def call(self, inputs, training=None):
        normed = self.attention_norm(inputs)
        attended = self.attention(normed, normed, normed, training=training)
        x = inputs + self.attention_dropout(attended, training=training)
        return x + self.feed_forward(self.ff_norm(x), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="video_suite")
class Perceiver(keras.layers.Layer):
    """Perceiver module: tokens [B, M, C] -> one pooled vector [B, latent_dim].

    With `cross_blocks >= 1`: a learned latent array [num_latents,
    latent_dim] (truncated normal, stddev 0.02) goes through `cross_blocks`
    groups of one `CrossAttentionBlock` (latents attend to the tokens)
    followed by `self_blocks // cross_blocks` latent `SelfAttentionBlock`s.
    Every block has its own weights. The tokens enter only as keys and
    values of the cross-attention, so no M x M attention is ever formed.

    With `cross_blocks == 0` there is no latent array: the `self_blocks`
    self-attention blocks run on the tokens themselves (M x M attention).
    Tokens whose width differs from `latent_dim` are first projected to it
    by a Dense layer (no projection when the widths agree).

    The result is averaged over the latents (or tokens) and layer-normed.

    Args:
        num_latents: N, the number of latents.
        latent_dim: width of the latents and of the self-attention blocks.
        cross_blocks: number of cross-attention blocks (0 or more).
        self_blocks: number of self-attention blocks; a multiple of
            `cross_blocks` when `cross_blocks >= 1`.
        cross_heads, cross_head_dim: cross-attention heads (1 of 64).
        self_heads, self_head_dim: self-attention heads (8 of 64).
        ff_multiplier: GEGLU hidden width as a multiple of `latent_dim`.
        dropout: dropout on every attention and feed-forward output.

    Example:

    >>> perceiver = Perceiver(num_latents=4, latent_dim=16, cross_blocks=1,
    ...                       self_blocks=2, cross_head_dim=8, self_heads=2,
    ...                       self_head_dim=8)
    >>> tuple(perceiver(keras.ops.ones((2, 30, 12))).shape)
    (2, 16)
    """

    def __init__(
        self,
        num_latents=256,
        latent_dim=512,
        cross_blocks=1,
        self_blocks=1,
        cross_heads=1,
        cross_head_dim=64,
        self_heads=8,
        self_head_dim=64,
        ff_multiplier=4,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if cross_blocks < 0 or self_blocks < 0 or cross_blocks + self_blocks < 1:
            raise ValueError(
                "Perceiver needs cross_blocks >= 0, self_blocks >= 0 and at least "
                f"one block, got cross_blocks={cross_blocks}, self_blocks={self_blocks}"
            )
        if cross_blocks and self_blocks % cross_blocks:
            raise ValueError(
                f"self_blocks ({self_blocks}) must be a multiple of cross_blocks "
                f"({cross_blocks})"
            )
        self.num_latents = num_latents
        self.latent_dim = latent_dim
        self.cross_blocks = cross_blocks
        self.self_blocks = self_blocks
        self.cross_heads = cross_heads
        self.cross_head_dim = cross_head_dim
        self.self_heads = self_heads
        self.self_head_dim = self_head_dim
        self.ff_multiplier = ff_multiplier
        self.dropout = dropout
        self.cross_layers = [
            CrossAttentionBlock(
                cross_heads, cross_head_dim, ff_multiplier, dropout, dtype=self.dtype_policy,
                name=f"cross_{i}",
            )
            for i in range(cross_blocks)
        ]
        self.self_layers = [
            SelfAttentionBlock(
                self_heads, self_head_dim, ff_multiplier, dropout, dtype=self.dtype_policy,
                name=f"self_{i}",
            )
            for i in range(self_blocks)
        ]
        self.output_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="output_norm"
        )
        self.token_projection = None

    def build(self, input_shape):
        batch, tokens, width = input_shape
        latent_shape = (batch, self.num_latents, self.latent_dim)
        if self.cross_blocks:
            self.latents = self.add_weight(
                shape=(self.num_latents, self.latent_dim),
                initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                name="latents",
            )
        else:
            latent_shape = (batch, tokens, self.latent_dim)
            if width != self.latent_dim:
                self.token_projection = keras.layers.Dense(
                    self.latent_dim, dtype=self.dtype_policy, name="token_projection"
                )
                self.token_projection.build(input_shape)
        for block in self.cross_layers:
            block.build(latent_shape, input_shape)
        for block in self.self_layers:
            block.build(latent_shape)
        self.output_norm.build((batch, self.latent_dim))

    def call(self, tokens, training=None):
        if self.cross_blocks:
            batch = ops.shape(tokens)[0]
            latents = ops.cast(self.latents, tokens.dtype)
            x = ops.broadcast_to(
                latents[None], (batch, self.num_latents, self.latent_dim)
            )
            per_cross = self.self_blocks // self.cross_blocks
            for index, cross in enumerate(self.cross_layers):
                x = cross(x, tokens, training=training)
                for block in self.self_layers[index * per_cross : (index + 1) * per_cross]:
                    x = block(x, training=training)
        else:
            x = tokens
            if self.token_projection is not None:
                x = self.token_projection(x)
            for block in self.self_layers:
                x = block(x, training=training)
        return self.output_norm(ops.mean(x, axis=1))

    def cross_attention_maps(self, tokens):
        """The cross-attention from the latents to each token [B, M],
        averaged over heads, latents and cross-attention blocks, replaying
        an inference call block by block (`--explain` shows it)."""
        if not self.cross_blocks:
            raise ValueError(
                "this Perceiver has no cross-attention (cross_blocks=0: self-attention on "
                "the tokens), so it has no cross-attention map"
            )
        batch = ops.shape(tokens)[0]
        x = ops.broadcast_to(
            ops.cast(self.latents, tokens.dtype)[None], (batch, self.num_latents, self.latent_dim)
        )
        per_cross = self.self_blocks // self.cross_blocks
        maps = []
        for index, cross in enumerate(self.cross_layers):
            normed = cross.token_norm(tokens)
            _, scores = cross.attention(
                cross.latent_norm(x), normed, normed, return_attention_scores=True, training=False
            )  # [B, heads, latents, tokens]
            maps.append(ops.mean(scores, axis=(1, 2)))
            x = cross(x, tokens, training=False)
            for block in self.self_layers[index * per_cross:(index + 1) * per_cross]:
                x = block(x, training=False)
        return ops.mean(ops.stack(maps), axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.latent_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_latents=self.num_latents,
            latent_dim=self.latent_dim,
            cross_blocks=self.cross_blocks,
            self_blocks=self.self_blocks,
            cross_heads=self.cross_heads,
            cross_head_dim=self.cross_head_dim,
            self_heads=self.self_heads,
            self_head_dim=self.self_head_dim,
            ff_multiplier=self.ff_multiplier,
            dropout=self.dropout,
        )
        return config


@keras.saving.register_keras_serializable(package="video_suite")
class VideoPositionEncoding(keras.layers.Layer):
    """Adds a fixed sinusoidal (t, h, w) encoding to a [B, T, H, W, C] map.

    Attention treats its tokens as a set, so the flattened feature map needs
    its positions written into it. The encoding has no parameters and works
    for any T, H, W: `2 * (C // 6)` channels per axis carry sin/cos of the
    frame, row and column index at geometric frequencies 1 / 10000^(k/K);
    the remaining `C % 6` channels get nothing.

    Example:

    >>> layer = VideoPositionEncoding()
    >>> tuple(layer(keras.ops.zeros((1, 2, 3, 3, 12))).shape)
    (1, 2, 3, 3, 12)
    """

    def call(self, inputs):
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        pairs = channels // 6
        if pairs == 0:
            return inputs
        exponents = ops.arange(pairs, dtype="float32") / pairs
        frequencies = ops.exp(-math.log(10000.0) * exponents)

        def axis_encoding(length):
            angles = ops.arange(length, dtype="float32")[:, None] * frequencies[None]
            return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

        t, h, w = shape[1], shape[2], shape[3]
        width = 2 * pairs
        encoding = ops.concatenate(
            [
                ops.broadcast_to(axis_encoding(t)[:, None, None], (t, h, w, width)),
                ops.broadcast_to(axis_encoding(h)[None, :, None], (t, h, w, width)),
                ops.broadcast_to(axis_encoding(w)[None, None, :], (t, h, w, width)),
                ops.zeros((t, h, w, channels - 3 * width)),
            ],
            axis=-1,
        )
        return inputs + ops.cast(encoding[None], inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

