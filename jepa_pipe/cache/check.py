"""Out-of-core statistics of a finished teacher or text store, with dask over zarr.

One pass over the store in blocks of rows (default: one shard, what a shard job wrote),
each read and reduced to sums by its own dask task, so memory stays at a few blocks however
large the cache: NaN/Inf count, token norms (mean, std, min, max),
per-dimension mean and variance (and how many dimensions are dead). A collapsed or broken
teacher shows here before a week of training does: zero variance, exploding norms, NaNs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jepa_pipe.cache.store import open_store, store_meta

DEAD_VARIANCE = 1e-8


def _block_stats(array, start: int, stop: int, valid: np.ndarray) -> dict:
    """Partial sums of one block of rows (read here, dropped on return)."""
    x = array[start:stop][valid]  # [b, (L,) D] float16
    flat = x.reshape(-1, x.shape[-1]).astype(np.float32)  # [b·L, D]; sums in float64
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
        flat = flat[finite]
    norms = np.sqrt(np.einsum("ij,ij->i", flat, flat))  # no [b·L, D] temporary
    return {
        "n": len(flat),
        "nonfinite": int((~finite).sum()),
        "sum": flat.sum(axis=0, dtype=np.float64),
        "sumsq": np.square(flat).sum(axis=0, dtype=np.float64),
        "norm_sum": norms.sum(dtype=np.float64),
        "norm_sumsq": np.square(norms).sum(dtype=np.float64),
        "norm_min": norms.min(initial=np.inf),
        "norm_max": norms.max(initial=-np.inf),
    }


def _combine(parts: list[dict]) -> dict:
    sums = ("n", "nonfinite", "sum", "sumsq", "norm_sum", "norm_sumsq")
    out = {k: sum(p[k] for p in parts) for k in sums}
    out["norm_min"] = min(p["norm_min"] for p in parts)
    out["norm_max"] = max(p["norm_max"] for p in parts)
    return out


def check_store(path: str | os.PathLike, block_rows: int | None = None, workers: int = 2) -> dict:
    """Statistics of the store's main array (`tokens`, else `text`) over its valid rows,
    finite vectors only (the non-finite ones are counted). Each dask task reads one block of
    rows, reduces it to sums and returns them, so at most `workers` blocks are in memory."""
    import dask

    group = open_store(path)  # refuses an unfinished store
    meta = store_meta(group)
    name = "tokens" if "tokens" in group else "text"
    array = group[name]
    rows, dim = array.shape[0], array.shape[-1]
    block = block_rows or max(1, min(meta["shard_size"], rows))
    valid = group["valid"][:] if "valid" in group else np.ones(rows, bool)
    parts = [
        dask.delayed(_block_stats)(array, a, min(a + block, rows), valid[a : a + block])
        for a in range(0, rows, block)
    ]
    with dask.config.set(scheduler="threads", num_workers=workers):
        (total,) = dask.compute(dask.delayed(_combine)(parts))
    n = max(total["n"], 1)
    mean = total["sum"] / n
    var = np.maximum(total["sumsq"] / n - mean**2, 0.0)
    norm_mean = total["norm_sum"] / n
    return {
        "store": str(Path(path)),
        "array": name,
        "rows": rows,
        "valid_rows": int(valid.sum()),
        "vectors": int(total["n"]),
        "dim": dim,
        "block_rows": block,
        "nonfinite": int(total["nonfinite"]),
        "norm": {
            "mean": float(norm_mean),
            "std": float(np.sqrt(max(total["norm_sumsq"] / n - norm_mean**2, 0.0))),
            "min": float(total["norm_min"]),
            "max": float(total["norm_max"]),
        },
        "dim_mean_abs_max": float(np.abs(mean).max()),
        "dim_var": {"min": float(var.min()), "mean": float(var.mean()), "max": float(var.max())},
        "dead_dims": int((var < DEAD_VARIANCE).sum()),
        "per_dim": {"mean": mean.tolist(), "var": var.tolist()},
    }
