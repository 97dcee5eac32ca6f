"""Looking inside a built model: every layer, through wrappers and nested models.

Example:

>>> import keras
>>> inputs = keras.Input((4, 3))
>>> outputs = keras.layers.Bidirectional(keras.layers.LSTM(2))(inputs)
>>> sorted({type(layer).__name__ for layer in nested_layers(keras.Model(inputs, outputs))})
['Bidirectional', 'InputLayer', 'LSTM', 'LSTMCell']
"""


def nested_layers(model):
    """Every layer inside `model`, through nested models and wrappers
    (`Bidirectional`'s two RNNs, `TimeDistributed`'s layer).

    Keras 3 has no public walk that reaches into wrappers; the private
    `Layer._flatten_layers` is the one Keras itself uses (to decide whether
    a model supports XLA). tests/test_private_apis.py fails loudly if an
    upgrade renames it or stops it reaching into a wrapper.
    """
    return list(model._flatten_layers(include_self=False, recursive=True))
