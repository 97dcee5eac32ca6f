"""The benchmark report's arithmetic: FLOP counts against hand-computed
values, and the table's derived columns. No timings are asserted."""

import json
import re

import keras
import numpy as np
import pytest

from benchmarks import flops, report
from common.cli import run_main


def model_of(layer, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


def zeros(shape):
    return np.zeros(shape, "float32")


def test_dense_flops_match_the_hand_count():
    # 7 positions x 10 outputs x 16 inputs multiply-accumulates, 2 FLOPs each.
    model = model_of(keras.layers.Dense(10), (7, 16))
    assert flops.forward_flops(model, zeros((1, 7, 16))) == 2 * 7 * 10 * 16
    # Per sample: a batch of 3 costs three times as much.
    assert flops.forward_flops(model, zeros((3, 7, 16))) == 3 * 2 * 7 * 10 * 16


@pytest.mark.parametrize(
    "kwargs, output_positions",
    [
        (dict(padding="valid"), 2 * 6 * 6),            # (4-3+1) x (8-3+1)^2
        (dict(padding="same", strides=2), 2 * 4 * 4),  # ceil(4/2) x ceil(8/2)^2
    ],
)
def test_conv3d_flops_match_the_hand_count(kwargs, output_positions):
    model = model_of(keras.layers.Conv3D(5, 3, **kwargs), (4, 8, 8, 3))
    # Every output value sums a 3x3x3 window over 3 input channels.
    expected = 2 * output_positions * 5 * (3 * 3 * 3 * 3)
    assert flops.forward_flops(model, zeros((1, 4, 8, 8, 3))) == expected


def test_a_frozen_layer_adds_no_backward_pass():
    inputs = keras.Input((16,))
    frozen = keras.layers.Dense(8, name="frozen")
    model = keras.Model(inputs, keras.layers.Dense(4)(frozen(inputs)))
    forward = 2 * (16 * 8 + 8 * 4)
    assert flops.train_flops(model, zeros((1, 16))) == (forward, 3 * forward)
    frozen.trainable = False
    assert flops.train_flops(model, zeros((1, 16))) == (forward, forward + 2 * 2 * 8 * 4)


def test_depthwise_and_separable_convolutions():
    model = model_of(keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (6, 6, 4))
    assert flops.forward_flops(model, zeros((1, 6, 6, 4))) == 2 * (4 * 4 * 8) * 9
    model = model_of(keras.layers.SeparableConv2D(5, 3), (6, 6, 4))
    depthwise, pointwise = 4 * 4 * 4 * 9, 4 * 4 * 5 * 4
    assert flops.forward_flops(model, zeros((1, 6, 6, 4))) == 2 * (depthwise + pointwise)


def test_every_recurrent_step_is_counted_once():
    # LSTM(4) on 5 features: per step x(5) @ W(5x16) and h(4) @ U(4x16).
    model = model_of(keras.layers.Bidirectional(keras.layers.LSTM(4)), (6, 5))
    per_step = 2 * (5 * 16 + 4 * 16)
    assert flops.forward_flops(model, zeros((1, 6, 5))) == 2 * 6 * per_step
    # ConvLSTM2D(4, 3x3) on 10x10x2: per step an input conv (valid, 8x8 out)
    # and a recurrent conv (same, on the 8x8x4 state), 16 gate channels each.
    model = model_of(keras.layers.ConvLSTM2D(4, 3), (3, 10, 10, 2))
    per_step = 2 * (8 * 8 * 16 * (9 * 2) + 8 * 8 * 16 * (9 * 4))
    assert flops.forward_flops(model, zeros((1, 3, 10, 10, 2))) == 3 * per_step


def test_attention_flops():
    # Projections: query, key, value 6x8 -> 2 heads x 4, output 8 back to 8;
    # attention: scores 6x6 per head over depth 4, then the weighted values.
    model = keras.Model(
        inputs := keras.Input((6, 8)), keras.layers.MultiHeadAttention(2, 4)(inputs, inputs)
    )
    total, by_op = flops.forward_flops(model, zeros((1, 6, 8)), detail=True)
    projections = 3 * 6 * 8 * 8 + 6 * 8 * 8
    attention = 2 * 6 * 6 * 4 * 2
    assert total == 2 * (projections + attention)
    assert set(by_op) <= {"einsum", "dot_product_attention"}


def test_einsum_with_ellipsis_and_keras_ops_called_directly():
    matmul = keras.ops.matmul
    with flops.counting_flops() as count:
        keras.ops.einsum("...ij,jk->...ik", zeros((2, 3, 4, 5)), zeros((5, 6)))
        keras.ops.einsum("ij->ji", zeros((3, 4)))  # no arithmetic
        keras.ops.matmul(zeros((2, 3)), zeros((3, 4)))
    assert count.by_op == {"einsum": 2 * 2 * 3 * 4 * 5 * 6, "matmul": 2 * 2 * 3 * 4}
    # Outside the block keras.ops is back to normal.
    assert keras.ops.matmul is matmul
    with flops.counting_flops() as again:
        pass
    assert again.total == 0


def test_pipeline_check_and_derived_columns():
    row = report.derive(
        {"model samples/s": 2.0, "pipeline samples/s": 7.0, "forward GFLOPs/sample": 10.0},
        peak_gflops=200.0,
    )
    assert row["train GFLOP/s"] == pytest.approx(60.0)  # 3 x 10 GFLOPs x 2 samples/s
    assert row["of peak"] == pytest.approx(0.3)
    counted = report.derive(
        {"model samples/s": 2.0, "forward GFLOPs/sample": 10.0, "train GFLOPs/sample": 12.0},
        peak_gflops=200.0,
    )
    assert counted["train GFLOP/s"] == pytest.approx(24.0)
    assert row["pipeline >= 3x"] == "yes (3.5x)"
    slow = report.derive({"model samples/s": 2.0, "pipeline samples/s": 5.0}, peak_gflops=200.0)
    assert slow["pipeline >= 3x"] == "NO (2.5x)"
    assert report.derive({"model samples/s": 2.0}, peak_gflops=1.0)["pipeline >= 3x"] == "n/a"


def test_jit_choice_needs_a_clear_margin():
    assert report.choose_jit(1.0, 0.5) == "on"
    assert report.choose_jit(2.0, 1.8) == "on"  # exactly 0.9x
    assert report.choose_jit(2.0, 1.82) == "off"  # 0.91x
    assert report.choose_jit(1.0, 0.95) == "off"  # within noise: stay with the default
    assert report.choose_jit(1.0, 20.0) == "off"
    assert report.choose_jit(1.0, None) == "off"


def test_the_xla_update_is_chosen_on_cpu_time_and_never_when_slower():
    assert report.choose_update(1.0, 2.0, 0.9, 1.8) == "on"
    assert report.choose_update(1.0, 2.0, 1.0, 1.9) == "on"  # exactly 0.95x the CPU, same wall
    assert report.choose_update(1.0, 2.0, 0.9, 1.92) == "off"  # 0.96x: within noise
    assert report.choose_update(1.0, 2.0, 1.01, 1.5) == "off"  # less CPU, more wall time
    assert report.choose_update(1.0, 2.0, None, None) == "off"


def test_a_models_xla_update_choice_needs_one_win_and_no_loss():
    def row(step, cpu, update, update_cpu):
        return {"step_s": step, "step_cpu_s": cpu, "xla_update_step_s": update,
                "xla_update_cpu_s": update_cpu}

    win, even, slower_wall = row(1.0, 2.0, 0.9, 1.8), row(4.0, 1.6, 4.0, 1.6), row(7, 4, 8, 3.8)
    assert report.choose_model_update({"benchmark": even, "features": win}) == "on"
    assert report.choose_model_update({"benchmark": even}) == "off"
    assert report.choose_model_update({"benchmark": slower_wall, "features": win}) == "off"
    assert report.choose_model_update({"a": win, "b": row(1.0, 2.0, 1.0, 2.01)}) == "off"


@pytest.mark.parametrize("content, expected", [
    ("{oops", "not valid JSON"),
    ("[1, 2]", r"expected a JSON object \{\"rows\": \{model: row\}\}, got a list"),
    ('{"rows": [1, 2]}', r"'rows' must map model names to rows, got a list"),
    ('{"rows": {"convlstm": 3}}', r"row 'convlstm' must be an object, got int"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
])
def test_bad_results_file_is_refused_before_measuring(tmp_path, monkeypatch, capsys, content,
                                                       expected):
    def measured(*args, **kwargs):
        raise AssertionError("measured before the results file was checked")

    monkeypatch.setattr(report, "matmul_peak_gflops", measured)
    monkeypatch.setattr(report.train_step, "measure", measured)
    path = tmp_path / "results.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    before = path.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        run_main(report.main, ["--models", "convlstm", "--results", str(path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: {path}: ")
    assert re.search(expected, error[0]), error[0]
    assert path.read_bytes() == before  # left as it was


def test_results_file_in_a_missing_folder_is_refused_before_measuring(tmp_path, monkeypatch,
                                                                      capsys):
    def measured(*args, **kwargs):
        raise AssertionError("measured before the results file was checked")

    monkeypatch.setattr(report, "matmul_peak_gflops", measured)
    monkeypatch.setattr(report.train_step, "measure", measured)
    path = tmp_path / "absent" / "results.json"
    with pytest.raises(SystemExit) as exit_info:
        run_main(report.main, ["--models", "convlstm", "--results", str(path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"error: {path}: folder {tmp_path / 'absent'} does not exist"]


def test_results_file_rows_are_merged_by_model(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": {"convlstm": {"model": "convlstm", "batch": 2}}}))
    shown = report.merge_results(str(path), [{"model": "r2plus1d", "batch": 4}], "cpu", 10.0)
    assert [row["model"] for row in shown] == ["convlstm", "r2plus1d"]
    saved = json.loads(path.read_text())["rows"]
    assert saved["r2plus1d"] == {"model": "r2plus1d", "batch": 4, "machine": "cpu", "peak_gflops": 10.0}
    assert saved["convlstm"] == {"model": "convlstm", "batch": 2}


def test_results_flag_merges_invocations_into_one_table(tmp_path, monkeypatch, capsys):
    """Two invocations on two machines: the second re-measures one model
    and the table shows both, each row with the machine that measured it."""
    steps = {}

    def measure(name, repeats, pipeline=True, **variants):
        assert pipeline is False
        return {"model": name, "train step (s)": steps[name], "model samples/s": 4 / steps[name],
                "forward GFLOPs/sample": 2.0}

    monkeypatch.setattr(report.train_step, "measure", measure)
    path = tmp_path / "results.json"

    def invoke(machine, peak, names):
        monkeypatch.setattr(report, "machine_description", lambda: machine)
        monkeypatch.setattr(report, "matmul_peak_gflops", lambda: peak)
        code = run_main(report.main, ["--models", *names, "--results", str(path),
                                      "--no-pipeline", "--repeats", "1"])
        assert code == 0
        return capsys.readouterr().out

    steps.update(convlstm=2.0, r2plus1d=4.0)
    invoke("machine A", 100.0, ["convlstm", "r2plus1d"])
    steps.update(r2plus1d=0.5)
    printed = invoke("machine B", 400.0, ["r2plus1d"])

    rows = json.loads(path.read_text())["rows"]
    assert sorted(rows) == ["convlstm", "r2plus1d"]
    assert rows["convlstm"]["machine"] == "machine A" and rows["convlstm"]["peak_gflops"] == 100.0
    assert rows["r2plus1d"]["machine"] == "machine B" and rows["r2plus1d"]["peak_gflops"] == 400.0
    # Derived with each machine's own numbers: 2 samples/s x 3 x 2 GFLOPs
    # = 12 GFLOP/s of 100; 8 samples/s x 3 x 2 = 48 GFLOP/s of 400.
    assert rows["convlstm"]["train GFLOP/s"] == pytest.approx(12.0)
    assert rows["convlstm"]["of peak"] == pytest.approx(0.12)
    assert rows["r2plus1d"]["train step (s)"] == 0.5
    assert rows["r2plus1d"]["of peak"] == pytest.approx(0.12)
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in table[1:]] == ["| convlstm", "| r2plus1d"]
    assert "| 12.0% |" in table[1] and "| 0.5 |" in table[2]


def test_first_step_table_is_the_median_of_alternating_rounds(monkeypatch, capsys):
    from benchmarks import first_step

    calls = []
    # (wall, CPU) without, with, without, ...
    seconds = iter([(9.0, 8.0), (5.0, 6.0), (12.0, 9.0), (4.0, 2.0), (10.0, 12.0), (6.0, 3.0)])

    def time_once(name, preset, build):
        calls.append((name, preset, build))
        return next(seconds)

    monkeypatch.setattr(first_step, "time_once", time_once)
    assert first_step.main(["--models", "convlstm", "--repeats", "3"]) == 0
    assert calls == [("convlstm", "tiny", False), ("convlstm", "tiny", True)] * 3
    # Wall medians 10.0 and 5.0, CPU medians 9.0 and 3.0.
    assert "| convlstm | 10.0 | 5.0 | 2.00x | 9.0 | 3.0 | 3.00x |" in capsys.readouterr().out


def test_first_step_refuses_an_unknown_model(capsys):
    from benchmarks import first_step

    with pytest.raises(SystemExit) as stop:
        run_main(first_step.main, ["--models", "convlstm,nope"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--models: unknown ['nope']" in err and err.count("\n") == 1
