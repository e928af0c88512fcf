"""Benchmark metrics, in one place (every eval calls these; tests/test_metrics.py pins them).

Ranks are 1-based and ties count against the query: a correct item's rank is the number of
items that score greater than or equal to it. A model that scores everything the same thus
ranks every correct item last (R@1 = 0, not 100). With several correct items per query (MSVD's
captions, a video's captions in video-to-text), the query's rank is its best-ranked correct
item. R@K is the percentage of queries ranked <= K, as in CLIP4Clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

QueryToItem = Sequence[int | Sequence[int]] | None


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
