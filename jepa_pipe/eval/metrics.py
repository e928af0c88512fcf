"""Benchmark metrics, in one place (every eval calls these; tests/test_metrics.py pins them).

Ranks are 1-based and ties count against the query: a correct item's rank is the number of
items that score greater than or equal to it. A model that scores everything the same thus
ranks every correct item last (R@1 = 0, not 100). With several correct items per query (MSVD's
captions, a video's captions in video-to-text), the query's rank is its best-ranked correct
item. R@K is the percentage of queries ranked <= K, as in CLIP4Clip.

Moment retrieval (Charades-STA): temporal IoU of [start, end] intervals; R@K at IoU >= t
(inclusive) over each query's top-K moments, mIoU over top-1 moments, in percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

QueryToItem = Sequence[int | Sequence[int]] | None


def over_runs(runs: Sequence[dict[str, float]], reduce) -> dict:
    """Each metric reduced over repeated runs (heads, draws) with the same keys:
    ``reduce(values [R]) -> value``, e.g. ``over_runs(runs, np.mean)``."""
    return {k: reduce(np.array([r[k] for r in runs], dtype=np.float64)) for k in runs[0]}


def _correct_mask(sim: np.ndarray, query_to_item: QueryToItem) -> np.ndarray:
    """bool [Q, I]: True where an item is a correct answer to the query."""
    q, n = sim.shape
    correct = np.zeros((q, n), bool)
    if query_to_item is None:
        if q > n:
            raise ValueError(
                f"{q} queries but {n} items: the diagonal convention needs one item per query "
                "(pass query_to_item)"
            )
        correct[np.arange(q), np.arange(q)] = True
        return correct
    if len(query_to_item) != q:
        raise ValueError(f"sim has {q} queries but query_to_item has {len(query_to_item)}")
    for i, items in enumerate(query_to_item):
        items = [items] if isinstance(items, int | np.integer) else list(items)
        if not items:
            raise ValueError(f"query {i} has no correct item")
        for item in items:
            if not 0 <= int(item) < n:
                raise ValueError(f"query {i}: correct item {item} is outside the {n} items")
            correct[i, int(item)] = True
    return correct


def query_ranks(sim: np.ndarray, query_to_item: QueryToItem = None) -> np.ndarray:
    """sim [Q, I] (higher = more similar) -> int [Q]: each query's 1-based rank of its best
    correct item, ties counted against it."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"sim must be 2-D (queries x items), got shape {sim.shape}")
    if np.isnan(sim).any():
        q = int(np.argwhere(np.isnan(sim))[0][0])
        raise ValueError(f"sim has NaN scores (first in query {q})")
    correct = _correct_mask(sim, query_to_item)
    # the best correct item has the highest score among the correct ones, and its rank (items
    # scoring >= it) is the smallest of theirs
    best = np.where(correct, sim, -np.inf).max(axis=1, keepdims=True)  # [Q, 1]
    return (sim >= best).sum(axis=1)


def retrieval_metrics(sim: np.ndarray, query_to_item: QueryToItem = None) -> dict[str, float]:
    """R1, R5, R10 (percent), MdR and MnR of queries x items similarities.

    ``query_to_item``: each query's correct item index, or a sequence of them; None means the
    diagonal (query i matches item i)."""
    ranks = query_ranks(sim, query_to_item)
    return {
        "R1": 100.0 * float(np.mean(ranks <= 1)),
        "R5": 100.0 * float(np.mean(ranks <= 5)),
        "R10": 100.0 * float(np.mean(ranks <= 10)),
        "MdR": float(np.median(ranks)),
        "MnR": float(np.mean(ranks)),
    }


def topk_accuracy(
    scores: np.ndarray, labels: Sequence[int], ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Classification top-k accuracy in percent (``top1``, ``top5``, ...), with the same rank
    rule as retrieval: a sample is correct at k when at most k classes score >= its label."""
    labels = np.asarray(labels)
    ranks = query_ranks(scores, [int(y) for y in labels])
    return {f"top{k}": 100.0 * float(np.mean(ranks <= k)) for k in ks}


def proportion_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (top-1 on n test samples), in percent; 95 % at
    z = 1.96. It says how far an accuracy on a small test split moves by chance alone: 6 of
    24 correct is 12.0-44.9 %."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"proportion_interval: {successes} successes of {n} samples")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


Moment = tuple[float, float]
MOMENT_IOUS = (0.3, 0.5, 0.7)
MOMENT_KEYS = (*(f"R{k}@{t}" for k in (1, 5) for t in MOMENT_IOUS), "mIoU")


def temporal_iou(a: Moment, b: Moment) -> float:
    """Intersection over union of two [start, end] intervals (seconds)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def moment_metrics(
    predictions: Sequence[Sequence[Moment]], ground_truth: Sequence[Moment]
) -> dict[str, float]:
    """Charades-STA moment retrieval: ``R1@t`` / ``R5@t`` = percent of queries with a
    prediction among their top 1 / top 5 at IoU >= t (t in 0.3, 0.5, 0.7), and ``mIoU`` = the
    mean IoU of each query's top-1 prediction, in percent. ``predictions``: per query, moments
    ranked best first (an empty list misses); ``ground_truth``: per query, one moment."""
    if len(predictions) != len(ground_truth):
        raise ValueError(
            f"{len(predictions)} queries have predictions but {len(ground_truth)} ground truths"
        )
    for q, (s, e) in enumerate(ground_truth):
        if not (np.isfinite([s, e]).all() and e > s):
            raise ValueError(f"ground truth of query {q} is ({s}, {e}): needs start < end")
    ious = []  # [Q, 5]: IoU of the top-5 predictions, 0 where there are fewer
    for q, (ranked, gt) in enumerate(zip(predictions, ground_truth, strict=True)):
        row = np.zeros(5)
        for k, (s, e) in enumerate(list(ranked)[:5]):
            if not (np.isfinite([s, e]).all() and e >= s):
                raise ValueError(f"query {q}, prediction {k} is ({s}, {e}): needs start <= end")
            row[k] = temporal_iou((float(s), float(e)), gt)
        ious.append(row)
    ious = np.asarray(ious).reshape(-1, 5)
    out = {}
    for k in (1, 5):
        for t in MOMENT_IOUS:
            out[f"R{k}@{t}"] = 100.0 * float(np.mean((ious[:, :k] >= t).any(axis=1)))
    out["mIoU"] = 100.0 * float(np.mean(ious[:, 0]))
    return out
