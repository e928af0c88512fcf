"""Masks over a token grid [B, T', H', W'], in one place.

Every generator is seeded (a numpy Generator) and returns :class:`Masks`: ``context``
(tokens the student sees) and ``target`` (tokens it must predict), both bool [B, T', H', W'].
Counts are equal across the batch, so a batch packs into dense index tensors.

- tube: one spatial mask shared by every time step; ratio r keeps int(H'·W'·(1-r))
  positions per step (VideoMAE / ST-JEPA).
- multiblock: V-JEPA's 3D multi-block masking. For each mask configuration, block sizes are
  drawn once per batch (spatial scale, aspect ratio, temporal scale) and each sample places
  `num_blocks` blocks at random; the target is their union, the context the rest. Context
  and target are then cut to the batch's smallest count (in raster order), as V-JEPA's
  collator does. Several configurations per step give several Masks.
- future: V-JEPA 2-style future-biased temporal masking: time step t masks a fraction r_t of
  its positions, r_t growing with t (weights exp(bias·t/(T'-1)), rescaled so the mean is
  the ratio), so later steps are predicted from earlier context more often.
- random: int(L·r) positions of the whole grid per sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

MaskKind = Literal["tube", "multiblock", "future", "random"]
Grid = tuple[int, int, int]  # (T', H', W')


@dataclass(frozen=True)
class Masks:
    context: np.ndarray  # bool [B, T', H', W'], True = seen by the student
    target: np.ndarray  # bool [B, T', H', W'], True = predicted

    @property
    def masked_fraction(self) -> float:
        return float(self.target.mean())


@dataclass(frozen=True)
class BlockSpec:
    num_blocks: int = 8
    spatial_scale: tuple[float, float] = (0.15, 0.15)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)


# V-JEPA's two configurations (short-range and long-range)
VJEPA_BLOCKS = (BlockSpec(8, (0.15, 0.15)), BlockSpec(2, (0.7, 0.7)))


def _from_target(target: np.ndarray) -> Masks:
    return Masks(context=~target, target=target)


def _per_row_choice(rng: np.random.Generator, rows: int, n: int, k: int) -> np.ndarray:
    """bool [rows, n] with exactly k True per row, uniformly at random."""
    order = np.argsort(rng.random((rows, n)), axis=1)
    out = np.zeros((rows, n), bool)
    np.put_along_axis(out, order[:, :k], True, axis=1)
    return out


def tube(grid: Grid, batch: int, ratio: float, rng: np.random.Generator) -> Masks:
    t, h, w = grid
    keep = int(h * w * (1 - ratio))
    visible = _per_row_choice(rng, batch, h * w, keep).reshape(batch, 1, h, w)
    return _from_target(np.broadcast_to(~visible, (batch, t, h, w)).copy())


def random(grid: Grid, batch: int, ratio: float, rng: np.random.Generator) -> Masks:
    n = math.prod(grid)
    return _from_target(_per_row_choice(rng, batch, n, int(n * ratio)).reshape(batch, *grid))


def future(grid: Grid, batch: int, ratio: float, bias: float, rng: np.random.Generator) -> Masks:
    t, h, w = grid
    weights = np.exp(bias * np.arange(t) / max(t - 1, 1))
    per_step = ratio * t * weights / weights.sum()
    for _ in range(t):  # a step cannot mask more than all of it: give the excess to the rest
        full = per_step >= 1.0
        excess = per_step[full].sum() - full.sum()
        per_step[full] = 1.0
        if excess <= 1e-12 or full.all():
            break
        per_step[~full] += excess * weights[~full] / weights[~full].sum()
    target = np.zeros((batch, t, h, w), bool)
    for step, r in enumerate(per_step):
        target[:, step] = _per_row_choice(rng, batch, h * w, int(h * w * r)).reshape(batch, h, w)
    return _from_target(target)


def _block_size(grid: Grid, spec: BlockSpec, rng: np.random.Generator) -> tuple[int, int, int]:
    t, h, w = grid
    bt = max(1, int(t * rng.uniform(*spec.temporal_scale)))
    keep = int(h * w * rng.uniform(*spec.spatial_scale))
    ar = rng.uniform(*spec.aspect_ratio)
    bh, bw = round(math.sqrt(keep * ar)), round(math.sqrt(keep / ar))
    return min(bt, t), max(1, min(bh, h - 1)), max(1, min(bw, w - 1))


def _equal_counts(mask: np.ndarray) -> np.ndarray:
    """Keep each sample's first min-count True positions (raster order)."""
    flat = mask.reshape(len(mask), -1)
    k = int(flat.sum(1).min())
    keep = np.cumsum(flat, axis=1) <= k
    return (flat & keep).reshape(mask.shape)


def multiblock(
    grid: Grid, batch: int, blocks: Sequence[BlockSpec], rng: np.random.Generator
) -> list[Masks]:
    t, h, w = grid
    out = []
    for spec in blocks:
        bt, bh, bw = _block_size(grid, spec, rng)  # once per batch
        target = np.zeros((batch, t, h, w), bool)
        for b in range(batch):
            for _ in range(spec.num_blocks):
                t0, y0, x0 = (
                    rng.integers(0, t - bt + 1),
                    rng.integers(0, h - bh + 1),
                    rng.integers(0, w - bw + 1),
                )
                target[b, t0 : t0 + bt, y0 : y0 + bh, x0 : x0 + bw] = True
        context = _equal_counts(~target)
        out.append(Masks(context=context, target=_equal_counts(target)))
    return out


def make_masks(
    masking: dict, grid: Grid, batch: int, seed: int, step: int, rank: int = 0
) -> list[Masks]:
    """Masks for one training step from a config's `masking` section. Seeded by (seed, step,
    rank), so a resumed run draws exactly the masks an uninterrupted one would, and DDP ranks
    draw different ones."""
    rng = np.random.default_rng([seed, step, rank])
    kind = masking["kind"]
    ratio = masking.get("ratio", 0.9)
    if kind == "tube":
        return [tube(grid, batch, ratio, rng)]
    if kind == "random":
        return [random(grid, batch, ratio, rng)]
    if kind == "future":
        return [future(grid, batch, ratio, masking.get("future_bias", 2.0), rng)]
    if kind == "multiblock":
        specs = [
            BlockSpec(
                b.get("num_blocks", 8),
                (b.get("spatial_scale", 0.15),) * 2,
                (b.get("temporal_scale", 1.0),) * 2,
                tuple(b.get("aspect_ratio", (0.75, 1.5))),
            )
            for b in masking.get("blocks", [])
        ] or list(VJEPA_BLOCKS)
        return multiblock(grid, batch, specs, rng)
    raise ValueError(f"unknown masking kind {kind!r}; expected tube, multiblock, future, random")
