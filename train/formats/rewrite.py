"""The copy of a model that LiteRT's builtin ops (and ONNX) cover.

LiteRT has no 3-D max pool and lowers an RNN's while loop to builtins only
when every tensor in it has a static shape. `inference_copy` therefore
rewrites a copy of the model, same weights, before conversion:
`MaxPool3D((1, k, k))` becomes `TimeDistributed(MaxPool2D((k, k)))` (the
same per-frame pooling), RNN dropout becomes 0 (inference ignores it, but a
layer with dropout traces a seed update that the converter cannot lower),
and RNNs over a fixed number of steps are unrolled; a `FusedLSTM` runs
Keras' LSTM loop in the copy (its own scan does not convert to ONNX). An
RNN over an open number of steps keeps its loop and the LiteRT signature
fixes the batch at 1 (one video at a time, as on a phone).
"""

import keras

from models.introspection import nested_layers

RNN_CLASSES = ("LSTM", "FusedLSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def _rnn_config(config, unroll):
    config = {**config, "dropout": 0.0, "recurrent_dropout": 0.0,
              "unroll": unroll or config.get("unroll", False)}
    if "fused" in config:
        # FusedLSTM's scan carries its state packed in one tensor, a loop
        # tf2onnx cannot map to ONNX's Loop; Keras' LSTM loop, same
        # weights and function, converts to both formats.
        config["fused"] = False
    return config


def inference_copy(model):
    """(model, rewrites): a copy of `model` in ops that LiteRT's builtins
    cover, with the same weights and the same outputs, and the list of what
    was rewritten; `model` itself when nothing needs rewriting.

    See the module docstring for the rewrites. Steps count as fixed when
    every model input has a static second axis.
    """
    fixed_steps = all(tensor.shape[1] is not None for tensor in model.inputs)
    rewrites = []

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.MaxPool3D):
            strides = config["strides"] or config["pool_size"]
            if config["pool_size"][0] == 1 and strides[0] == 1:
                rewrites.append(f"{layer.name}: MaxPool3D{tuple(config['pool_size'])} -> "
                                f"TimeDistributed(MaxPool2D{tuple(config['pool_size'][1:])})")
                return keras.layers.TimeDistributed(
                    keras.layers.MaxPool2D(
                        config["pool_size"][1:], strides=tuple(strides[1:]),
                        padding=config["padding"], data_format=config["data_format"],
                    ),
                    name=layer.name,
                )
        if type(layer).__name__ in RNN_CLASSES:
            rewrites.append(f"{layer.name}: dropout 0" + (", unrolled" if fixed_steps else ""))
            return type(layer).from_config(_rnn_config(config, fixed_steps))
        if isinstance(layer, keras.layers.Bidirectional):
            for key in ("layer", "backward_layer"):
                if config.get(key):
                    config[key] = {**config[key], "config": _rnn_config(config[key]["config"], fixed_steps)}
            rewrites.append(f"{layer.name}: dropout 0" + (", unrolled" if fixed_steps else ""))
            return keras.layers.Bidirectional.from_config(config)
        return type(layer).from_config(config)

    needs_copy = any(
        isinstance(layer, (keras.layers.MaxPool3D, keras.layers.Bidirectional))
        or type(layer).__name__ in RNN_CLASSES
        for layer in model.layers
    )
    if not needs_copy:
        return model, []
    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy, rewrites


def litert_batch_size(model):
    """1 when an RNN in `model` keeps its while loop (open steps), else
    None (an open batch axis)."""
    fixed_steps = all(tensor.shape[1] is not None for tensor in model.inputs)
    has_rnn = any(
        type(layer).__name__ in RNN_CLASSES or type(layer).__name__ == "Bidirectional"
        for layer in nested_layers(model)
    )
    return 1 if has_rnn and not fixed_steps else None
