"""Where and how fast a model trains: strategies, mixed precision, XLA.

`train.run` takes four flags from here:

- `--strategy auto|one-device|mirrored|multi-worker` picks a
  `tf.distribute` strategy (`make_strategy`). The model, its optimizer and
  its compile step are created inside `strategy.scope()`, and Keras
  `fit` distributes the datasets through the strategy.
- `--mixed-precision` computes in float16 on a GPU and in bfloat16 on a
  CPU that has native bfloat16 instructions (`set_mixed_precision`);
  variables, model outputs and the loss stay float32.
- `--jit-compile auto|on|off` compiles the train step with XLA or not
  (`resolve_jit_compile`); `auto` follows the step times recorded per model
  and device kind in `train/engine/jit_choices.json` by
  `python -m benchmarks --measure-jit`.
- `--xla-update auto|on|off` compiles only the optimizer's update
  (clipping, weight decay and every variable's step) as one XLA
  computation, the forward and backward pass staying as they are
  (`compile_optimizer_update`); `auto` follows the measurement recorded
  beside the XLA choice by `python -m benchmarks --measure-update`.

`--batch-size` is the global batch, the Keras convention: with N replicas
each replica computes gradients on `batch_size / N` examples per step, and
the gradients are averaged across all replicas. The learning rate is not
rescaled; change it yourself when you change the global batch.

Example:

>>> strategy = make_strategy("auto")
>>> policy = set_mixed_precision(False)
>>> policy
'float32'
"""

import contextlib
import json
import os
import threading

import keras

from common.cluster import read_tf_config
from models.introspection import nested_layers

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")
JIT_FLAGS = ("auto", "on", "off")
# Data that train/ reads and `python -m benchmarks --measure-jit` writes.
JIT_CHOICES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jit_choices.json")

# CPU flags of native bfloat16 arithmetic: AVX-512 BF16 (Cooper Lake, Zen 4
# and later) and AMX (Sapphire Rapids and later). Without them TensorFlow
# emulates bfloat16 and runs slower than float32.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

# Recurrent layers that take the cuDNN kernel on a GPU, which XLA cannot
# compile: Keras marks them `supports_jit=False` there. The choice for
# models holding them is off on the TensorFlow backend on every device, so
# that a run means the same thing on a CPU and on a GPU.
NO_XLA_LAYERS = ("LSTM", "GRU")

_strategies = {}


def add_arguments(parser):
    """Adds `--strategy`, `--mixed-precision`, `--jit-compile`,
    `--xla-update` and `--run-eagerly`."""
    group = parser.add_argument_group("distribution and speed")
    group.add_argument(
        "--strategy", choices=STRATEGIES, default="auto",
        help="auto: mirrored over the local GPUs when there are several, else "
        "the default single-device placement; multi-worker reads TF_CONFIG. "
        "--batch-size is the global batch, split across the replicas",
    )
    group.add_argument(
        "--mixed-precision", action="store_true",
        help="float16 compute on a GPU, bfloat16 on a CPU with native bfloat16; "
        "variables, outputs and loss stay float32",
    )
    group.add_argument(
        "--jit-compile", choices=JIT_FLAGS, default="auto",
        help="XLA for the train step; auto follows the measurements in "
        "train/engine/jit_choices.json",
    )
    group.add_argument(
        "--xla-update", choices=JIT_FLAGS, default="auto",
        help="the optimizer's update as one XLA computation while the rest of the "
        "step runs without XLA; auto follows the measurements in train/engine/jit_choices.json",
    )
    group.add_argument(
        "--run-eagerly", action="store_true",
        help="run the train step op by op without tracing a graph (Keras' "
        "run_eagerly): for debugging, and faster for a few steps of a tiny "
        "model, slower for real training; implies --jit-compile off",
    )


# Strategies.


