"""The contract every registered model keeps, as reusable checks.

`TINY` holds one tiny config per model name; a name without an entry fails
the contract test, so a new model cannot skip it.
"""

import numpy as np

TINY = {
    "convlstm": dict(input_shape=(4, 12, 12, 2), filters=(3, 4)),
    "bilstm_attention": dict(
        input_shape=(None, 8), num_classes=3, projection_dim=8, lstm_layers=2,
        lstm_units=4, attention_heads=2, attention_key_dim=4, pooling_dim=4,
        classifier_units=(8, 6, 4),
    ),
    "r2plus1d": dict(input_shape=(4, 16, 16, 3), cnn_blocks=3, num_classes=3),
    "r2plus1d_perceiver": dict(
        input_shape=(4, 16, 16, 3), cnn_blocks=1, num_classes=3, num_latents=8,
        latent_dim=32, cross_blocks=1, self_blocks=1, cross_head_dim=16,
        self_heads=2, self_head_dim=16,
    ),
    "keyframe_transformer": dict(
        input_shape=(None, 12), model_dim=16, num_layers=2, num_heads=2, ff_dim=32,
        local_window=2, scorer_units=16, dropout=0.0,
    ),
}

# Extra tiny variants that must keep the contract too, as (name, overrides).
VARIANTS = [
    ("convlstm", dict(input_shape=(3, 18, 18, 1), filters=(2, 2, 3), num_classes=3)),
    # Self-attention on the tokens themselves (64 wide, projected to 32).
    ("r2plus1d_perceiver", dict(
        input_shape=(3, 9, 7, 3), cnn_blocks=1, num_classes=3, latent_dim=32,
        cross_blocks=0, self_blocks=1, self_heads=2, self_head_dim=16,
    )),
    ("keyframe_transformer", dict(
        input_mode="frames", input_shape=(None, 32, 32, 3), backbone_weights=None,
        model_dim=16, num_layers=1, num_heads=2, ff_dim=32, local_window=2, scorer_units=16,
        dropout=0.0,
    )),
]


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
