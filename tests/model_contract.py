"""The contract every registered model keeps, as reusable checks.

Every model runs the contract at its `"tiny"` preset and at each of its
`"tiny_*"` variants (`models.presets`); a model without a `"tiny"` preset
fails the contract test, so a new model cannot skip it.
"""

import numpy as np

import models
from train import formats
from train.formats import matrix


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


def check_export_contract(model, name, config, fit, format_name, folder, source=None):
    """The export contract of one model and format: written, reloaded and
    within its gate (`train.formats.matrix.check`), then run again by the
    format's own runtime API (LiteRT and ONNX: the interpreter and
    onnxruntime directly; any other format: its registered runner) and
    compared with Keras."""
    export_format = formats.get_format(format_name)
    if export_format.quantized:
        # Agreement of decisions only means something if there are decisions.
        assert fit.get("accuracy", 1.0) >= 0.9, fit
    report = matrix.check(model, name, config, format_name, folder, source=source)
    gate = report["gate"]
    assert gate["passed"], report
    if export_format.quantized:
        assert gate["threshold"] == (0.98 if "scores" in report["max_abs_diff"] else 0.99)
    else:
        assert gate["threshold"] == 1e-4 and gate["value"] <= 1e-4

    inputs = matrix.held_out_batches(name, config, seed=0)[0]
    expected = models.get_family(name).name_outputs(model, model(inputs, training=False))
    if format_name in ("litert", "litert-int8", "onnx"):
        actual = run_in_own_runtime(format_name, export_format.path_in(folder), inputs)
    else:
        actual = export_format.load_runner(folder)(inputs)
    tolerance = 0.5 if export_format.quantized else 1e-4
    for key, value in expected.items():
        value = np.asarray(value)
        if "mask" in inputs and value.shape[:2] == inputs["mask"].shape:
            value, got = value[inputs["mask"]], actual[key][inputs["mask"]]
        else:
            got = actual[key]
        np.testing.assert_allclose(got, value, atol=tolerance, rtol=0)


def run_in_own_runtime(format_name, path, inputs):
    """Outputs of an exported file run one example at a time by
    ai_edge_litert or onnxruntime directly."""
    rows = len(next(iter(inputs.values())))
    outputs = []
    if format_name == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        for row in range(rows):
            feed = {i.name: inputs[i.name][row:row + 1] for i in session.get_inputs()}
            outputs.append(dict(zip(names, session.run(None, feed))))
    else:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=path).get_signature_runner("serving_default")
        for row in range(rows):
            outputs.append(runner(**{k: np.ascontiguousarray(v[row:row + 1]) for k, v in inputs.items()}))
    return {key: np.concatenate([np.asarray(o[key]) for o in outputs]) for key in outputs[0]}
