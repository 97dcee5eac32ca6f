"""Every test starts from a fresh Keras state.

Without this, layer-name counters, the TensorFlow default graph and the
eager kernel cache grow across the whole run, and later tests slow down.
"""

import keras
import pytest


@pytest.fixture(autouse=True)
def fresh_keras_state():
    yield
    keras.backend.clear_session(free_memory=False)