def make_strategy(name):
    """Returns the `tf.distribute.Strategy` called `name`.

    Args:
        name: `"auto"` (MirroredStrategy when this machine has more than one
            GPU, else TensorFlow's default strategy, which places everything
            on the first GPU or the CPU), `"one-device"` (OneDeviceStrategy on
            the first GPU, else the CPU), `"mirrored"` (MirroredStrategy over
            every local GPU, or every logical CPU device when there is no
            GPU) or `"multi-worker"` (MultiWorkerMirroredStrategy over the
            cluster in the `TF_CONFIG` environment variable).

    A strategy is created once per process and reused: TensorFlow allows one
    multi-worker strategy per process, created before any other TensorFlow
    operation runs, so call this first.

    Raises:
        ValueError: an unknown name, or `multi-worker` without a valid
            `TF_CONFIG`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"--strategy {name}: tf.distribute strategies need the TensorFlow "
            f"backend, not {keras.backend.backend()!r}"
        )
    if name in _strategies:
        return _strategies[name]
    import tensorflow as tf

    if name == "multi-worker":
        read_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
        if name == "auto":
            if len(gpus) > 1:
                strategy = tf.distribute.MirroredStrategy(gpus)
            else:
                strategy = tf.distribute.get_strategy()
        elif name == "one-device":
            strategy = tf.distribute.OneDeviceStrategy(gpus[0] if gpus else "/cpu:0")
        else:
            cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(gpus or cpus)
    _strategies[name] = strategy
    return strategy


def is_multi_worker(strategy):
    import tensorflow as tf

    # `_in_multi_worker_mode` is the strategy's own test: a cluster of one
    # worker makes a MultiWorkerMirroredStrategy that behaves as a local one.
    # It is private and has no public equivalent (TF_CONFIG alone does not
    # say whether the strategy found a cluster); tests/test_private_apis.py
    # fails loudly if an upgrade removes it.
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode()
    )


def task_folder(out, strategy):
    """The run folder of this process.

    The chief (task `chief`, or worker 0 when the cluster has no chief)
    writes the run folder itself; every other worker of a multi-worker run
    writes its own copy into `<out>/<task>-<index>/`, so workers that share
    a file system never write the same file.
    """
    if not is_multi_worker(strategy):
        return out
    cluster, task_type, index = read_tf_config()
    return out if is_chief(cluster, task_type, index) else os.path.join(out, f"{task_type}-{index}")


def is_chief(cluster, task_type, index):
    """The chief task: `chief`, or worker 0 of a cluster without one."""
    return task_type == "chief" or ("chief" not in cluster and task_type == "worker" and index == 0)


def describe(strategy):
    """What the run folder records about the strategy."""
    import tensorflow as tf

    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        # TensorFlow's default strategy: its own placement, on one device.
        name, devices = "default", []
    else:
        name, devices = type(strategy).__name__, list(strategy.extended.worker_devices)
    info = {"strategy": name, "replicas": int(strategy.num_replicas_in_sync), "devices": devices}
    if is_multi_worker(strategy):
        cluster, task_type, index = read_tf_config()
        info["workers"] = sum(len(hosts) for hosts in cluster.values())
        info["task"] = f"{task_type}-{index}"
    return info


def check_global_batch(batch_size, strategy):
    """Refuses a global batch that the replicas cannot share evenly."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"--batch-size {batch_size} is the global batch and must be a multiple of "
            f"the {replicas} replicas (each replica takes batch_size / {replicas})"
        )


def distribute_options(bundle, strategy):
    """Sets example-level sharding on the bundle's datasets.

    In-memory and generated datasets have no files to shard, so each worker
    builds the same batches and keeps its own share of every global batch
    (`AutoShardPolicy.DATA`); saying so up front replaces TensorFlow's
    fallback warning. Same-seed pipelines make the workers' batches agree.
    """
    if not is_multi_worker(strategy):
        return bundle
    import dataclasses

    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    changes = {
        split: getattr(bundle, split).with_options(options)
        for split in ("train", "val", "test")
        if getattr(bundle, split) is not None
    }
    if bundle.train_epochs is not None:
        train_epochs = bundle.train_epochs
        changes["train_epochs"] = lambda first_epoch: train_epochs(first_epoch).with_options(options)
    return dataclasses.replace(bundle, **changes)


