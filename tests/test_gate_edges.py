"""The export gates at their thresholds: a value on the threshold, a small
step inside it and a small step outside it.

The float and int8 gates are checked with a stand-in model and export (a
table of outputs looked up by example index), so every value is exact; the
streaming gate with the tiny ConvLSTM and a step model that differs from it
on one frame.
"""

import numpy as np
import pytest

import models
from train import formats, tasks
from train.formats import gates, streaming
from train.metrics import ranking
from train.metrics.classification import two_columns

# The gates of the README's export section.
TOLERANCE = 1e-4  # float formats and the streaming export
TOP1 = 0.99  # int8 classifiers
RHO = 0.98  # int8 frame scorers


class Table:
    """A model or an export whose outputs are rows of fixed arrays: the
    input `index` names the examples of a batch. With `single`, it returns
    its one output as an array named by `output_names`, as a one-output
    Keras model does; `calls` records the `training` flag of every call."""

    def __init__(self, single=False, **outputs):
        self.outputs = {key: np.asarray(value) for key, value in outputs.items()}
        self.single = single
        self.output_names = list(self.outputs)
        self.calls = []

    def __call__(self, inputs, training="not given"):
        self.calls.append(training)
        rows = np.asarray(inputs["index"])
        found = {key: value[rows] for key, value in self.outputs.items()}
        return next(iter(found.values())) if self.single else found


def batches(count, size, mask=None):
    for start in range(0, count, size):
        batch = {"index": np.arange(start, min(count, start + size))}
        if mask is not None:
            batch["mask"] = mask[batch["index"]]
        yield batch


def verify(format_name, model, model_name, runner, batches):
    """train.formats.gates.verify with the format and the task's gate named."""
    return gates.verify(formats.get_format(format_name), model, model_name, runner, batches,
                        tasks.task_for(model_name).export_gate())


def test_the_thresholds_are_the_gates_own():
    assert (gates.FLOAT_TOLERANCE, gates.INT8_MIN_TOP1_AGREEMENT,
            gates.INT8_MIN_SPEARMAN) == (TOLERANCE, TOP1, RHO)


def gate(format_name, model_name, keras_outputs, export_outputs, count, size=64, mask=None):
    report = verify(format_name, Table(**keras_outputs), model_name,
                                   Table(**export_outputs), batches(count, size, mask))
    return report["gate"]


# -- float formats: the largest difference of the probabilities ------------------


@pytest.mark.parametrize("difference, passed", [
    (TOLERANCE, True),            # on the threshold: kept
    (0.99 * TOLERANCE, True),
    (1.01 * TOLERANCE, False),
])
def test_float_gate_at_its_tolerance(difference, passed):
    keras_side = np.zeros((6, 3))
    exported = keras_side.copy()
    exported[4, 2] = difference  # one value of one example, in the second batch
    result = gate("onnx", "r2plus1d", {"probabilities": keras_side},
                  {"probabilities": exported}, count=6, size=4)
    assert result["metric"] == "max_abs_diff[probabilities]"
    assert result["value"] == difference and result["threshold"] == TOLERANCE
    assert result["comparison"] == "<="  # the report says which side passes
    assert result["passed"] is passed


def test_float_gate_of_a_frame_scorer_ignores_padded_steps():
    mask = np.ones((2, 5), bool)
    mask[1, 3:] = False
    keras_side = np.zeros((2, 5))
    exported = keras_side.copy()
    exported[1, 3:] = 1.0                     # padding: not compared
    exported[0, 2] = 1.01 * TOLERANCE        # a real frame, just over
    result = gate("saved_model", "keyframe_transformer", {"scores": keras_side},
                  {"scores": exported}, count=2, mask=mask)
    assert result["metric"] == "max_abs_diff[scores]"
    assert result["value"] == pytest.approx(1.01 * TOLERANCE) and not result["passed"]
    exported[0, 2] = TOLERANCE
    result = gate("saved_model", "keyframe_transformer", {"scores": keras_side},
                  {"scores": exported}, count=2, mask=mask)
    assert result["value"] == TOLERANCE and result["passed"]


# -- int8 classifiers: top-1 agreement ----------------------------------------------


