"""The private Keras, TensorFlow and tf2onnx names the suite relies on.

Each use is a choice made because no public API does the job (the comment
at the use says why). An upgrade may rename or change any of them without
notice; these tests fail first, and their message names the code that
relies on the name, so the upgrade fixes that code instead of meeting a
confusing error deep inside training or export. Cheap: nothing trains.
"""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.introspection import nested_layers


def parameters(function):
    return list(inspect.signature(function).parameters)


def check(condition, use, change):
    """Fails naming the suite's code that relies on a private name."""
    assert condition, f"upgrade-sensitive private use: {use} relies on {change}"


# Keras: Layer._flatten_layers (models/introspection.py: nested_layers).


def test_keras_flatten_layers_reaches_into_bidirectional_and_nested_models():
    use = "models.introspection.nested_layers (the XLA choice, mixed precision, LiteRT rewrites)"
    check(hasattr(keras.layers.Layer, "_flatten_layers"), use, "keras.layers.Layer._flatten_layers")
    check({"include_self", "recursive"} <= set(parameters(keras.layers.Layer._flatten_layers)),
          use, "Layer._flatten_layers(include_self=..., recursive=...)")
    inner = keras.Sequential([keras.Input((4, 3)), keras.layers.Dense(3, name="inner_dense")])
    inputs = keras.Input((4, 3))
    outputs = keras.layers.Bidirectional(keras.layers.LSTM(2, name="lstm"))(inner(inputs))
    model = keras.Model(inputs, outputs)
    layers = nested_layers(model)
    kinds = [type(layer).__name__ for layer in layers]
    check(model not in layers, use, "include_self=False leaving the model out")
    check(kinds.count("LSTM") == 2, use,
          f"_flatten_layers reaching both LSTMs inside a Bidirectional (found {kinds})")
    check("inner_dense" in [layer.name for layer in layers], use,
          "_flatten_layers reaching the layers of a nested model")


# Keras: the TensorFlow trainer's names that train/engine/distribute.py's
# `_patch_keras_for_distribution` replaces or calls.


def trainer_module():
    from keras.src.backend.tensorflow import trainer

    return trainer


PATCH = "train.engine.distribute._patch_keras_for_distribution"


def test_keras_trainer_module_function_reduce_per_replica_is_looked_up_at_call_time():
    trainer = trainer_module()
    check(callable(getattr(trainer, "reduce_per_replica", None)), PATCH,
          "keras.src.backend.tensorflow.trainer.reduce_per_replica")
    check(parameters(trainer.reduce_per_replica)[:3] == ["values", "strategy", "reduction"], PATCH,
          "reduce_per_replica(values, strategy, reduction)")
    # The patch replaces the module's global; the train and test steps
    # must call it by that name for the replacement to be seen.
    source = inspect.getsource(trainer.TensorFlowTrainer)
    check(source.count("reduce_per_replica(") >= 2, PATCH,
          "TensorFlowTrainer's step functions calling the module's reduce_per_replica")


def test_keras_trainer_maybe_symbolic_build_and_what_the_patch_calls_exist():
    trainer = trainer_module().TensorFlowTrainer
    check(callable(getattr(trainer, "_maybe_symbolic_build", None)), PATCH,
          "TensorFlowTrainer._maybe_symbolic_build")
    check(parameters(trainer._maybe_symbolic_build) == ["self", "iterator", "data_batch"], PATCH,
          "TensorFlowTrainer._maybe_symbolic_build(self, iterator=None, data_batch=None)")
    check("self._maybe_symbolic_build(iterator=" in inspect.getsource(trainer.fit), PATCH,
          "TensorFlowTrainer.fit calling _maybe_symbolic_build(iterator=...) before the first step")
    check("data_batch" in parameters(trainer._symbolic_build), PATCH,
          "Trainer._symbolic_build(data_batch=...)")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    check(hasattr(model, "_distribute_strategy") and model._distribute_strategy is None, PATCH,
          "a model's _distribute_strategy (None when built outside a strategy's scope)")


def test_keras_tf_epoch_iterator_yields_the_batch_iterator_third():
    trainer = trainer_module()
    data = tf.data.Dataset.from_tensor_slices(np.arange(6, dtype="float32").reshape(3, 2)).batch(2)
    iterator = trainer.TFEpochIterator(x=data, distribute_strategy=tf.distribute.get_strategy())
    for _, _, batches in iterator:
        break
    check(hasattr(batches, "__next__"), PATCH,
          "TFEpochIterator yielding (begin, end, batch iterator), as _maybe_symbolic_build reads it")
    first = next(batches)
    check(np.array_equal(np.asarray(first), [[0, 1], [2, 3]]), PATCH,
          "TFEpochIterator yielding (begin, end, batch iterator), as _maybe_symbolic_build reads it")


# Keras: an optimizer's _backend_apply_gradients, which
# train/engine/distribute.py's `compile_optimizer_update` replaces on the
# instance with its XLA-compiled trace.


XLA_UPDATE = "train.engine.distribute.compile_optimizer_update"


