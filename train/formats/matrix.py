"""The export matrix: every registered model through every format, gated.

`python -m train.export_check` prints one Markdown row per model and
format: exported and its gate's numbers, or why not. Each model is its `"tiny"` preset, trained on a task
it can learn (`trained_tiny`), because the int8 gates mean nothing on an
untrained model: its outputs barely depend on its input, so every top-1
decision and every frame ranking sits within quantization noise. The same
models back the contract test (`tests/test_model_contract.py`).

The task (`teacher_data`): random inputs of the model's shapes
(`Family.example_batch`), each example (classifiers) or each step (frame
scorers) shifted towards a level in [0, 1] of the inputs' range,
`x' = (x + lo + level (hi - lo)) / 2`. Classifiers learn two of their
classes, the first for levels in [0, 0.35] and the last for levels in
[0.65, 1], so the classes are separated as real classes mostly are and a
decision near the boundary is rare; frame scorers learn the level itself,
drawn from [0.05, 0.95].

The training is short: the model keeps its random weights except its
output layer (the last `Dense`), which is fitted to the task by ridge
regression on the features that reach it (a linear probe), onto logits of
+-4 for the two classes, or the logit of each frame's level. That takes
one forward pass, where gradient descent took minutes on 2 CPU cores and
left batch-norm statistics behind the weights.
"""

import os
import sys
import tempfile
import time

import keras
import numpy as np

import models
from train import formats, tasks
from train.metrics.classification import two_columns
from train.metrics.ranking import spearman_rho

TRAIN_EXAMPLES = 96
HELD_OUT_EXAMPLES = 64
CALIBRATION_EXAMPLES = 32
CLASS_LOGIT = 4.0
RIDGE = 1e-3


def teacher_data(model_name, config, count, seed):
    """(inputs, targets, levels) of the learnable task (see the module doc):
    targets are class ids shaped like the family's example targets, or
    per-step levels (padded steps keep the family's padding target)."""
    family = models.get_family(model_name)
    inputs, targets = family.example_batch(config, count, seed)
    targets = np.asarray(targets)
    key = next(k for k in inputs if k != "mask")
    values = np.asarray(inputs[key], np.float32)
    low, high = float(values.min()), float(values.max())
    rng = np.random.default_rng(seed + 1)
    if scores_steps(model_name):
        levels = rng.uniform(0.05, 0.95, size=values.shape[:2]).astype(np.float32)
        shift = levels.reshape(levels.shape + (1,) * (values.ndim - 2))
        mask = np.asarray(inputs.get("mask", np.ones(values.shape[:2], bool)), bool)
        new_targets = np.where(mask, levels, targets).astype(np.float32)
    else:
        bright = rng.uniform(size=count) < 0.5
        levels = np.where(bright, rng.uniform(0.65, 1.0, count), rng.uniform(0.0, 0.35, count))
        levels = levels.astype(np.float32)
        shift = levels.reshape((count,) + (1,) * (values.ndim - 1))
        labels = np.where(bright, max(config.num_classes, 2) - 1, 0)
        new_targets = labels.reshape(targets.shape).astype(targets.dtype)
    inputs = dict(inputs)
    inputs[key] = ((values + low + shift * (high - low)) / 2).astype(np.float32)
    return inputs, new_targets, levels


def scores_steps(model_name):
    """Whether the model's task scores every step (its targets are per step)."""
    return tasks.task_for(model_name).per_step_targets


def trained_tiny(model_name, preset="tiny", seed=0):
    """(model, config, fit): the preset's model with its output layer
    fitted to `teacher_data` (see the module doc), and how well it fits
    held-out data of the task (`accuracy` for classifiers, mean `spearman`
    per video for frame scorers)."""
    keras.utils.set_random_seed(seed)
    config = models.get_config(model_name, preset=preset)
    model = models.build_from_config(model_name, config)
    output = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    features_of = keras.Model(model.input, output.input)
    inputs, targets, levels = teacher_data(model_name, config, TRAIN_EXAMPLES, seed)
    features = np.asarray(features_of(inputs, training=False), np.float64)
    if scores_steps(model_name):
        real = np.asarray(inputs["mask"], bool)
        rows = features[real]
        wanted = np.log(levels[real] / (1.0 - levels[real]))[:, None]
    else:
        rows = features
        labels = np.asarray(targets).reshape(len(rows), -1)[:, 0].astype(int)
        width = output.units
        if width == 1:
            wanted = np.where(labels == 1, CLASS_LOGIT, -CLASS_LOGIT)[:, None]
        else:
            wanted = np.where(np.eye(width)[labels] > 0, CLASS_LOGIT, -CLASS_LOGIT)
    design = np.concatenate([rows, np.ones((len(rows), 1))], axis=1)
    gram = design.T @ design
    penalty = RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))
    solution = np.linalg.solve(gram + penalty, design.T @ wanted)
    output.set_weights([solution[:-1].astype("float32"), solution[-1].astype("float32")])
    return model, config, fit_on_held_out(model, model_name, config, seed)


