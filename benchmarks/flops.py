"""Forward FLOPs of a Keras model, counted from the ops it really runs.

The model runs once, eagerly, on a concrete batch while the Keras ops that
carry the arithmetic are wrapped: `matmul`, `einsum`, `conv`,
`depthwise_conv`, `separable_conv`, `conv_transpose` and
`dot_product_attention`. Each call adds 2 x its multiply-accumulates,
computed from the shapes of its operands and result. Every layer, built-in
or custom, reaches these through `keras.ops`, so nothing needs a per-layer
formula.

Recurrent layers loop over time with a `tf.while_loop`, which runs its body
once per step in eager mode, so every step of an LSTM or ConvLSTM is
counted. On the JAX backend `jax.lax.scan` traces its body once; while
counting it is replaced by a Python loop with the same semantics.

Element-wise work (activations, normalisation, pooling, softmax) is not
counted: it is a few percent of these models' arithmetic and is bound by
memory, not by the matrix units that the fp32 peak measures.

Example:

>>> import keras
>>> inputs = keras.Input((3,))
>>> model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
>>> forward_flops(model, np.zeros((1, 3), "float32"))  # 4 outputs x 3 inputs x 2
24
"""

import contextlib
import inspect
import math
import sys
import threading

import numpy as np


def _shape(value):
    return tuple(int(d) for d in value.shape)


def _size(shape):
    return math.prod(shape) if shape else 1


def matmul_macs(arguments, result):
    x1 = _shape(arguments["x1"])
    # Every output element is a dot product over x1's last axis (a 1-D x1
    # is a single row).
    return _size(_shape(result)) * x1[-1]


def conv_macs(arguments, result):
    # kernel: (*spatial, in_channels / groups, out_channels); every output
    # element sums over the kernel's spatial window and input channels.
    return _size(_shape(result)) * _size(_shape(arguments["kernel"])[:-1])


def depthwise_conv_macs(arguments, result):
    # kernel: (*spatial, in_channels, multiplier); one window per output.
    return _size(_shape(result)) * _size(_shape(arguments["kernel"])[:-2])


def separable_conv_macs(arguments, result):
    depthwise = _shape(arguments["depthwise_kernel"])
    pointwise = _shape(arguments["pointwise_kernel"])
    out_channels = pointwise[-1]
    positions = _size(_shape(result)) // out_channels
    return positions * pointwise[-2] * (_size(depthwise[:-2]) + out_channels)


def conv_transpose_macs(arguments, result):
    # kernel: (*spatial, out_channels, in_channels); every input element
    # scatters into a window of every output channel.
    kernel = _shape(arguments["kernel"])
    return _size(_shape(arguments["inputs"])) * _size(kernel[:-1])


def einsum_macs(arguments, result):
    operands = arguments["operands"]
    if len(operands) < 2:
        return 0  # a transpose or a reduction: no multiply-accumulates
    terms = arguments["subscripts"].replace(" ", "").split("->")[0].split(",")
    sizes, broadcast = {}, ()
    for term, operand in zip(terms, operands):
        shape = _shape(operand)
        if "..." in term:
            before, after = term.split("...")
            middle = shape[len(before): len(shape) - len(after)]
            broadcast = tuple(np.broadcast_shapes(broadcast, middle))
            shape = shape[: len(before)] + shape[len(shape) - len(after):]
            term = before + after
        for letter, size in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    # One multiply-accumulate per combination of all indices, kept and
    # summed, of the pairwise contraction (the suite's einsums have two
    # operands).
    return _size(tuple(sizes.values())) * _size(broadcast)


def dot_product_attention_macs(arguments, result):
    # query (B, T, N, H), key (B, S, N, H), value (B, S, N, Hv): scores
    # Q.K^T and the weighted sum of values.
    batch, queries, heads, depth = _shape(arguments["query"])
    keys = _shape(arguments["key"])[1]
    value_depth = _shape(arguments["value"])[-1]
    return batch * heads * queries * keys * (depth + value_depth)


COUNTERS = {
    "matmul": matmul_macs,
    "einsum": einsum_macs,
    "conv": conv_macs,
    "depthwise_conv": depthwise_conv_macs,
    "separable_conv": separable_conv_macs,
    "conv_transpose": conv_transpose_macs,
    "dot_product_attention": dot_product_attention_macs,
}


# Fused recurrent kernels (cuDNN on a GPU) that bypass `keras.ops`; while
# counting they report "not available" and the layers take their generic
# step-by-step path, which the counter sees.
FUSED_RECURRENT_KERNELS = ("lstm", "gru", "bidirectional_lstm", "bidirectional_gru")


class FlopCount:
    """Forward FLOPs (2 x multiply-accumulates) by op name, and the FLOPs
    of the backward pass a train step adds.

    The backward pass of a matmul or convolution costs two more of it: the
    gradient with respect to its input and the one with respect to its
    weights. An op whose weights are all frozen (non-trainable variables)
    adds nothing: the suite freezes backbones only at the input end, where
    no gradient has to flow back through them.
    """

    def __init__(self):
        self.by_op = {}
        self.backward = 0

    def add(self, op, flops, backward=0):
        self.by_op[op] = self.by_op.get(op, 0) + int(flops)
        self.backward += int(backward)

    @property
    def total(self):
        return sum(self.by_op.values())

    @property
    def train(self):
        """Forward plus backward FLOPs of one train step."""
        return self.total + self.backward

    def snapshot(self):
        return dict(self.by_op), self.backward


