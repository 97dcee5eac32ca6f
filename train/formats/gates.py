"""The gates: an export is kept only when its runtime agrees with Keras.

Every format reports the largest absolute difference of every output (at
the real steps of per-step outputs). The gate:

- float formats: the largest difference of the task's gated output
  (`probabilities`, `scores`) at most `FLOAT_TOLERANCE` (1e-4);
- quantized formats: the decision the task's users act on, measured by the
  `DecisionGate` the task declares (`Task.export_gate`):
  - `Top1Agreement` (classifiers): the top-1 class agrees with Keras on
    at least 99% of the held-out examples (a single sigmoid output counts
    as two classes, p > 0.5);
  - `MeanRankCorrelation` (frame scorers): Spearman's rho between the Keras
    and the exported scores of each video's real frames, averaged over the
    videos, at least 0.98 (per video, as the summarization protocol
    correlates scores; ties get average ranks, since int8 outputs repeat
    values).

Example:

>>> gate = Top1Agreement()
>>> gate.add(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[0.6, 0.4], [0.6, 0.4]]), None)
>>> result = gate.report()["gate"]
>>> result["value"], result["passed"]
(0.5, False)
"""

import numpy as np

import models
from train.metrics.classification import two_columns
from train.metrics.ranking import spearman_rho

FLOAT_TOLERANCE = 1e-4
INT8_MIN_TOP1_AGREEMENT = 0.99
INT8_MIN_SPEARMAN = 0.98


def decision(metric, value, threshold, at_most=False):
    """The `gate` entry of a report: passed when `value >= threshold`
    (`value <= threshold` with `at_most`)."""
    passed = value <= threshold if at_most else value >= threshold
    return {"metric": metric, "value": float(value), "threshold": float(threshold),
            "comparison": "<=" if at_most else ">=", "passed": bool(passed)}


class DecisionGate:
    """What a quantized export must keep of one task's decisions.

    Attributes:
        output: the model output the decision is read from.
    """

    output = ""

    def add(self, expected, actual, mask):
        """Adds one batch: Keras' and the export's `output`, and the
        inputs' `mask` (None without one)."""
        raise NotImplementedError

    def report(self):
        """`{"gate": decision(...), ...}`: the decision and what explains it."""
        raise NotImplementedError


class Top1Agreement(DecisionGate):
    """Share of examples whose top-1 class is the same as Keras'."""

    output = "probabilities"

    def __init__(self, threshold=INT8_MIN_TOP1_AGREEMENT):
        self.threshold = threshold
        self.agreement, self.margins, self.flipped_margins = [], [], []

    def add(self, expected, actual, mask):
        reference, exported = two_columns(expected), two_columns(actual)
        ordered = np.sort(reference, axis=-1)
        margin = ordered[:, -1] - ordered[:, -2]
        same = reference.argmax(-1) == exported.argmax(-1)
        self.agreement += same.tolist()
        self.margins += margin.tolist()
        self.flipped_margins += margin[~same].tolist()

    def report(self):
        return {
            "float_top1_margin": {"median": float(np.median(self.margins)),
                                  "min": float(np.min(self.margins))},
            "flipped_examples_float_margins": sorted(self.flipped_margins),
            "gate": decision("top1_agreement", np.mean(self.agreement), self.threshold),
        }


class MeanRankCorrelation(DecisionGate):
    """Spearman's rho of each video's real frames, averaged over videos."""

    output = "scores"

    def __init__(self, threshold=INT8_MIN_SPEARMAN):
        self.threshold = threshold
        self.correlations = []

    def add(self, expected, actual, mask):
        expected, actual = np.asarray(expected), np.asarray(actual)
        real = np.ones(expected.shape, bool) if mask is None else np.asarray(mask, bool)
        for row in range(len(real)):
            rho = spearman_rho(expected[row][real[row]], actual[row][real[row]])
            if np.isfinite(rho):
                self.correlations.append(rho)

    def report(self):
        if not self.correlations:
            raise ValueError("no held-out video has two frames of different scores to rank")
        return {
            "spearman_min": float(np.min(self.correlations)),
            "videos": len(self.correlations),
            "gate": decision("mean_spearman_rho", np.mean(self.correlations), self.threshold),
        }


def verify(export_format, model, model_name, runner, batches, gate,
           float_tolerance=FLOAT_TOLERANCE):
    """Compares a reloaded export with Keras on held-out inputs.

    Args:
        export_format: the `ExportFormat` (its `quantized` picks the gate).
        model, model_name: the Keras model and its registered name.
        runner: the reloaded export (`Runner`).
        batches: an iterable of input dicts (each a batch).
        gate: the task's `DecisionGate` (its `output` is the gated output).
        float_tolerance: the float gate's largest allowed difference.

    Returns:
        The report: `{"examples", "max_abs_diff", "gate": {"metric",
        "value", "threshold", "comparison", "passed"}, ...}`.
    """
    family = models.get_family(model_name)
    worst = {}
    examples = 0
    for inputs in batches:
        inputs = {key: np.asarray(value) for key, value in inputs.items()}
        expected = {
            key: np.asarray(value)
            for key, value in family.name_outputs(model, model(inputs, training=False)).items()
        }
        actual = runner(inputs)
        missing = sorted(set(expected) - set(actual))
        if missing:
            raise ValueError(f"the {export_format.name} export has outputs {sorted(actual)}, "
                             f"not {missing}")
        if gate.output not in expected:
            raise ValueError(f"{model_name}: no {gate.output} output to gate on")
        mask = inputs.get("mask")
        examples += len(next(iter(inputs.values())))
        for key, value in expected.items():
            difference = np.abs(np.asarray(actual[key], dtype=np.float64) - value)
            if mask is not None and value.shape[:2] == mask.shape:
                difference = difference[np.asarray(mask, bool)]
            worst[key] = max(worst.get(key, 0.0), float(difference.max(initial=0.0)))
        if export_format.quantized:
            gate.add(expected[gate.output], np.asarray(actual[gate.output]), mask)
    if examples == 0:
        raise ValueError("no held-out examples to check the export on")
    report = {"examples": examples, "max_abs_diff": worst}
    if export_format.quantized:
        report.update(gate.report())
    else:
        report["gate"] = decision(f"max_abs_diff[{gate.output}]", worst[gate.output],
                                  float_tolerance, at_most=True)
    return report