def flipped_classifier(count, flips, classes=3):
    """Keras probabilities with class `i % classes` on top, and an export
    that puts another class on top for the first `flips` examples."""
    keras_side = np.full((count, classes), 0.1)
    keras_side[np.arange(count), np.arange(count) % classes] = 0.8
    exported = keras_side.copy()
    exported[:flips] = np.roll(exported[:flips], 1, axis=1)
    return keras_side, exported


@pytest.mark.parametrize("flips, agreement, passed", [
    (1, 0.995, True),
    (2, 0.99, True),    # on the threshold: kept
    (3, 0.985, False),
])
def test_int8_top1_agreement_at_its_threshold(flips, agreement, passed):
    keras_side, exported = flipped_classifier(200, flips)
    result = gate("litert-int8", "r2plus1d", {"probabilities": keras_side},
                  {"probabilities": exported}, count=200)
    assert result["metric"] == "top1_agreement" and result["threshold"] == TOP1
    assert result["value"] == agreement and result["passed"] is passed
    assert result["comparison"] == ">="


def test_int8_agreement_of_one_sigmoid_output_is_on_which_side_of_a_half():
    # 100 examples; the export moves two of them across 0.5 (one each way)
    # and one only closer to it: 98% agree.
    keras_side = np.where(np.arange(100) % 2 == 0, 0.7, 0.3)[:, None]
    exported = keras_side.copy()
    exported[0], exported[1], exported[2] = 0.4, 0.6, 0.51
    result = gate("litert-int8", "r2plus1d", {"probabilities": keras_side},
                  {"probabilities": exported}, count=100)
    assert result["value"] == 0.98 and not result["passed"]


# -- int8 frame scorers: Spearman's rho per video, averaged ------------------------


def with_squared_rank_shift(n, total):
    """A permutation of 0..n-1 whose squared rank differences sum to
    `total`: disjoint swaps of positions k apart (each adds 2 k^2)."""
    order, left, start = list(range(n)), total, 0
    for k in range(5, 0, -1):
        while left >= 2 * k * k and start + k < n:
            order[start], order[start + k] = order[start + k], order[start]
            left -= 2 * k * k
            start += k + 1
    assert left == 0
    return np.asarray(order, float)


N = 30  # rho = 1 - 6 sum(d^2) / (n (n^2 - 1)), n (n^2 - 1) = 26970


@pytest.mark.parametrize("total, rho, passed", [
    (88, 1 - 6 * 88 / 26970, True),    # 0.98042
    (90, 1 - 6 * 90 / 26970, False),   # 0.97998
])
def test_int8_spearman_at_its_threshold(total, rho, passed):
    keras_side = np.arange(N, dtype=float)[None] / N
    exported = with_squared_rank_shift(N, total)[None] / N
    result = gate("litert-int8", "keyframe_transformer", {"scores": keras_side},
                  {"scores": exported}, count=1, mask=np.ones((1, N), bool))
    assert result["metric"] == "mean_spearman_rho" and result["threshold"] == RHO
    assert result["value"] == pytest.approx(rho, abs=1e-12) and result["passed"] is passed


@pytest.mark.parametrize("total, passed", [(176, True), (180, False)])
def test_int8_spearman_is_the_mean_over_videos(total, passed):
    # One video ranked exactly (rho 1) and one at 0.96085 or 0.95996: the
    # mean is 0.98042 or 0.97998, while the worst video is far below 0.98.
    keras_side = np.tile(np.arange(N, dtype=float) / N, (2, 1))
    exported = np.stack([keras_side[0], with_squared_rank_shift(N, total) / N])
    report = verify(
        "litert-int8", Table(scores=keras_side), "keyframe_transformer",
        Table(scores=exported), batches(2, 1, np.ones((2, N), bool)))
    second = 1 - 6 * total / 26970
    assert report["videos"] == 2 and report["spearman_min"] == pytest.approx(second)
    assert report["gate"]["value"] == pytest.approx((1 + second) / 2)
    assert report["gate"]["passed"] is passed


# -- what every report holds -----------------------------------------------------------


