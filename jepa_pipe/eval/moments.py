"""Moment search over one video (VL-JEPA on Charades-STA): candidate windows of several
lengths at a fixed stride, scored by the caller (a predictor's query-conditioned score per
window), then temporal non-maximum suppression keeps the top-k distinct moments.

The random-window baseline ranks the same candidates in a seeded random order, so it is
evaluated exactly the way the model is (same windows, same NMS, same metric); it is averaged
over many draws, since one draw on a few dozen queries is a noisy estimate of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jepa_pipe.eval.metrics import Moment, moment_metrics, over_runs, temporal_iou

DEFAULT_LENGTHS_S = (2.0, 4.0, 8.0, 16.0)


def candidate_windows(
    duration_s: float, lengths_s: Sequence[float] = DEFAULT_LENGTHS_S, stride_s: float = 1.0
) -> np.ndarray:
    """[K, 2] (start, end) in seconds: every length at every multiple of the stride that fits
    in the video, shortest length first. A video shorter than every length gets one window,
    the whole video, so every query has a candidate."""
    if duration_s <= 0 or stride_s <= 0 or any(length <= 0 for length in lengths_s):
        raise ValueError(
            f"duration {duration_s}, stride {stride_s} and lengths {list(lengths_s)} must be > 0"
        )
    eps = 1e-9  # a window ending exactly at the video's end fits
    windows = [
        (start, start + length)
        for length in lengths_s
        for start in np.arange(0.0, duration_s - length + eps, stride_s)
    ]
    if not windows:
        windows = [(0.0, float(duration_s))]
    return np.asarray(windows, dtype=np.float64)


def temporal_nms(
    windows: np.ndarray, scores: np.ndarray, iou: float = 0.5, top_k: int = 5
) -> list[Moment]:
    """The top-k windows by score, skipping any whose IoU with an already kept window is
    >= `iou`. Ties keep the earlier candidate (stable sort)."""
    if len(windows) != len(scores):
        raise ValueError(f"{len(windows)} windows but {len(scores)} scores")
    kept: list[Moment] = []
    for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        w = (float(windows[i][0]), float(windows[i][1]))
        if all(temporal_iou(w, k) < iou for k in kept):
            kept.append(w)
            if len(kept) == top_k:
                break
    return kept


def random_window_moments(
    windows: np.ndarray, seed: int | Sequence[int], iou: float = 0.5, top_k: int = 5
) -> list[Moment]:
    """The baseline: the same candidates ranked by seeded random scores, through the same NMS
    (``seed``: anything ``np.random.default_rng`` takes, e.g. (run seed, draw, query))."""
    scores = np.random.default_rng(seed).random(len(windows))
    return temporal_nms(windows, scores, iou=iou, top_k=top_k)


def scored_moments(found: Sequence[Sequence[Moment]], ground_truth: Sequence[Moment]) -> dict:
    """``moment_metrics`` plus a diagnostic, ``top1_overlaps``: the percent of queries whose
    top-1 moment touches the ground truth at all (IoU > 0)."""
    out = moment_metrics(found, ground_truth)
    hits = [
        bool(m) and temporal_iou(m[0], gt) > 0 for m, gt in zip(found, ground_truth, strict=True)
    ]
    out["top1_overlaps"] = 100.0 * float(np.mean(hits))
    return out


def random_window_baseline(
    windows: Sequence[np.ndarray],
    ground_truth: Sequence[Moment],
    seed: int,
    draws: int = 100,
    iou: float = 0.5,
    top_k: int = 5,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Random windows scored like the model, per query its candidates ``windows[q]``: the mean
    of every metric over ``draws`` seeded draws, and each metric's 5th-95th percentile
    over them."""
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    per_draw = [
        scored_moments(
            [random_window_moments(w, (seed, d, q), iou, top_k) for q, w in enumerate(windows)],
            ground_truth,
        )
        for d in range(draws)
    ]
    mean = over_runs(per_draw, lambda v: float(v.mean()))
    spread = over_runs(per_draw, lambda v: np.percentile(v, [5, 95]).tolist())
    return mean, spread