_keras_patch_lock = threading.Lock()
_keras_patch_users = 0  # `keras_patched_for` blocks open now
_keras_patch_in_place = None  # the ExitStack that takes the patch out again


def needs_keras_patch(strategy):
    """Whether Keras needs `keras_patched_for` to train under `strategy`:
    every strategy but TensorFlow's default one and `OneDeviceStrategy`
    (one replica: its batches are plain tensors, which Keras never
    reduces across replicas)."""
    import tensorflow as tf

    if strategy is None or isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return False
    return not (strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy())


@contextlib.contextmanager
def keras_patched_for(strategy):
    """Keras' TensorFlow trainer, patched for `strategy` inside the block.

    The engine trains (and, inside `fit`, validates) in this block; outside
    it, and under a strategy that does not need it (`needs_keras_patch`),
    Keras is left as it is. The patch goes in when the first block opens
    and comes out when the last one closes, so blocks may nest and threads
    may share it; its functions leave every case but theirs to Keras, so
    a model trained without a strategy beside one inside the block trains
    as Keras would train it.
    """
    global _keras_patch_users, _keras_patch_in_place

    if not needs_keras_patch(strategy):
        yield
        return
    with _keras_patch_lock:
        if _keras_patch_users == 0:
            stack = contextlib.ExitStack()
            stack.enter_context(_patch_keras_for_distribution())
            _keras_patch_in_place = stack
        _keras_patch_users += 1
    try:
        yield
    finally:
        with _keras_patch_lock:
            _keras_patch_users -= 1
            if _keras_patch_users == 0:
                _keras_patch_in_place.close()
                _keras_patch_in_place = None


@contextlib.contextmanager
def _patch_keras_for_distribution():
    """Works around two gaps of Keras 3.15's TensorFlow trainer with
    mirrored strategies (keras-team/keras#20585), inside the block.

    1. Before the first step, `fit` averages a whole input batch across
       replicas with `strategy.reduce`, only to learn the model's input
       shapes. That fails for a boolean `mask` input (no sum of booleans)
       and, under the multi-worker strategy, for any nested batch; the
       first replica's share of the batch has the same shapes and is used
       instead.
    2. Under the multi-worker strategy the step's metric values are
       averaged with `reduce(..., axis=0)`, which fails on scalars; they are
       averaged across replicas with `axis=None`, what the single-machine
       mirrored path computes.

    Both patches delegate to Keras when their case does not apply. They
    replace private names of `keras.src.backend.tensorflow.trainer` (the
    module function `reduce_per_replica`, `TensorFlowTrainer.
    _maybe_symbolic_build`, and the trainer's `_distribute_strategy` and
    `_symbolic_build` that the replacement calls), since Keras offers no
    hook for either step; tests/test_private_apis.py fails loudly if an
    upgrade renames them or changes their signatures, and
    tests/test_distribute.py shows a masked model failing without the
    patch. Use `keras_patched_for`, which nests and counts; this one only
    puts the patch in and takes it out.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = tf_trainer.reduce_per_replica
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None), values
            )
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(
                lambda value: strategy.experimental_local_results(value)[0]
                if isinstance(value, tf.distribute.DistributedValues) else value,
                next(batches),
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original_reduce
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build = original_build


class SyncMovingStatistics(keras.callbacks.Callback):
    """Averages non-trainable float variables across replicas each epoch.

    Keras 3 keeps one copy of a BatchNormalization layer's moving mean and
    variance per replica and updates each from that replica's share of the
    batch, so the copies drift apart and the saved model would hold only the
    first replica's. Averaging them at the end of every epoch, before the
    checkpoints are written, gives every replica and every worker the same
    statistics, estimated from the whole global batch stream.

    Args:
        strategy: the run's `tf.distribute.Strategy`.
    """

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy
        self._sync = None

    def _variables(self):
        return [
            variable.value
            for variable in self.model.non_trainable_variables
            if keras.backend.is_float_dtype(variable.dtype)
        ]

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        variables = self._variables()
        if not variables or self.strategy.num_replicas_in_sync == 1:
            return
        if self._sync is None:

            @tf.function
            def sync():
                def replica_means():
                    context = tf.distribute.get_replica_context()
                    return [context.all_reduce("MEAN", tf.identity(v)) for v in variables]

                means = self.strategy.run(replica_means)
                for variable, mean in zip(variables, means):
                    variable.assign(self.strategy.experimental_local_results(mean)[0])

            self._sync = sync
        self._sync()


# Mixed precision.


def device_kind():
    """`"gpu"` when the Keras backend sees a GPU, else `"cpu"`."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    if backend == "jax":
        import jax

        return "gpu" if jax.default_backend() in ("gpu", "cuda", "rocm") else "cpu"
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return "cpu"


