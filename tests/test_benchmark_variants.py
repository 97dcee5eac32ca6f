"""The before/after and bfloat16 measurements: order, choices, profiles.
No timings are asserted."""

import pytest

import models
from benchmarks import profile, train_step
from train.engine import distribute


class RecordingModel:
    def __init__(self, label, calls):
        self.label, self.calls = label, calls

    def train_on_batch(self, inputs, targets):
        self.calls.append(self.label)


def test_variants_alternate_and_every_timed_step_counts():
    calls = []
    medians = train_step.interleaved_medians(
        {"after": RecordingModel("after", calls), "before": RecordingModel("before", calls)},
        inputs=None, targets=None, repeats=3, warmup=1,
    )
    assert calls == ["after", "before"] * 4
    assert set(medians) == {"after", "before"}
    assert all(value >= 0 for value in medians.values())
    calls.clear()
    times = train_step.interleaved_times(
        {"after": RecordingModel("after", calls), "fused": RecordingModel("fused", calls)},
        inputs=None, targets=None, repeats=2, warmup=0,
    )
    assert calls == ["after", "fused"] * 2
    # (wall, CPU) medians per variant.
    assert all(len(pair) == 2 and min(pair) >= 0 for pair in times.values())


def test_every_earlier_variant_is_a_valid_config():
    baselines = {name: models.get_family(name).speedup_baseline for name in models.NAMES}
    assert {name for name, fields in baselines.items() if fields} == {
        "bilstm_attention", "keyframe_transformer"}
    for name, overrides in baselines.items():
        config, _ = train_step.benchmark_config(name)
        assert config.with_overrides(**overrides) is not None


def test_bfloat16_column_says_why_it_is_empty(monkeypatch):
    monkeypatch.setattr(distribute, "device_kind", lambda: "cpu")
    monkeypatch.setattr(distribute, "cpu_bfloat16_flags", lambda cpuinfo=None: [])
    config = models.get_config("bilstm_attention", preset="tiny")
    assert "no native bfloat16" in train_step.bfloat16_unavailable("bilstm_attention", config)
    monkeypatch.setattr(distribute, "cpu_bfloat16_flags", lambda cpuinfo=None: ["avx512_bf16"])
    assert train_step.bfloat16_unavailable("bilstm_attention", config) is None
    # R(2+1)D's Conv3D guard stays: its bf16 kernel gradients are wrong.
    config = models.get_config("r2plus1d", preset="tiny")
    assert "Conv3D" in train_step.bfloat16_unavailable("r2plus1d", config)


def test_profile_self_time_subtracts_nested_ops():
    # A 10 ps loop holding two 3 ps matmuls, then a 2 ps add.
    events = [("loop", 0, 10), ("mm", 1, 3), ("mm", 5, 3), ("add", 12, 2)]
    assert sorted(profile.self_times(events)) == [("add", 2), ("loop", 4), ("mm", 3), ("mm", 3)]
    assert profile.op_label("model/dense/MatMul:MatMul") == "MatMul"
    assert profile.op_label("model/dense/MatMul:MatMul", by="name") == "MatMul (MatMul)"
    assert profile.op_label("ThreadpoolListener::Region") is None


def test_profile_overrides_parse_literals_and_refuse_bad_items():
    assert profile.parse_overrides(["lstm_units=8", "lstm_implementation=keras"]) == {
        "lstm_units": 8, "lstm_implementation": "keras"}
    with pytest.raises(ValueError, match="--set expects FIELD=VALUE"):
        profile.parse_overrides(["lstm_units"])
