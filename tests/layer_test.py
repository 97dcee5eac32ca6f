"""One test helper every custom layer passes, in the spirit of keras-hub's
`TestCase.run_layer_test`.

`run_layer_test` builds the layer and calls it on real inputs, checks the
output shape (and `compute_output_shape` where the layer has one), rebuilds
it from `get_config`, reloads it inside a model from a `.keras` file, and
builds it under the mixed-precision policy: variables stay float32 and
floating outputs come out in the compute dtype (or the layer's own float32
where it is declared so).
"""

import keras
import numpy as np

MIXED_POLICY = "mixed_float16"


def run_layer_test(layer_cls, init_kwargs, inputs, expected_output_shape, tmp_path,
                   call_kwargs=None, float32_output=False):
    """Runs the layer checks.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        inputs: one array (the call's first argument), a list of arrays
            (passed as one list argument) or a tuple of arrays (passed as
            positional arguments).
        expected_output_shape: the output shape, or a dict name -> shape
            for dict outputs.
        tmp_path: a folder for the `.keras` file.
        call_kwargs: more call arguments (arrays become model inputs too).
        float32_output: the layer declares float32 outputs under any policy.
    """
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    output = _call(layer, inputs, call_kwargs)
    assert _shapes(output) == _normal(expected_output_shape), (
        f"{layer_cls.__name__}: output shape {_shapes(output)} != {expected_output_shape}"
    )
    if type(layer).compute_output_shape is not keras.layers.Layer.compute_output_shape:
        computed = _compute_output_shape(layer, inputs, call_kwargs)
        assert _normal(computed) == _normal(expected_output_shape), (
            f"{layer_cls.__name__}.compute_output_shape gives {computed}"
        )

    # get_config -> from_config: the same config, and with the same weights
    # the same outputs.
    config = layer.get_config()
    rebuilt = layer_cls.from_config(config)
    assert rebuilt.get_config() == config
    _call(rebuilt, inputs, call_kwargs)
    rebuilt.set_weights(layer.get_weights())
    _assert_close(_call(rebuilt, inputs, call_kwargs), output)

    # A .keras file round trip inside a functional model.
    model = _model_around(layer_cls(**init_kwargs), inputs, call_kwargs)
    expected = model(_model_feed(inputs, call_kwargs))
    path = str(tmp_path / f"{layer_cls.__name__}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    _assert_close(reloaded(_model_feed(inputs, call_kwargs)), expected)

    # Mixed precision: float32 variables, outputs in the compute dtype.
    mixed = layer_cls(**{**init_kwargs, "dtype": MIXED_POLICY})
    mixed_output = _call(mixed, inputs, call_kwargs)
    for variable in mixed.weights:
        assert keras.backend.standardize_dtype(variable.dtype) == "float32", variable.path
    wanted = "float32" if float32_output else mixed.compute_dtype
    for value in _flatten(mixed_output):
        dtype = keras.backend.standardize_dtype(value.dtype)
        if "float" in dtype:
            assert dtype == wanted, f"{layer_cls.__name__} under {MIXED_POLICY}: {dtype}"
    return output


def _args(inputs):
    return list(inputs) if isinstance(inputs, tuple) else [inputs]


def _call(layer, inputs, call_kwargs):
    return layer(*_args(inputs), **call_kwargs)


def _compute_output_shape(layer, inputs, call_kwargs):
    def shape(value):
        if isinstance(value, list):
            return [shape(v) for v in value]
        return tuple(np.shape(value))

    kwargs = {
        f"{key}_shape": shape(value) for key, value in call_kwargs.items()
        if f"{key}_shape" in layer.compute_output_shape.__code__.co_varnames
    }
    return layer.compute_output_shape(*[shape(a) for a in _args(inputs)], **kwargs)


def _symbolic(value):
    if isinstance(value, list):
        return [_symbolic(v) for v in value]
    value = np.asarray(value)
    return keras.Input(batch_shape=value.shape, dtype=str(value.dtype))


def _model_around(layer, inputs, call_kwargs):
    symbolic_args = [_symbolic(a) for a in _args(inputs)]
    symbolic_kwargs = {key: _symbolic(value) for key, value in call_kwargs.items()}
    outputs = layer(*symbolic_args, **symbolic_kwargs)
    return keras.Model(keras.tree.flatten([symbolic_args, symbolic_kwargs]), outputs)


def _model_feed(inputs, call_kwargs):
    return keras.tree.flatten([_args(inputs), dict(call_kwargs)])


def _flatten(value):
    if isinstance(value, dict):
        return [v for key in sorted(value) for v in _flatten(value[key])]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _flatten(item)]
    return [value]


def _shapes(value):
    if isinstance(value, dict):
        return {key: _shapes(v) for key, v in value.items()}
    return tuple(int(d) for d in value.shape)


def _normal(shape):
    if isinstance(shape, dict):
        return {key: _normal(v) for key, v in shape.items()}
    return tuple(int(d) for d in shape)


def _assert_close(actual, expected, atol=1e-6):
    for a, e in zip(_flatten(actual), _flatten(expected)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=atol, rtol=0)