def test_float_report_takes_the_worst_batch_of_every_output():
    keras_side = np.array([[0.2, 0.3, 0.5]] * 6)
    exported = keras_side.copy()
    exported[1, 0] += 5e-5           # the worst difference, in the first batch
    exported[5, 2] -= 2e-5
    logits = np.zeros((6, 3))
    keras_model = Table(single=True, probabilities=keras_side)
    report = verify(
        "onnx", keras_model, "r2plus1d", Table(probabilities=exported, logits=logits),
        batches(6, 4))
    assert report["examples"] == 6
    assert report["max_abs_diff"] == {"probabilities": pytest.approx(5e-5, rel=1e-6)}
    assert report["gate"]["passed"] and report["gate"]["value"] == pytest.approx(5e-5, rel=1e-6)
    assert keras_model.calls == [False, False]  # inference, never training


def test_per_step_outputs_are_compared_at_real_steps_only():
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.uint8)  # 0/1 works too
    scores = np.full((3, 4), 0.5)
    steps = np.full((3, 4, 2), 0.25)  # a per-step output with a last axis
    exported_scores = np.where(mask, scores + 2e-5, 9.0)
    exported_steps = np.where(mask[..., None], steps - 3e-5, -9.0)
    report = verify(
        "litert", Table(scores=scores, steps=steps), "keyframe_transformer",
        Table(scores=exported_scores, steps=exported_steps), batches(3, 2, mask))
    # The last batch holds one video with no real step: it adds no difference.
    assert report["max_abs_diff"] == {"scores": pytest.approx(2e-5, rel=1e-6),
                                      "steps": pytest.approx(3e-5, rel=1e-6)}
    assert report["examples"] == 3 and report["gate"]["passed"]


def test_differences_of_float32_outputs_are_taken_in_float64():
    # 0.5 - 0.0001 is not a float32 number: the difference is exact only in float64.
    keras_side = np.array([[0.0001]], np.float32)
    exported = np.array([[0.5]], np.float32)
    report = verify("onnx", Table(probabilities=keras_side), "r2plus1d",
                                   Table(probabilities=exported), batches(1, 1))
    exact = np.float64(np.float32(0.5)) - np.float64(np.float32(0.0001))
    assert report["max_abs_diff"]["probabilities"] == exact


def test_an_export_without_an_output_is_refused():
    keras_side = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"the onnx export has outputs \['logits'\], "
                                         r"not \['probabilities'\]"):
        verify("onnx", Table(probabilities=keras_side), "r2plus1d",
                              Table(logits=keras_side), batches(2, 2))


def test_int8_classifier_report_keeps_the_float_margins():
    # Three classes; margins (top minus second) 0.1, 0.3, 0.5, 0.7 over two
    # batches; the export flips the examples of margins 0.5 and 0.1.
    keras_side = np.array([[0.5, 0.4, 0.1], [0.0, 0.35, 0.65], [0.75, 0.0, 0.25],
                           [0.15, 0.0, 0.85]])
    exported = keras_side.copy()
    exported[0] = [0.4, 0.5, 0.1]
    exported[2] = [0.25, 0.0, 0.75]
    report = verify(
        "litert-int8", Table(probabilities=keras_side), "r2plus1d",
        Table(probabilities=exported), batches(4, 2))
    assert report["examples"] == 4 and report["gate"]["value"] == 0.5
    assert report["float_top1_margin"] == {"median": pytest.approx(0.4), "min": pytest.approx(0.1)}
    assert report["flipped_examples_float_margins"] == [pytest.approx(0.1), pytest.approx(0.5)]


def test_int8_scores_without_a_mask_rank_every_step():
    keras_side = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    exported = np.array([[0.1, 0.2, 0.4, 0.3], [0.4, 0.3, 0.2, 0.1]])  # one swap: rho 0.8
    report = verify(
        "litert-int8", Table(scores=keras_side), "keyframe_transformer",
        Table(scores=exported), batches(2, 2))
    assert report["videos"] == 2 and report["spearman_min"] == pytest.approx(0.8)
    assert report["gate"]["value"] == pytest.approx(0.9)


def test_int8_scores_are_ranked_at_real_steps_only():
    # Padding (0 in a 0/1 mask) holds garbage: it must not count. The real
    # steps have one swap: rho 1 - 6 * 2 / 60 = 0.8.
    mask = np.array([[1, 1, 1, 1, 0, 0]], np.uint8)
    keras_side = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    exported = np.array([[0.2, 0.1, 0.3, 0.4, -5.0, -6.0]])
    result = gate("litert-int8", "keyframe_transformer", {"scores": keras_side},
                  {"scores": exported}, count=1, mask=mask)
    assert result["value"] == pytest.approx(0.8) and not result["passed"]