def cpu_bfloat16_flags(cpuinfo="/proc/cpuinfo"):
    """The native-bfloat16 flags this CPU reports (empty when it has none).

    Reads the `flags` line of `/proc/cpuinfo`; on a system without that
    file the answer is empty.
    """
    try:
        with open(cpuinfo) as file:
            for line in file:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in BFLOAT16_CPU_FLAGS if flag in flags]
    except OSError:
        pass
    return []


def mixed_precision_policy(device=None, cpuinfo="/proc/cpuinfo"):
    """The mixed policy for `device` (`"gpu"`/`"cpu"`, default: this one).

    Raises:
        ValueError: a CPU without native bfloat16 instructions.
    """
    device = device or device_kind()
    if device == "gpu":
        return "mixed_float16"
    if cpu_bfloat16_flags(cpuinfo):
        return "mixed_bfloat16"
    raise ValueError(
        "--mixed-precision: no GPU, and this CPU has no native bfloat16 "
        f"(none of {', '.join(BFLOAT16_CPU_FLAGS)} in {cpuinfo}); bfloat16 would be "
        "emulated and slower than float32, so train without --mixed-precision"
    )


def set_mixed_precision(flag, device=None, cpuinfo="/proc/cpuinfo"):
    """Sets the global Keras dtype policy; returns its name.

    With `flag` set: `mixed_float16` on a GPU (Keras then wraps the optimizer
    in a `LossScaleOptimizer`), `mixed_bfloat16` on a CPU with native
    bfloat16. Without it: `float32`. Layers compute in the policy's dtype
    and keep float32 variables; the suite's models build their output layer
    with `dtype="float32"`, and Keras losses compute in float32, so outputs,
    loss and the exported signature stay float32.

    Raises:
        ValueError: `flag` is set on a CPU without native bfloat16.
    """
    policy = mixed_precision_policy(device, cpuinfo) if flag else "float32"
    keras.config.set_dtype_policy(policy)
    return policy


def bfloat16_conv3d_hazards(model):
    """Conv3D layers whose bfloat16 kernel gradients TensorFlow gets wrong.

    TensorFlow 2.21's oneDNN CPU kernel for the bfloat16 Conv3D filter
    gradient returns wrong values or NaN when a same-padded, depth-stride-1
    convolution sees a time axis longer than 1 but shorter than its kernel
    (2 frames under a 3-deep kernel); float32 and the non-oneDNN kernels are
    right. R(2+1)D reaches 2 frames in its last stages at 8 or 16 input
    frames. Returns the affected layers' names (empty when oneDNN is off).
    """
    if keras.backend.backend() != "tensorflow" or os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return []
    hazards = []
    for layer in nested_layers(model):
        if not isinstance(layer, keras.layers.Conv3D) or layer.padding != "same":
            continue
        if layer.strides[0] != 1:
            continue
        try:
            frames = layer.input.shape[1]
        except (AttributeError, ValueError):
            continue
        if frames is not None and 1 < frames < layer.kernel_size[0]:
            hazards.append(layer.name)
    return hazards


