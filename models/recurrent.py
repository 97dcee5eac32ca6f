"""An LSTM whose input projections leave the time loop.

`keras.layers.LSTM` without cuDNN runs its cell once per step, and each
step multiplies that step's input by the input kernel: for the BiLSTM's
[B, 1536] inputs that is a [B, 1536] x [1536, 3072] product inside the
recurrence, T times per direction, plus the same again in the backward
pass. None of it depends on the recurrent state. `FusedLSTM` computes
every step's input projection as one [B * T, D] x [D, 4U] matmul before the
loop (what PyTorch's CPU LSTM does) and keeps only `h x U` and the gates in
the loop, which runs through `keras.ops.scan`, so the layer is built from
`keras.ops` alone and runs on every backend.

It is a subclass of `keras.layers.LSTM` with the same cell, so it has the
same weights (kernel [D, 4U], recurrent kernel [U, 4U], bias [4U], gates
i, f, c, o), the same initializers and the same variable paths: a
`.weights.h5` or `.keras` file written with `keras.layers.LSTM` (also inside
`keras.layers.Bidirectional`) loads into it and the reverse. Masks behave
as in `keras.layers.LSTM`: at a masked step the states keep their values,
and the output is the previous output, or zero with `zero_output_for_mask`
(which `Bidirectional` sets when it returns sequences).

Which loop runs is chosen when the layer is constructed, from the backend
and the devices (`fused="auto"`): on the TensorFlow backend with a GPU,
Keras' LSTM runs the cuDNN kernel, which takes masks and is faster than
any loop, so the layer keeps Keras' implementation there; everywhere else
(every CPU, and JAX or PyTorch, whose cuDNN paths refuse masks) it runs
the fused loop. `recurrent_dropout` and `unroll` also keep Keras' loop,
the only one that implements them.
"""

import keras
import numpy as np
from keras import ops

FUSED_CHOICES = ("auto", True, False)


def cudnn_would_run(layer):
    """True when `keras.layers.LSTM` with `layer`'s settings would run cuDNN
    here: TensorFlow backend, a GPU, tanh and sigmoid activations, a bias,
    no unrolling, no recurrent dropout (Keras' own conditions). The other
    backends' cuDNN paths refuse masks, so they never count."""
    cell = layer.cell
    return (
        keras.backend.backend() == "tensorflow"
        and layer.use_cudnn is not False
        and cell.activation in (keras.activations.tanh, keras.ops.tanh)
        and cell.recurrent_activation in (keras.activations.sigmoid, keras.ops.sigmoid)
        and cell.use_bias
        and not cell.recurrent_dropout
        and not layer.unroll
        and bool(keras.distribution.list_devices("gpu"))
    )


