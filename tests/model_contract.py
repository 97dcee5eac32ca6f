"""The contract every registered model keeps, as reusable checks.

Every model runs the contract at its `"tiny"` preset and at each of its
`"tiny_*"` variants (`models.presets`); a model without a `"tiny"` preset
fails the contract test, so a new model cannot skip it.
"""

import numpy as np

import models


def tiny_cases():
    """(model name, preset) for every registered model's tiny presets; a
    model with no "tiny" preset appears once with preset None."""
    cases = []
    for name in models.NAMES:
        names = [p for p in models.presets(name) if p == "tiny" or p.startswith("tiny_")]
        cases += [(name, preset) for preset in names] if "tiny" in names else [(name, None)]
    return cases


def to_numpy(outputs):
    if isinstance(outputs, dict):
        return {key: np.asarray(value) for key, value in outputs.items()}
    return np.asarray(outputs)


def assert_outputs_close(expected, actual, atol):
    expected, actual = to_numpy(expected), to_numpy(actual)
    if isinstance(expected, dict):
        assert sorted(expected) == sorted(actual)
        for key in expected:
            np.testing.assert_allclose(actual[key], expected[key], atol=atol, rtol=0)
    else:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)


def masked_garbage(inputs, seed=1):
    """Copies `inputs` with random garbage written into every padded step."""
    if "mask" not in inputs:
        return None
    rng = np.random.default_rng(seed)
    changed = {key: np.array(value, copy=True) for key, value in inputs.items()}
    padded = ~np.asarray(inputs["mask"], dtype=bool)
    for key, value in changed.items():
        if key == "mask":
            continue
        noise = rng.normal(0, 10, size=value.shape).astype(value.dtype)
        value[padded] = noise[padded]
    return changed