def check_mixed_precision(model, policy):
    """Refuses a mixed bfloat16 run that TensorFlow would train wrongly.

    Raises:
        ValueError: `policy` is `mixed_bfloat16` and the model has layers
            listed by `bfloat16_conv3d_hazards`.
    """
    if policy != "mixed_bfloat16":
        return
    hazards = sorted(bfloat16_conv3d_hazards(model))
    if hazards:
        raise ValueError(
            "--mixed-precision: TensorFlow's oneDNN bfloat16 Conv3D computes wrong kernel "
            f"gradients where a clip's time axis is shorter than the kernel ({', '.join(hazards[:3])}"
            f"{', ...' if len(hazards) > 3 else ''}); train this model in float32 on a CPU, "
            "or with mixed precision on a GPU"
        )


# Tolerance of the SavedModel check, by the lowest compute dtype: the graph
# TensorFlow serves may round float16/bfloat16 intermediates differently
# from eager Keras (fused or removed casts), a few units of their epsilon.
EXPORT_TOLERANCE = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 1e-2}


def export_tolerance(model):
    """How far the exported SavedModel may drift from Keras for `model`."""
    dtypes = {layer.dtype_policy.compute_dtype for layer in nested_layers(model)}
    return max(EXPORT_TOLERANCE.get(dtype, 1e-5) for dtype in dtypes | {"float32"})


# XLA.


def jit_blockers(model):
    """Names of the layers that keep XLA off for `model` on this backend.

    On the TensorFlow backend: LSTM and GRU layers (see `NO_XLA_LAYERS`) and
    any layer that Keras marks `supports_jit=False`. Other backends compile
    every layer.
    """
    if keras.backend.backend() != "tensorflow":
        return []
    return [
        layer.name
        for layer in nested_layers(model)
        if type(layer).__name__ in NO_XLA_LAYERS or not getattr(layer, "supports_jit", True)
    ]


def read_jit_choices(path=JIT_CHOICES_PATH):
    """The recorded XLA measurements, `{}` when there are none yet."""
    if not os.path.exists(path):
        return {}
    with open(path) as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None


def jit_record(model_name, device=None, path=JIT_CHOICES_PATH):
    """The measurement of `model_name` on `device`, or None."""
    device = device or device_kind()
    return read_jit_choices(path).get("models", {}).get(model_name, {}).get(device)


def resolve_jit_compile(model_name, flag, model=None, device=None, path=JIT_CHOICES_PATH):
    """Whether to compile the train step of `model_name` with XLA.

    Args:
        model_name: the registered name.
        flag: `"on"`, `"off"` or `"auto"`. `auto` on the TensorFlow backend
            reads the choice measured for this model and device kind
            (`"cpu"`/`"gpu"`) from `path`, is off when the model holds
            layers XLA cannot compile, and without a measurement does what
            Keras's own default does (XLA on a GPU, not on a CPU); on the JAX
            backend it is on (jit is JAX's compiled path; off would run op
            by op); on other backends it is off.
        model: the built model, to check its layers (see `jit_blockers`).
        device: `"cpu"` or `"gpu"`; default: this machine's.
        path: the measurements file.

    Raises:
        ValueError: `flag` is `"on"` for a model whose layers XLA cannot
            compile on this backend, or an unknown flag.
    """
    if flag not in JIT_FLAGS:
        raise ValueError(f"--jit-compile must be one of {', '.join(JIT_FLAGS)}, got {flag!r}")
    if flag == "off":
        return False
    blockers = jit_blockers(model) if model is not None else []
    if flag == "on":
        if blockers:
            raise ValueError(
                f"--jit-compile on: {model_name} has layers XLA cannot compile on the "
                f"{keras.backend.backend()} backend ({', '.join(blockers)}); "
                "use --jit-compile auto or off"
            )
        return True
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend != "tensorflow" or blockers:
        return False
    device = device or device_kind()
    record = jit_record(model_name, device, path)
    if not record:
        return device == "gpu"
    return record.get("choice") == "on"


