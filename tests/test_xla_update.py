"""The optimizer's update compiled with XLA (`train.engine.distribute.
compile_optimizer_update`) against the plain update, and when it is used."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from common.files import write_json
from train import engine
from train.engine import distribute

STEPS = 3
# Same arithmetic, rounded by XLA instead of by TensorFlow's kernels: per
# variable, the largest difference against the largest weight.
RELATIVE_TOLERANCE = 1e-6


def recipe_optimizers():
    """The attention models' optimizers as their recipes make them: the
    keyframe transformer's fine-tuning AdamW (global-norm clipping) and
    the Perceiver's AdamW (warm-up and cosine schedule, weight decay with
    exclusions)."""
    keyframe = models.get_config("keyframe_transformer", preset="tiny_frames")
    perceiver = models.get_config("r2plus1d_perceiver", preset="tiny", warmup_epochs=1)
    return {
        "keyframe_transformer fine-tune": lambda: models.get_family(
            "keyframe_transformer").training(keyframe, 10).stages[-1].optimizer,
        "r2plus1d_perceiver": lambda: models.get_family(
            "r2plus1d_perceiver").training(perceiver, 2).optimizer,
    }


def small_model():
    """Dense layers, a LayerNorm (gamma, beta) and a bias: the update is
    what is under test, and XLA compiles it in a second for few variables."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    hidden = keras.layers.LayerNormalization()(hidden)
    return keras.Model(inputs, keras.layers.Dense(3)(hidden))


def trained(make_optimizer, xla_update):
    model = small_model()
    model.compile(optimizer=make_optimizer(), loss="mse")
    engine.build_optimizer(model)
    if xla_update:
        distribute.compile_optimizer_update(model.optimizer)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(16, 6)).astype("float32")
    targets = rng.normal(size=(16, 3)).astype("float32")
    for _ in range(STEPS):
        model.train_on_batch(inputs, targets)
    return model


def xla_calls(model):
    """Calls XLA must compile in a traced update of the model's optimizer."""
    variables = model.trainable_variables
    grads = [tf.ones(v.shape) for v in variables]

    @tf.function(autograph=False)
    def apply(grads):
        model.optimizer.apply(grads, variables)

    graph = apply.get_concrete_function(grads).graph
    return sum(1 for op in graph.get_operations()
               if op.type in ("PartitionedCall", "StatefulPartitionedCall")
               and op.node_def.attr["_XlaMustCompile"].b)


@pytest.mark.parametrize("recipe", ["keyframe_transformer fine-tune", "r2plus1d_perceiver"])
def test_xla_update_gives_the_plain_updates_weights(recipe):
    make_optimizer = recipe_optimizers()[recipe]
    plain = trained(make_optimizer, xla_update=False)
    fused = trained(make_optimizer, xla_update=True)
    assert xla_calls(plain) == 0 and xla_calls(fused) == 1
    assert int(fused.optimizer.iterations) == int(plain.optimizer.iterations) == STEPS
    # Model weights, then the optimizer's moments.
    for ours, theirs in [(plain.trainable_variables, fused.trainable_variables),
                         (plain.optimizer.variables, fused.optimizer.variables)]:
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            a, b = np.asarray(a), np.asarray(b)
            scale = max(float(np.abs(a).max()), 1e-30)
            assert float(np.abs(a - b).max()) <= RELATIVE_TOLERANCE * scale
    # The steps did move every weight.
    initial = small_model()
    for before, after in zip(initial.trainable_variables, fused.trainable_variables):
        assert not np.allclose(np.asarray(before), np.asarray(after), rtol=0, atol=1e-7)


def test_the_choice_follows_the_measurement_and_how_the_step_runs(tmp_path):
    path = str(tmp_path / "choices.json")
    write_json(path, {"models": {
        "fast": {"cpu": {"choice": "off", "update": {"choice": "on"}}},
        "slow": {"cpu": {"choice": "off", "update": {"choice": "off"}}},
        "unmeasured": {"cpu": {"choice": "off"}},
    }})

    def resolve(name, flag="auto", **how):
        return distribute.resolve_xla_update(name, flag, device="cpu", path=path, **how)

    assert resolve("fast") is True
    assert resolve("slow") is False and resolve("unmeasured") is False
    assert resolve("absent") is False
    assert resolve("slow", "on") is True and resolve("fast", "off") is False
    # The whole step under XLA already, or no graph at all: nothing to do.
    assert resolve("fast", jit_compile=True) is False
    assert resolve("fast", "on", run_eagerly=True) is False
    assert resolve("fast", strategy=tf.distribute.get_strategy()) is True

    class TwoReplicas:
        num_replicas_in_sync = 2

        class extended:
            worker_devices = ["/cpu:0", "/cpu:1"]

    assert resolve("fast", "on", strategy=TwoReplicas()) is False
    with pytest.raises(ValueError, match="--xla-update must be one of auto, on, off"):
        resolve("fast", "yes")


def test_the_engine_compiles_each_stages_update_when_asked():
    from types import SimpleNamespace

    from train.tasks.base import DataBundle

    rng = np.random.default_rng(0)
    batches = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(8, 6)).astype("float32"), rng.normal(size=(8, 3)).astype("float32"))
    ).batch(4)
    data = DataBundle(train=batches, val=None, test=None, class_names=[], config_updates={})
    config = SimpleNamespace(epochs=1, patience=1, learning_rate=1e-3)
    stages = (models.Stage("first", 1, keras.optimizers.AdamW(1e-3)),
              models.Stage("second", 1, keras.optimizers.AdamW(1e-4)))
    spec = models.TrainingSpec(optimizer=stages[0].optimizer, loss="mse", metrics=[],
                               monitor="loss", stages=stages)
    model = small_model()
    engine.fit(model, spec, data, config, xla_update=True, verbose=0)
    assert [getattr(stage.optimizer, "_xla_update", False) for stage in stages] == [True, True]
    assert model.optimizer is stages[1].optimizer and xla_calls(model) == 1