def test_keras_optimizer_apply_calls_backend_apply_gradients_on_the_instance():
    optimizer = keras.optimizers.AdamW(1e-3)
    check(callable(getattr(optimizer, "_backend_apply_gradients", None)), XLA_UPDATE,
          "keras optimizers' _backend_apply_gradients")
    check(parameters(optimizer._backend_apply_gradients) == ["grads", "trainable_variables"],
          XLA_UPDATE, "_backend_apply_gradients(grads, trainable_variables)")
    # apply() must look it up on the instance for the replacement to be seen.
    calls = []
    plain = optimizer._backend_apply_gradients

    def recorded(grads, trainable_variables):
        calls.append(len(grads))
        plain(grads, trainable_variables)

    optimizer._backend_apply_gradients = recorded
    variable = keras.Variable(np.ones(2, "float32"))
    optimizer.apply([tf.ones(2)], [variable])
    check(calls == [1], XLA_UPDATE,
          "optimizer.apply calling self._backend_apply_gradients(grads, trainable_variables)")
    check(not np.allclose(np.asarray(variable), 1.0), XLA_UPDATE,
          "_backend_apply_gradients updating the variables itself")


# TensorFlow: the strategy's own multi-worker test (train/engine/distribute.py: is_multi_worker).


def test_tensorflow_in_multi_worker_mode_exists_on_strategy_extendeds():
    use = "train.engine.distribute.is_multi_worker"
    extended = tf.distribute.get_strategy().extended
    check(callable(getattr(extended, "_in_multi_worker_mode", None)), use,
          "tf.distribute.Strategy.extended._in_multi_worker_mode()")
    try:
        answer = extended._in_multi_worker_mode()
    except Exception as error:  # noqa: BLE001 (named in the failure)
        answer = error
    check(answer is False, use,
          f"_in_multi_worker_mode() answering False for the default strategy (got {answer!r})")
    # Creating a MultiWorkerMirroredStrategy here would claim the process's
    # collectives; its extended class is checked instead.
    module = inspect.getmodule(tf.distribute.MultiWorkerMirroredStrategy)
    multi_worker = getattr(module, "CollectiveAllReduceExtended", None)
    check(multi_worker is not None and "_in_multi_worker_mode" in vars(multi_worker), use,
          "MultiWorkerMirroredStrategy's extended defining its own _in_multi_worker_mode()")


# tf2onnx: the two functions convert_onnx calls to leave the einsum optimizer out
# (train/formats/onnx.py).


ONNX_USE = "train.formats.onnx.convert_onnx (ONNX export without the einsum optimizer)"


def test_tf2onnx_get_optimizers_is_a_mapping_holding_the_einsum_optimizer():
    pytest.importorskip("tf2onnx")
    from tf2onnx import optimizer

    check(callable(getattr(optimizer, "_get_optimizers", None)), ONNX_USE,
          "tf2onnx.optimizer._get_optimizers()")
    optimizers = optimizer._get_optimizers()
    check(hasattr(optimizers, "items") and "einsum_optimizer" in optimizers, ONNX_USE,
          "_get_optimizers() returning a mapping of name -> optimizer with 'einsum_optimizer'")
    check("optimizers" in parameters(optimizer.optimize_graph), ONNX_USE,
          "tf2onnx.optimizer.optimize_graph(..., optimizers=...) running only the ones given")


def test_tf2onnx_convert_common_takes_the_keywords_convert_onnx_passes():
    pytest.importorskip("tf2onnx")
    from tf2onnx import convert, tfonnx

    check(callable(getattr(convert, "_convert_common", None)), ONNX_USE,
          "tf2onnx.convert._convert_common")
    own = parameters(convert._convert_common)
    check(own[0] == "frozen_graph" and {"name", "optimizers", "output_path"} <= set(own), ONNX_USE,
          "_convert_common(frozen_graph, name=, optimizers=, output_path=, **kwargs)")
    # The rest are handed on to process_tf_graph through **kwargs.
    passed_on = {"opset", "input_names", "output_names", "tensors_to_rename", "initialized_tables"}
    check(passed_on <= set(parameters(tfonnx.process_tf_graph)), ONNX_USE,
          f"tf2onnx.tfonnx.process_tf_graph taking {sorted(passed_on)}")
    check("optimize_graph(g, catch_errors, optimizers=optimizers)"
          in inspect.getsource(convert._convert_common), ONNX_USE,
          "_convert_common handing its optimizers to optimize_graph")


# Keras: the ops where keras.ops' functions are defined (benchmarks/flops.py).


def test_keras_src_ops_define_the_functions_keras_ops_exports():
    from keras.src import backend, ops

    from benchmarks.flops import COUNTERS

    use = "benchmarks.flops.counting_flops"
    for name in COUNTERS:
        check(getattr(ops, name, None) is getattr(keras.ops, name), use,
              f"keras.ops.{name} being keras.src.ops.{name} (the counter wraps that object)")
    check({"step_function", "inputs", "time_major"} <= set(parameters(backend.rnn)), use,
          "keras.src.backend.rnn(step_function, inputs, ..., time_major=...)")
