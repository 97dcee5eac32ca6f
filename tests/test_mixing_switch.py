"""MixUp and CutMix both on: each clip uses one of the two, about half each.

Every clip is one value on every pixel (and its own class), so a mixed clip
shows what happened to it: MixUp leaves one value between its own and its
partner's; CutMix leaves its own value and a box of its partner's; both at
once would leave a box of the partner's value on a blended clip.
"""

import functools

import numpy as np
import pytest
import tensorflow as tf

from data import pipeline

COUNT = 64


def mixed(mixing, seed=0):
    values = (np.arange(COUNT) + 1) / (COUNT + 1)
    frames = tf.constant(np.broadcast_to(values[:, None, None, None, None], (COUNT, 2, 8, 8, 1)),
                         tf.float32)
    targets = tf.eye(COUNT)
    seeds = tf.stack([tf.fill([COUNT], tf.constant(seed, tf.int64)),
                      tf.range(COUNT, dtype=tf.int64)], axis=1)
    inputs, targets = pipeline.mix_batch({"frames": frames}, targets, seeds, mixing)
    return values, inputs["frames"].numpy(), targets.numpy()


def kinds(values, frames, targets):
    """What happened to each clip: "mixup", "cutmix" or "unchanged"."""
    found = []
    for i in range(COUNT):
        pixels = frames[i].reshape(-1)
        seen = np.unique(np.round(pixels, 5))
        weights = targets[i]
        others = [k for k in np.flatnonzero(weights > 1e-6) if k != i]
        if len(seen) == 1 and np.isclose(seen[0], values[i], atol=1e-5):
            found.append("unchanged")
            continue
        assert len(others) == 1, f"clip {i}: targets {weights[weights > 0]}"
        partner = others[0]
        if len(seen) == 1:  # MixUp: the blend the targets say
            assert seen[0] == pytest.approx(weights @ values, abs=1e-5), f"clip {i}"
            found.append("mixup")
            continue
        # CutMix: only its own value and the partner's, the partner's on
        # the target's share of the pixels.
        own = np.isclose(pixels, values[i], atol=1e-5)
        pasted = np.isclose(pixels, values[partner], atol=1e-5)
        assert (own | pasted).all(), f"clip {i} holds values of neither clip: {seen}"
        assert pasted.mean() == pytest.approx(weights[partner], abs=1e-6), f"clip {i}"
        found.append("cutmix")
    return found


@functools.lru_cache(maxsize=None)
def mixed_kinds(mixing, seed=0):
    """`kinds` of one mixed batch, computed once per (mixing, seed)."""
    return kinds(*mixed(mixing, seed))


BOTH = pipeline.Mixing(mixup_alpha=0.4, cutmix_alpha=1.0)


def test_both_on_each_clip_is_mixed_up_or_cut_about_half_each():
    found = mixed_kinds(BOTH)
    mixups, cutmixes = found.count("mixup"), found.count("cutmix")
    assert found.count("unchanged") <= 6  # a clip drawn as its own partner, an empty box
    assert 0.3 < mixups / (mixups + cutmixes) < 0.7, (mixups, cutmixes)


@pytest.mark.parametrize("mixing, kind", [
    (pipeline.Mixing(mixup_alpha=0.4), "mixup"),
    (pipeline.Mixing(cutmix_alpha=1.0), "cutmix"),
])
def test_one_on_every_clip_uses_it(mixing, kind):
    found = mixed_kinds(mixing)
    assert set(found) <= {kind, "unchanged"} and found.count(kind) >= COUNT - 6


def test_the_choice_is_drawn_per_clip_from_its_seed():
    # Other seeds, other choices (the same seed giving the same batch is
    # test_augment's).
    assert mixed_kinds(BOTH, 0) != mixed_kinds(BOTH, 1)