def _replace_everywhere(replacements):
    """Points every module attribute that is a key of `replacements` (by
    identity) at its value; returns what to put back."""
    by_id = {id(original): (original, new) for original, new in replacements.items()}
    replaced = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attribute, value in list(namespace.items()):
            original, new = by_id.get(id(value), (None, None))
            if original is not None and value is original:
                setattr(module, attribute, new)
                replaced.append((module, attribute, value))
    return replaced


@contextlib.contextmanager
def counting_flops():
    """Counts the FLOPs of the Keras ops called inside the block.

    Yields a `FlopCount`. Every module attribute that is one of the counted
    `keras.ops` functions (`keras.ops.matmul`, `keras.src.ops.numpy.matmul`,
    a model module's `from keras.ops import matmul`) is wrapped for the
    duration of the block; an op called from inside another counted op is
    not counted twice.

    The backend's `rnn` loop is wrapped too: the TensorFlow backend runs the
    step function once more before its loop, on the first time step, only to
    learn the output's shape, and those FLOPs are taken back out.
    """
    import keras

    # The counter wraps the ops where Keras defines them (`keras.src`): the
    # public `keras.ops` names are re-exports of those functions, and the
    # backend's `rnn` has no public name at all. Private, so
    # tests/test_private_apis.py fails loudly if an upgrade moves them.
    from keras.src import backend, ops

    count = FlopCount()
    state = threading.local()
    replacements = {}
    for name in COUNTERS:
        original = getattr(ops, name)
        signature = inspect.signature(original)

        def counted(*args, _name=name, _original=original, _signature=signature, **kwargs):
            if getattr(state, "inside", False):
                return _original(*args, **kwargs)
            state.inside = True
            try:
                result = _original(*args, **kwargs)
            finally:
                state.inside = False
            if not isinstance(result, keras.KerasTensor):
                bound = _signature.bind(*args, **kwargs)
                bound.apply_defaults()
                flops = 2 * COUNTERS[_name](bound.arguments, result)
                weights = [
                    value for value in keras.tree.flatten(list(bound.arguments.values()))
                    if isinstance(value, keras.Variable)
                ]
                frozen = bool(weights) and not any(w.trainable for w in weights)
                count.add(_name, flops, backward=0 if frozen else 2 * flops)
            return result

        replacements[original] = counted

    original_rnn = backend.rnn
    rnn_signature = inspect.signature(original_rnn)

    def rnn(*args, **kwargs):
        bound = rnn_signature.bind(*args, **kwargs)
        bound.apply_defaults()
        step_function = bound.arguments["step_function"]
        calls = []

        def step(*step_args, **step_kwargs):
            before, backward = count.snapshot()
            outputs = step_function(*step_args, **step_kwargs)
            calls.append((
                {op: count.by_op[op] - before.get(op, 0) for op in count.by_op},
                count.backward - backward,
            ))
            return outputs

        bound.arguments["step_function"] = step
        result = original_rnn(*bound.args, **bound.kwargs)
        first = keras.tree.flatten(bound.arguments["inputs"])[0]
        steps = first.shape[0 if bound.arguments["time_major"] else 1]
        if len(calls) == steps + 1:
            forward, backward = calls[0]
            for op, flops in forward.items():
                count.add(op, -flops)
            count.backward -= backward
        return result

    replacements[original_rnn] = rnn

    def unavailable(*args, **kwargs):
        raise NotImplementedError("fused recurrent kernels are off while counting FLOPs")

    for name in FUSED_RECURRENT_KERNELS:
        if hasattr(backend, name):
            replacements[getattr(backend, name)] = unavailable

    replaced = _replace_everywhere(replacements)
    try:
        with _python_scan():
            yield count
    finally:
        for module, attribute, value in replaced:
            setattr(module, attribute, value)


@contextlib.contextmanager
def _python_scan():
    """On the JAX backend, runs `jax.lax.scan` as a Python loop."""
    import keras

    if keras.backend.backend() != "jax":
        yield
        return
    import jax
    import jax.numpy as jnp

    original = jax.lax.scan

    def scan(f, init, xs=None, length=None, reverse=False, unroll=1, **kwargs):
        leaves = jax.tree_util.tree_leaves(xs)
        steps = length if length is not None else leaves[0].shape[0]
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        carry, outputs = init, []
        for step in order:
            x = jax.tree_util.tree_map(lambda leaf: leaf[step], xs) if xs is not None else None
            carry, y = f(carry, x)
            outputs.append(y)
        if reverse:
            outputs.reverse()
        stacked = jax.tree_util.tree_map(lambda *ys: jnp.stack(ys), *outputs) if outputs else None
        return carry, stacked

    jax.lax.scan = scan
    try:
        yield
    finally:
        jax.lax.scan = original


def forward_flops(model, inputs, detail=False):
    """FLOPs of one forward pass of `model` on `inputs` (inference mode).

    Args:
        model: a Keras model.
        inputs: a concrete batch; divide by its batch size for per-sample
            FLOPs.
        detail: also return the FLOPs by op name.

    Returns:
        The total, or `(total, {op: flops})` with `detail`.
    """
    with counting_flops() as count:
        model(inputs, training=False)
    return (count.total, dict(count.by_op)) if detail else count.total


def train_flops(model, inputs):
    """`(forward, train)` FLOPs of `model` on `inputs`; `train` adds the
    backward pass (see `FlopCount`)."""
    with counting_flops() as count:
        model(inputs, training=False)
    return count.total, count.train