def test_int8_spearman_exactly_on_the_threshold_passes():
    # sum d^2 = 52 of n = 25: rho = 1 - 6 * 52 / 15600 = 0.98, which this
    # permutation also gives exactly in floating point.
    order = [0, 1, 3, 5, 2, 7, 4, 8, 6, 9, 10, 11, 13, 15, 12, 18, 14, 16, 17, 19, 20, 22, 23,
             21, 24]
    keras_side = np.arange(25, dtype=float)[None] / 25
    exported = np.asarray(order, float)[None] / 25
    result = gate("litert-int8", "keyframe_transformer", {"scores": keras_side},
                  {"scores": exported}, count=1, mask=np.ones((1, 25), bool))
    assert result["value"] == RHO and result["passed"]


def test_spearman_and_average_ranks_hand_worked():
    assert ranking.average_ranks([0.5, 0.1, 0.5, 0.9]).tolist() == [2.5, 1.0, 2.5, 4.0]
    assert ranking.average_ranks([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]
    assert ranking.spearman_rho([1.0, 2.0], [2.0, 1.0]) == pytest.approx(-1.0)
    # A constant side has no ranking to compare: NaN.
    assert np.isnan(ranking.spearman_rho([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(ranking.spearman_rho([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    # Tied halves have average ranks 1.5, 1.5, 3.5, 3.5 (standard deviation 1).
    assert ranking.spearman_rho([0, 0, 1, 1], [0, 1, 2, 3]) == pytest.approx(0.8944, abs=1e-4)
    assert ranking.spearman_rho([0, 1, 2, 3], [0, 0, 1, 1]) == pytest.approx(0.8944, abs=1e-4)


def test_two_columns_of_one_sigmoid_output():
    columns = two_columns(np.array([[0.25], [0.75]], np.float32))
    np.testing.assert_array_equal(columns, [[0.75, 0.25], [0.25, 0.75]])
    three = np.array([[0.2, 0.3, 0.5]])
    np.testing.assert_array_equal(two_columns(three), three)


# -- the streaming export ----------------------------------------------------------


class Shifted(streaming.Stepper):
    """The Keras step model with `shift` added to the probabilities after
    frame `at`."""

    def __init__(self, keras_stepper, at, shift):
        self.keras, self.at, self.shift, self.frame = keras_stepper, at, shift, 0

    def init(self, batch_size):
        self.frame = 0
        return self.keras.init(batch_size)

    def step(self, frames, states):
        probabilities, states = self.keras.step(frames, states)
        if self.frame == self.at:
            probabilities = probabilities + self.shift
        self.frame += 1
        return probabilities, states


@pytest.fixture(scope="module")
def convlstm():
    import keras

    import models

    keras.utils.set_random_seed(0)
    config = models.get_config("convlstm", preset="tiny")
    model = models.build_from_config("convlstm", config)
    clips = np.random.default_rng(0).uniform(size=(2, *config.input_shape)).astype("float32")
    return model, config, clips, streaming.KerasStepper(model, config, models.get_family("convlstm").streaming)


@pytest.mark.parametrize("at, shift, passed", [
    (None, 0.0, True),        # the step model itself
    (1, 0.5 * TOLERANCE, True),
    (1, 3 * TOLERANCE, False),  # a middle frame differs
    (3, 3 * TOLERANCE, False),  # the last frame differs
])
def test_streaming_gate_refuses_a_step_model_that_differs(convlstm, at, shift, passed):
    model, config, clips, keras_stepper = convlstm
    stepper = Shifted(keras_stepper, at, shift)
    report = streaming.verify(model, config, models.get_family("convlstm").streaming, stepper,
                              [{"frames": clips}])
    assert report["examples"] == 2
    assert report["gate"]["passed"] is passed
    per_frame = report["max_abs_diff"]["probabilities_per_frame_vs_keras_step"]
    assert per_frame == pytest.approx(shift, abs=1e-6)
    if at == 3:  # the output after the last frame is the clip model's too
        last = report["max_abs_diff"]["probabilities_last_frame_vs_clip_model"]
        assert last == pytest.approx(shift, abs=1e-5)