# The optimizer's update under XLA.


def compile_optimizer_update(optimizer):
    """Makes `optimizer` run its whole update as one XLA computation.

    A Keras optimizer on the TensorFlow backend updates each variable with
    a dozen small ops (AdamW: the moments' `Mul`/`Sub`/`Square`/`AssignAdd`,
    `Sqrt`, `RealDiv`, the weight decay), each one dispatched by the
    TensorFlow executor; for a model of many small variables that is a
    tenth of the step. Here the optimizer's `_backend_apply_gradients`
    (gradient clipping, weight decay, every variable's `update_step`,
    gradient accumulation and EMA where configured) is traced into one
    `tf.function(jit_compile=True)`, which XLA fuses into a few loops; the
    forward and backward pass that produced the gradients stay as they
    were compiled. Same arithmetic; XLA may round differently in the last
    bit (tests/test_xla_update.py compares the weights with the plain
    update's).

    The optimizer's variables, its config and the saved checkpoints are
    unchanged. Call after `model.compile`, on a model trained without a
    distribution strategy (a strategy's cross-replica update cannot run
    inside an XLA computation) and without `jit_compile` (then the whole
    step is XLA already). Returns the optimizer.
    """
    import tensorflow as tf

    # A loss-scaling wrapper (float16 on a GPU) applies its inner optimizer.
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if getattr(inner, "_xla_update", False):
        return optimizer
    plain = inner._backend_apply_gradients

    def apply_gradients(grads, trainable_variables):
        variables = list(trainable_variables)

        def update(grads):
            plain(grads, variables)

        # Traced once per trace of the train step that calls it.
        tf.function(update, jit_compile=True, autograph=False)(list(grads))

    inner._backend_apply_gradients = apply_gradients
    inner._xla_update = True
    return optimizer


def update_record(model_name, device=None, path=JIT_CHOICES_PATH):
    """The measurement of `model_name`'s XLA update on `device`, or None."""
    return (jit_record(model_name, device, path) or {}).get("update")


def resolve_xla_update(model_name, flag, jit_compile=False, strategy=None, run_eagerly=False,
                       device=None, path=JIT_CHOICES_PATH):
    """Whether to compile `model_name`'s optimizer update with XLA
    (`compile_optimizer_update`).

    Args:
        model_name: the registered name.
        flag: `"on"`, `"off"` or `"auto"`; `auto` reads the choice measured
            for this model and device kind from `path` and is off without
            one.
        jit_compile, strategy, run_eagerly: how the step runs. Off, whatever
            the flag, on backends other than TensorFlow (JAX compiles the
            update with the step), with `jit_compile` (the update is XLA
            already), when running eagerly, and under any strategy but
            TensorFlow's default one (their updates go through cross-replica
            calls that cannot run inside an XLA computation).
        device: `"cpu"` or `"gpu"`; default: this machine's.
        path: the measurements file.
    """
    if flag not in JIT_FLAGS:
        raise ValueError(f"--xla-update must be one of {', '.join(JIT_FLAGS)}, got {flag!r}")
    if flag == "off" or keras.backend.backend() != "tensorflow" or jit_compile or run_eagerly:
        return False
    if strategy is not None and describe(strategy)["strategy"] != "default":
        return False
    if flag == "on":
        return True
    record = update_record(model_name, device or device_kind(), path)
    return bool(record) and record.get("choice") == "on"