def fit_on_held_out(model, model_name, config, seed):
    inputs, targets, levels = teacher_data(model_name, config, HELD_OUT_EXAMPLES, seed + 7)
    outputs = models.get_family(model_name).name_outputs(model, model(inputs, training=False))
    output = tasks.task_for(model_name).export_gate().output
    if scores_steps(model_name):
        scores = np.asarray(outputs[output])
        mask = np.asarray(inputs["mask"], bool)
        rhos = [spearman_rho(levels[i][mask[i]], scores[i][mask[i]]) for i in range(len(scores))]
        return {"spearman": float(np.mean([r for r in rhos if np.isfinite(r)]))}
    probabilities = two_columns(outputs[output])
    labels = np.asarray(targets).reshape(len(probabilities), -1)[:, 0].astype(int)
    return {"accuracy": float(np.mean(probabilities.argmax(-1) == labels))}


def held_out_batches(model_name, config, seed, batch_size=16):
    """Batches of held-out inputs of the task (other seeds than training)."""
    inputs, _, _ = teacher_data(model_name, config, HELD_OUT_EXAMPLES, seed + 7)
    count = len(next(iter(inputs.values())))
    return [
        {key: value[start:start + batch_size] for key, value in inputs.items()}
        for start in range(0, count, batch_size)
    ]


def calibration_examples(model_name, config, seed):
    """A callable returning training examples of the task one at a time."""
    inputs, _, _ = teacher_data(model_name, config, CALIBRATION_EXAMPLES, seed)

    def examples():
        for row in range(CALIBRATION_EXAMPLES):
            yield {key: value[row:row + 1] for key, value in inputs.items()}

    return examples


def check(model, model_name, config, format_name, folder, seed=0, source=None):
    """Writes, reloads and gates one export into `folder`; returns the
    report of `train.formats.verify` plus the file's size and how long
    conversion took."""
    export_format = formats.get_format(format_name)
    started = time.perf_counter()
    written = export_format.write(
        model, model_name, folder,
        calibration=calibration_examples(model_name, config, seed), source=source,
    )
    seconds = time.perf_counter() - started
    runner = export_format.load_runner(folder)
    report = formats.verify(
        export_format, model, model_name, runner, held_out_batches(model_name, config, seed),
        tasks.task_for(model_name).export_gate(),
    )
    report.update(seconds=seconds, bytes=os.path.getsize(written.path)
                  if os.path.isfile(written.path) else None, rewrites=written.rewrites)
    return report


def matrix_rows(names, formats, folder):
    """One row per model and format (see `main`)."""
    rows = []
    for name in names:
        model, config, fit = trained_tiny(name)
        for format_name in formats:
            row = {"model": name, "format": format_name,
                   "trained fit": ", ".join(f"{k} {v:.2f}" for k, v in fit.items())}
            try:
                report = check(model, name, config, format_name,
                               tempfile.mkdtemp(dir=folder, prefix=f"{name}-{format_name}-"))
            except Exception as error:  # the matrix records why a combination fails
                row.update(result="not exported", why=f"{type(error).__name__}: {error}"[:300])
                rows.append(row)
                continue
            gate = report["gate"]
            row.update(
                result="exported" if gate["passed"] else "refused by the gate",
                gate=f"{gate['metric']} {gate['value']:.3g} ({gate['comparison']} {gate['threshold']})",
                **{"max abs diff": ", ".join(f"{k} {v:.1e}" for k, v in report["max_abs_diff"].items())},
                **{"convert s": f"{report['seconds']:.1f}"},
            )
            rows.append(row)
            print(f"{name} {format_name}: {row['result']}, {row['gate']}", file=sys.stderr, flush=True)
    return rows
