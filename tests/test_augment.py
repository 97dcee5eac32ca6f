"""RandAugment, MixUp and CutMix of training clips (`data.pipeline`)."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import models  # noqa: F401  (registers the custom losses and metrics)
from data import pipeline
from models.convlstm import SparseOrSoftCategoricalCrossentropy
from tests.cli_calls import call
from train import run

PLAIN = pipeline.NO_AUGMENTATION


def batch_of(clips, labels, epoch=0, seed=0, **kwargs):
    """The first training batch of `clips` in their order at `epoch`."""
    batches = pipeline.clip_batches(
        pipeline.from_arrays(clips, labels), batch_size=len(clips), training=True,
        seed=seed, epoch=epoch, to_device=False, **kwargs,
    )
    inputs, targets = next(iter(batches))
    return inputs["frames"].numpy(), targets.numpy()


def paired_frames(count, frames=4, size=10, channels=4, seed=0):
    """uint8 clips whose frames come in equal pairs (0 = 1, 2 = 3, ...)."""
    rng = np.random.default_rng(seed)
    halves = rng.integers(40, 220, size=(count, frames // 2, size, size, channels), dtype=np.uint8)
    return np.repeat(halves, 2, axis=1)


def constant_clips(count, frames=3, size=12, channels=2):
    """Clip i has the value 20 (i + 1) on every pixel: mixed pixels name their clip."""
    values = 20 * (np.arange(count) + 1)
    clips = np.broadcast_to(
        values[:, None, None, None, None], (count, frames, size, size, channels)
    )
    return np.ascontiguousarray(clips).astype(np.uint8), values / 255.0


@pytest.mark.parametrize("op", [op for op in pipeline.RAND_AUGMENT_OPS if op != "identity"])
def test_each_rand_augment_op_changes_a_clip_alike_on_every_frame(op):
    clips = paired_frames(1)
    augmentation = dataclasses.replace(
        PLAIN, rand_augment=pipeline.RandAugment(num_ops=1, magnitude=9.0, ops=(op,))
    )
    frames, _ = batch_of(clips, [0], augmentation=augmentation)
    np.testing.assert_array_equal(frames[0, 0], frames[0, 1])
    np.testing.assert_array_equal(frames[0, 2], frames[0, 3])
    assert np.abs(frames[0] - clips[0] / 255.0).max() > 0.01, f"{op} left the clip unchanged"


def test_rand_augment_draws_once_per_clip_and_differently_per_clip():
    clips = np.repeat(paired_frames(1), 6, axis=0)  # six copies of one clip
    augmentation = dataclasses.replace(PLAIN, rand_augment=pipeline.RandAugment(num_ops=2))
    frames, _ = batch_of(clips, np.zeros(6), augmentation=augmentation)
    np.testing.assert_array_equal(frames[:, 0], frames[:, 1])
    np.testing.assert_array_equal(frames[:, 2], frames[:, 3])
    distinct = {frames[i].tobytes() for i in range(6)}
    assert len(distinct) > 1
    # Without it, the copies stay copies: the differences are RandAugment's.
    plain, _ = batch_of(clips, np.zeros(6), augmentation=PLAIN)
    assert len({plain[i].tobytes() for i in range(6)}) == 1


def mixed_constant_clips(mixing, count=6):
    """(frames, soft targets, values): `count` one-value clips of classes
    0..count-1 through `mixing`; each row of targets sums to 1."""
    clips, values = constant_clips(count)
    frames, targets = batch_of(
        clips, np.arange(count), augmentation=PLAIN, mixing=mixing, num_classes=count,
    )
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    return frames, targets, values


def test_cutmix_box_is_the_same_on_every_frame_and_weighs_the_label():
    count = 6
    frames, targets, values = mixed_constant_clips(pipeline.Mixing(cutmix_alpha=1.0), count)
    pasted_somewhere = False
    for i in range(count):
        box = ~np.isclose(frames[i], values[i])  # [T, H, W, C]
        for t in range(1, box.shape[0]):
            np.testing.assert_array_equal(box[t], box[0])
        np.testing.assert_array_equal(box[..., 1], box[..., 0])
        share = box[0, ..., 0].mean()
        assert targets[i, i] == pytest.approx(1.0 - share, abs=1e-6)
        if share > 0:
            pasted_somewhere = True
            partner = int(np.argmin(np.abs(values - frames[i][box][0])))
            assert targets[i, partner] == pytest.approx(share, abs=1e-6)
            rows, cols = np.nonzero(box[0, ..., 0])
            # One rectangle.
            assert box[0, ..., 0].sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    assert pasted_somewhere


def test_mixup_targets_sum_to_one_and_are_the_mixing_ratio():
    count = 6
    frames, targets, values = mixed_constant_clips(pipeline.Mixing(mixup_alpha=0.4), count)
    assert (targets > 0).sum(axis=1).max() <= 2
    # Every pixel of clip i is sum_k target[i, k] * value_k.
    np.testing.assert_allclose(frames.reshape(count, -1).mean(axis=1), targets @ values, atol=1e-5)
    np.testing.assert_allclose(frames.reshape(count, -1).std(axis=1), 0.0, atol=1e-5)
    assert ((targets > 1e-3) & (targets < 1 - 1e-3)).any()


def test_mixup_of_a_sigmoid_target_is_the_positive_weight():
    clips = np.zeros((6, 2, 4, 4, 1), np.uint8)
    labels = np.array([0, 1, 0, 1, 1, 0])
    clips[labels == 1] = 255
    frames, targets = batch_of(
        clips, labels, augmentation=PLAIN, mixing=pipeline.Mixing(mixup_alpha=1.0), binary=True,
    )
    assert targets.shape == (6, 1)
    np.testing.assert_allclose(frames.reshape(6, -1).mean(axis=1), targets[:, 0], atol=1e-5)


def test_every_draw_is_keyed_by_seed_and_epoch():
    clips = paired_frames(4, size=8, seed=1)
    kwargs = dict(
        augmentation=dataclasses.replace(
            pipeline.Augmentation(), rand_augment=pipeline.RandAugment(num_ops=2)
        ),
        mixing=pipeline.Mixing(mixup_alpha=0.4, cutmix_alpha=1.0), num_classes=4,
    )
    labels = np.arange(4)
    first = batch_of(clips, labels, epoch=3, **kwargs)
    again = batch_of(clips, labels, epoch=3, **kwargs)
    later = batch_of(clips, labels, epoch=4, **kwargs)
    other_seed = batch_of(clips, labels, epoch=3, seed=1, **kwargs)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], later[0])
    assert not np.array_equal(first[0], other_seed[0])


def test_validation_batches_are_neither_augmented_nor_mixed():
    clips, values = constant_clips(4)
    batches = pipeline.clip_batches(
        pipeline.from_arrays(clips, np.arange(4)), batch_size=4, training=False,
        augmentation=dataclasses.replace(PLAIN, rand_augment=pipeline.RandAugment()),
        mixing=pipeline.Mixing(mixup_alpha=1.0, cutmix_alpha=1.0), num_classes=4,
        to_device=False,
    )
    inputs, labels = next(iter(batches))
    assert labels.numpy().tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(inputs["frames"].numpy(), clips / 255.0, atol=1e-6)


def test_soft_targets_loss_is_the_sparse_loss_on_one_hot_rows():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], "float32")
    loss = SparseOrSoftCategoricalCrossentropy()
    sparse = float(loss(np.array([0, 2]), probabilities))
    assert float(loss(np.eye(3, dtype="float32")[[0, 2]], probabilities)) == pytest.approx(sparse)
    mixed = np.array([[0.6, 0.4, 0.0], [0.0, 0.0, 1.0]], "float32")
    expected = -np.mean([0.6 * np.log(0.7) + 0.4 * np.log(0.2), np.log(0.6)])
    assert float(loss(mixed, probabilities)) == pytest.approx(expected, rel=1e-5)


RUN_FLAGS = [
    "--synthetic-clips", "8", "--batch-size", "4", "--epochs", "1", "--run-eagerly", "--verbose", "0",
]


ALL_OPTIONS = ["--rand-augment", "2", "--rand-augment-ops", "rotate,solarize,sharpness",
               "--mixup-alpha", "0.4", "--cutmix-alpha", "1.0"]


@pytest.mark.parametrize(
    "model",
    [pytest.param("convlstm", marks=pytest.mark.slow), pytest.param("r2plus1d", marks=pytest.mark.slow)],
    ids=["sigmoid", "softmax"],
)
def test_a_run_trains_with_every_option_and_records_them(model, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = call(
        run.main, ["--model", model, "--preset", "tiny", *RUN_FLAGS, *ALL_OPTIONS, "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    options = json.loads((out / "config.json").read_text())["data_options"]
    assert {key: options[key] for key in (
        "rand_augment", "rand_augment_magnitude", "rand_augment_ops", "mixup_alpha", "cutmix_alpha"
    )} == {
        "rand_augment": 2, "rand_augment_magnitude": 9.0,
        "rand_augment_ops": "rotate,solarize,sharpness", "mixup_alpha": 0.4, "cutmix_alpha": 1.0,
    }
    with open(out / "history.csv") as file:
        history = list(csv.DictReader(file))
    assert len(history) == 1
    assert np.isfinite(float(history[0]["loss"])) and 0.0 <= float(history[0]["accuracy"]) <= 1.0
    # Validation and test keep hard labels.
    assert 0.0 <= float(history[0]["val_accuracy"]) <= 1.0
    assert 0.0 <= json.loads((out / "metrics.json").read_text())["test_accuracy"] <= 1.0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mixup-alpha", "-0.5"], "--mixup-alpha -0.5: expected a finite number >= 0"),
        (["--cutmix-alpha", "-1"], "--cutmix-alpha -1.0: expected a finite number >= 0"),
        (["--mixup-alpha", "inf"], "--mixup-alpha inf: expected a finite number >= 0"),
        (["--cutmix-alpha", "nan"], "--cutmix-alpha nan: expected a finite number >= 0"),
        (["--rand-augment", "1000"],
         "--rand-augment 1000: expected at most 12, the number of ops it draws from"),
        (["--rand-augment", "3", "--rand-augment-ops", "rotate,contrast"],
         "--rand-augment 3: expected at most 2"),
        (["--rand-augment-magnitude", "5"],
         "--rand-augment-magnitude 5.0: used only with --rand-augment N"),
        (["--rand-augment-ops", "rotate"], "--rand-augment-ops rotate: used only with --rand-augment"),
        (["--rand-augment", "2", "--rand-augment-ops", "rotate,blur"], "unknown op blur"),
        (["--rand-augment", "-1"], "--rand-augment -1: expected"),
        (["--rand-augment-magnitude", "12"], "--rand-augment-magnitude 12.0: expected"),
    ],
)
def test_bad_augmentation_options_are_one_line_and_exit_2(flags, message, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = call(
        run.main, ["--model", "convlstm", "--preset", "tiny", *RUN_FLAGS, *flags, "--out", str(out)],
        capsys,
    )
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not os.path.exists(out)  # refused before anything is read or written
