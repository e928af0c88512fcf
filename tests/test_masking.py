"""Mask statistics and invariants for every generator (8x14x14 is the V-JEPA grid)."""

from __future__ import annotations

import numpy as np
import pytest

from jepa_pipe.masking import (
    VJEPA_BLOCKS,
    future,
    make_masks,
    multiblock,
    random,
    tube,
)

GRID = (8, 14, 14)


def rng(seed=0):
    return np.random.default_rng(seed)


def test_tube_keeps_int_hw_one_minus_r_per_step_shared_over_time():
    m = tube(GRID, 8, 0.9, rng())
    assert m.target.shape == (8, *GRID) and m.target.dtype == bool
    visible_per_step = m.context.sum(axis=(2, 3))  # [B, T]
    assert (visible_per_step == int(196 * 0.1)).all()  # 19 of 196
    assert (m.target == m.target[:, :1]).all()  # one spatial mask for every time step
    assert m.masked_fraction == pytest.approx(1 - 19 / 196)  # 90.3 %
    assert not (m.context & m.target).any()


def test_random_masks_exactly_int_l_r_per_sample():
    m = random(GRID, 5, 0.75, rng())
    assert (m.target.reshape(5, -1).sum(1) == int(8 * 196 * 0.75)).all()


def test_multiblock_matches_the_vjepa_collator_statistics():
    """About 73 % and 91 % masked for 8 x 0.15 and 2 x 0.7 at batch size 8 (DESIGN traps)."""
    fractions = {0: [], 1: []}
    g = rng(1)
    for _ in range(100):
        for i, m in enumerate(multiblock(GRID, 8, VJEPA_BLOCKS, g)):
            ctx = m.context.reshape(8, -1).sum(1)
            tgt = m.target.reshape(8, -1).sum(1)
            assert len(set(ctx)) == 1 and len(set(tgt)) == 1  # equal counts across the batch
            assert not (m.context & m.target).any()
            # full temporal extent: blocks span every step, and equal counts trim the
            # latest positions first, so each target is also a target at the first step
            assert (m.target <= m.target[:, :1]).all()
            fractions[i].append(1 - ctx[0] / m.context[0].size)
    assert np.mean(fractions[0]) == pytest.approx(0.73, abs=0.04)
    assert np.mean(fractions[1]) == pytest.approx(0.91, abs=0.04)


def test_future_masks_later_steps_more():
    m = future(GRID, 16, 0.6, 2.0, rng())
    per_step = m.target.mean(axis=(0, 2, 3))
    assert (np.diff(per_step) >= 0).all() and per_step[-1] > per_step[0] + 0.3
    assert m.masked_fraction == pytest.approx(0.6, abs=0.03)


@pytest.mark.parametrize(
    "masking",
    [
        {"kind": "tube", "ratio": 0.9},
        {"kind": "random", "ratio": 0.5},
        {"kind": "future", "ratio": 0.75, "future_bias": 2.0},
        {
            "kind": "multiblock",
            "blocks": [
                {"num_blocks": 8, "spatial_scale": 0.15},
                {"num_blocks": 2, "spatial_scale": 0.7},
            ],
        },
    ],
)
def test_make_masks_is_seeded_by_seed_and_step(masking):
    a = make_masks(masking, GRID, 4, seed=0, step=7)
    b = make_masks(masking, GRID, 4, seed=0, step=7)
    c = make_masks(masking, GRID, 4, seed=0, step=8)
    assert all(np.array_equal(x.target, y.target) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x.target, y.target) for x, y in zip(a, c, strict=True))
    assert len(a) == (2 if masking["kind"] == "multiblock" else 1)


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="unknown masking kind 'blocks'"):
        make_masks({"kind": "blocks"}, GRID, 2, 0, 0)