@keras.saving.register_keras_serializable(package="video_suite")
class FusedLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` with the input projection hoisted out of the loop.

    Takes every argument of `keras.layers.LSTM` and computes the same
    function with the same weights; see the module docstring for what
    changes. The input dropout (`dropout`) uses one mask for all steps, as
    the Keras cell does, so it is applied to the whole sequence before the
    projection.

    Args:
        units: width of the hidden state.
        fused: `"auto"` (default) runs the fused loop unless Keras' LSTM
            would run cuDNN here (TensorFlow backend with a GPU); `True`
            always runs the fused loop (refused with `recurrent_dropout` or
            `unroll`, which only Keras' loop implements); `False` always
            runs Keras' implementation.
        **kwargs: the arguments of `keras.layers.LSTM`.

    Example:

    >>> import numpy as np
    >>> lstm = FusedLSTM(4, return_sequences=True)
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    >>> mask = np.array([[True] * 5, [True, True, True, False, False]])
    >>> y = lstm(x, mask=mask)
    >>> tuple(y.shape)
    (2, 5, 4)
    >>> reference = keras.layers.LSTM(4, return_sequences=True)
    >>> reference.build(x.shape)
    >>> reference.set_weights(lstm.get_weights())
    >>> bool(np.allclose(reference(x, mask=mask), y, atol=1e-6))
    True
    """

    def __init__(self, units, fused="auto", **kwargs):
        super().__init__(units, **kwargs)
        if fused not in FUSED_CHOICES:
            raise ValueError(f"fused must be one of 'auto', True, False, got {fused!r}")
        if fused is True and (self.cell.recurrent_dropout or self.unroll):
            raise ValueError(
                "fused=True cannot run recurrent_dropout or unroll (only Keras' "
                "loop implements them); pass fused='auto' or fused=False"
            )
        self.fused = fused
        if fused == "auto":
            self.uses_fused_loop = not (
                cudnn_would_run(self) or self.cell.recurrent_dropout or self.unroll
            )
        else:
            self.uses_fused_loop = bool(fused)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self.uses_fused_loop:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        cell = self.cell
        inputs = sequences
        if training and 0.0 < cell.dropout < 1.0:
            # The cell draws one dropout mask per call and reuses it at every
            # step; RNN.call has already drawn it.
            step_mask = cell.get_dropout_mask(sequences[:, 0, :])
            inputs = inputs * ops.expand_dims(step_mask, 1)
        if self.go_backwards:
            # Keras runs a backward LSTM over the reversed sequence and returns
            # its outputs in that (processing) order; so does this loop.
            inputs = ops.flip(inputs, axis=1)
            if mask is not None:
                mask = ops.flip(mask, axis=1)

        # [B, T, D] x [D, 4U] as one matmul, then time-major for the loop.
        projected = ops.matmul(inputs, cell.kernel)
        if cell.use_bias:
            projected = projected + cell.bias
        projected = ops.transpose(projected, (1, 0, 2))
        real = None
        if mask is not None:
            real = ops.expand_dims(ops.transpose(ops.cast(mask, "bool")), -1)  # [T, B, 1]
        states_h, states_c = lstm_recurrence(
            projected,
            cell.recurrent_kernel,
            initial_state[0],
            initial_state[1],
            real,
            activation=cell.activation,
            recurrent_activation=cell.recurrent_activation,
        )
        outputs = states_h
        if real is not None:
            if self.zero_output_for_mask:
                outputs = ops.where(real, states_h, ops.zeros_like(states_h))
            else:
                # Keras' loop outputs the previous output at a masked step:
                # the state once a real step has been seen, zero before it
                # (whatever the initial state).
                seen = ops.cumsum(ops.cast(real, "int32"), axis=0) > 0
                outputs = ops.where(seen, states_h, ops.zeros_like(states_h))
        return outputs[-1], ops.transpose(outputs, (1, 0, 2)), [states_h[-1], states_c[-1]]

    def get_config(self):
        config = super().get_config()
        config["fused"] = self.fused
        return config


def lstm_recurrence(
    projected, recurrent_kernel, h0, c0, real=None, activation=None, recurrent_activation=None
):
    """The LSTM recurrence over precomputed input projections.

    Args:
        projected: [T, B, 4U], `x_t W + b` for every step, time-major, in
            processing order.
        recurrent_kernel: U [U, 4U] (gates i, f, c, o).
        h0, c0: initial states [B, U].
        real: None or bool [T, B, 1]; at a False step both states keep
            their values (Keras' masking).
        activation, recurrent_activation: the cell's activations (tanh and
            sigmoid by default).

    Returns:
        The hidden and the cell states after every step, [T, B, U] each.

    Each step computes `z = projected_t + h U` and the gates. With tanh and
    sigmoid on the TensorFlow backend the gradient is written by hand
    (`_tanh_sigmoid_recurrence`): the loop of the backward pass then keeps
    only `dz U^T`, and the recurrent kernel's gradient is one
    [U, T * B] x [T * B, 4U] matmul after it, where automatic
    differentiation of the loop would form and add a [U, 4U] product at
    every step. Other backends and activations differentiate the loop.
    """
    activation = activation or keras.activations.tanh
    recurrent_activation = recurrent_activation or keras.activations.sigmoid
    # A tensor, not the variable: the hand-written gradient returns the
    # kernel's gradient as an input's, which needs the read outside it.
    recurrent_kernel = ops.copy(recurrent_kernel)
    if real is None:
        real = ops.ones((ops.shape(projected)[0], ops.shape(projected)[1], 1), dtype="bool")
    if (
        keras.backend.backend() == "tensorflow"
        and activation in (keras.activations.tanh, keras.ops.tanh)
        and recurrent_activation in (keras.activations.sigmoid, keras.ops.sigmoid)
    ):
        return _tanh_sigmoid_recurrence(projected, recurrent_kernel, h0, c0, real)

    def step(carry, inputs_t):
        h_prev, c_prev = carry
        projected_t, real_t = _unpack(inputs_t)
        z = projected_t + ops.matmul(h_prev, recurrent_kernel)
        h, c = _lstm_cell(z, c_prev, activation, recurrent_activation)
        h = ops.where(real_t, h, h_prev)
        c = ops.where(real_t, c, c_prev)
        return (h, c), (h, c)

    _, (states_h, states_c) = ops.scan(step, (h0, c0), _pack(projected, real))
    return states_h, states_c


def _pack(projected, real):
    """One [T, B, 4U + 1] tensor: Keras' TensorFlow `scan` over several
    sequences fails when T is unknown (as in an exported signature)."""
    return ops.concatenate([projected, ops.cast(real, projected.dtype)], axis=-1)


def _unpack(packed_t):
    return packed_t[..., :-1], packed_t[..., -1:] > 0.5


def _lstm_cell(z, c_prev, activation, recurrent_activation):
    """`(h, c)` from the pre-activations `z` [B, 4U], as `keras.layers.LSTMCell`."""
    z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
    c = recurrent_activation(z_f) * c_prev + recurrent_activation(z_i) * activation(z_c)
    return recurrent_activation(z_o) * activation(c), c


def _shift_in(initial, states):
    """[T, B, U] states after each step -> the states before each step."""
    return ops.concatenate([ops.expand_dims(initial, 0), states[:-1]], axis=0)


def _tanh_sigmoid_recurrence(projected, recurrent_kernel, h0, c0, real):
    """`lstm_recurrence` with tanh / sigmoid and a hand-written gradient.

    The forward loop also keeps every step's pre-activations Z. The
    backward pass computes the gates' derivatives for all steps at once,
    outside the loop, then runs one reverse loop over
    `dh = dH_t + dz_{t+1} U^T` and `dc`, and gets dU and the projections'
    gradient from the whole sequence. At a masked step dz is zero and the
    state gradients pass through unchanged, as the masked `where` in the
    forward loop implies.
    """

    @ops.custom_gradient
    def recurrence(projected, recurrent_kernel, h0, c0, real):
        def step(carry, inputs_t):
            h_prev, c_prev, _ = carry
            projected_t, real_t = _unpack(inputs_t)
            z = projected_t + ops.matmul(h_prev, recurrent_kernel)
            h, c = _lstm_cell(z, c_prev, ops.tanh, ops.sigmoid)
            h = ops.where(real_t, h, h_prev)
            c = ops.where(real_t, c, c_prev)
            return (h, c, z), (h, c, z)

        _, (states_h, states_c, pre_activations) = ops.scan(
            step, (h0, c0, ops.zeros_like(projected[0])), _pack(projected, real)
        )

        def grad(*upstream, **unused):
            d_states_h, d_states_c = upstream[0], upstream[1]
            if d_states_h is None:
                d_states_h = ops.zeros_like(states_h)
            if d_states_c is None:
                d_states_c = ops.zeros_like(states_c)
            z_i, z_f, z_c, z_o = ops.split(pre_activations, 4, axis=-1)
            i, f, g, o = ops.sigmoid(z_i), ops.sigmoid(z_f), ops.tanh(z_c), ops.sigmoid(z_o)
            tanh_c = ops.tanh(states_c)
            c_before = _shift_in(c0, states_c)
            zero = ops.zeros_like(tanh_c)
            # dc += dh * dh/dc; dz = [dc, dc, dc, dh] * gate_derivatives. Zero
            # at masked steps, also where padding held NaN.
            h_to_c = ops.where(real, o * (1.0 - tanh_c * tanh_c), zero)
            gate_derivatives = ops.where(
                real,
                ops.concatenate(
                    [g * i * (1.0 - i), c_before * f * (1.0 - f), i * (1.0 - g * g),
                     tanh_c * o * (1.0 - o)],
                    axis=-1,
                ),
                ops.zeros_like(pre_activations),
            )
            forget = ops.where(real, f, ops.ones_like(f))
            passed = 1.0 - ops.cast(real, d_states_h.dtype)
            kernel_t = ops.transpose(recurrent_kernel)

            units = recurrent_kernel.shape[0]
            # One sequence to scan over, as in the forward loop.
            sizes = [units, units, units, 4 * units, units, 1]

            def back_step(carry, inputs_t):
                dh_next, dc_next, _ = carry
                dh_out, dc_out, h_to_c_t, derivatives_t, forget_t, passed_t = ops.split(
                    inputs_t, [int(i) for i in np.cumsum(sizes[:-1])], axis=-1
                )
                dh = dh_out + dh_next
                dc = dc_out + dc_next + dh * h_to_c_t
                dz = ops.concatenate([dc, dc, dc, dh], axis=-1) * derivatives_t
                dh_prev = ops.matmul(dz, kernel_t) + dh * passed_t
                return (dh_prev, dc * forget_t, dz), (dh_prev, dc * forget_t, dz)

            (dh0, dc0, _), (_, _, dz) = ops.scan(
                back_step,
                (ops.zeros_like(h0), ops.zeros_like(c0), ops.zeros_like(pre_activations[0])),
                ops.concatenate(
                    [d_states_h, d_states_c, h_to_c, gate_derivatives, forget, passed], axis=-1
                ),
                reverse=True,
            )
            h_before = _shift_in(h0, states_h)
            d_kernel = ops.matmul(
                ops.transpose(ops.reshape(h_before, (-1, units))),
                ops.reshape(dz, (-1, 4 * units)),
            )
            return dz, d_kernel, dh0, dc0, None

        return (states_h, states_c), grad

    return recurrence(projected, recurrent_kernel, h0, c0, real)
