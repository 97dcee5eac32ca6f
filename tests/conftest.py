"""Every test starts from a fresh Keras state: without it, layer-name
counters, the TensorFlow default graph and the eager kernel cache grow
across the whole run, and later tests slow down. `recorded_fits` records
what each `Model.fit` call was given and changed.
"""

import keras
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def fresh_keras_state():
    yield
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def recorded_fits(monkeypatch):
    """Every `Model.fit` call: its class weights, the trainable variables
    before and after it, and every weight before and after it."""
    calls = []
    original = keras.Model.fit

    def fit(self, *args, **kwargs):
        before = {v.path: np.array(v) for v in self.trainable_variables}
        all_before = {v.path: np.array(v) for v in self.weights}
        history = original(self, *args, **kwargs)
        after = {v.path: np.array(v) for v in self.trainable_variables}
        all_after = {v.path: np.array(v) for v in self.weights}
        changed = {path for path in all_before if not np.array_equal(all_before[path], all_after[path])}
        calls.append({"class_weight": kwargs.get("class_weight"), "before": before,
                      "after": after, "changed": changed, "model": self})
        return history

    monkeypatch.setattr(keras.Model, "fit", fit)
    return calls
