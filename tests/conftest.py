"""Every test starts from a fresh Keras state: without it, layer-name
counters, the TensorFlow default graph and the eager kernel cache grow
across the whole run, and later tests slow down. `recorded_fits` records
what each `Model.fit` call was given and changed.

Once every module is imported, its objects (millions, most of them
TensorFlow's) are moved out of the garbage collector's generations with
`gc.freeze()`: each full collection would otherwise walk them all again,
which took a third of the time of a short test.
"""

import gc

import keras
import numpy as np
import pytest
from hypothesis import Phase, settings

gc.freeze()

# A mutation run (docs/mutation.md) only needs to know that a property
# fails, not its smallest failing example: `--hypothesis-profile mutation`
# skips the shrinking.
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate])


def pytest_collection_finish(session):
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def fresh_keras_state():
    yield
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def recorded_fits(monkeypatch):
    """Every `Model.fit` call: its class weights, the trainable variables
    before it, and the paths of the weights it changed."""
    calls = []
    original = keras.Model.fit

    def fit(self, *args, **kwargs):
        all_before = {v.path: np.array(v) for v in self.weights}
        before = {v.path: all_before[v.path] for v in self.trainable_variables}
        history = original(self, *args, **kwargs)
        changed = {v.path for v in self.weights if not np.array_equal(all_before[v.path], np.array(v))}
        calls.append({"class_weight": kwargs.get("class_weight"), "before": before,
                      "changed": changed, "model": self})
        return history

    monkeypatch.setattr(keras.Model, "fit", fit)
    return calls


@pytest.fixture
def kts_sizes(monkeypatch):
    """The length of every sequence exact KTS is run on (`data.shots`)."""
    from data import shots

    sizes = []
    original = shots.kts_change_points

    def recorded(features, vmax=shots.DEFAULT_VMAX, max_change_points=None):
        sizes.append(len(features))
        return original(features, vmax, max_change_points)

    monkeypatch.setattr(shots, "kts_change_points", recorded)
    return sizes
