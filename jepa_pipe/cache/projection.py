"""PCA projection of teacher tokens, fitted out of core.

A teacher pass over SSv2 with VideoMAE-H writes ~4 MB of 1280-d tokens per clip; projected
to 384-d the cache is 3.3x smaller. The projection is fitted once, before the pass, on the
tokens of an evenly spaced sample of clips: they are spilled to a scratch zarr array and the
mean and covariance are reduced with dask block by block, so memory stays at one block plus
a D x D matrix however large the sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

PROJECTION_GROUP = "projection"


def sample_rows(rows: int, clips: int) -> np.ndarray:
    """`clips` row indices spread evenly over [0, rows) (deterministic)."""
    clips = max(1, min(rows, clips))
    return np.unique(np.linspace(0, rows - 1, clips).round().astype(np.int64))


def fit_pca(tokens: zarr.Array, dim: int) -> dict[str, np.ndarray]:
    """Mean [D], components [D, dim] (columns by decreasing variance, sign fixed so the
    largest-magnitude entry of each is positive) and explained variance ratio [dim]."""
    import dask.array as da

    n, d = tokens.shape
    if dim > d:
        raise ValueError(f"projection dim {dim} exceeds the teacher's dimension {d}")
    x = da.from_array(tokens, chunks=(tokens.chunks[0], d)).astype(np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = (centred.T @ centred) / max(n - 1, 1)
    mean, cov = da.compute(mean, cov)
    values, vectors = np.linalg.eigh(cov)  # ascending
    order = np.argsort(values)[::-1][:dim]
    components = vectors[:, order]
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(dim)])
    components *= np.where(signs == 0, 1, signs)
    explained = values[order] / max(values.sum(), 1e-12)
    return {
        "mean": mean.astype(np.float32),
        "components": components.astype(np.float32),
        "explained": explained.astype(np.float32),
    }


def project(tokens, mean, components):
    """[..., D] -> [..., dim] in float32: (tokens - mean) @ components.

    One implementation (torch) for the cache pass, which runs it on the teacher's device, and
    for callers with numpy arrays (returned as numpy), so both round the same way on a CPU."""
    import torch

    as_numpy = isinstance(tokens, np.ndarray)
    x = torch.as_tensor(tokens).float()
    mean = torch.as_tensor(mean, device=x.device).float()
    components = torch.as_tensor(components, device=x.device).float()
    out = (x - mean) @ components
    return out.numpy() if as_numpy else out


def save(group: zarr.Group, params: dict[str, np.ndarray]) -> None:
    sub = group.require_group(PROJECTION_GROUP)
    for name in ("mean", "components", "explained"):
        sub.create_array(name, data=params[name], overwrite=True)


def load(group: zarr.Group) -> dict[str, np.ndarray] | None:
    if PROJECTION_GROUP not in group:
        return None
    sub = group[PROJECTION_GROUP]
    return {name: sub[name][:] for name in ("mean", "components", "explained")}


def spill(path: Path, d: int, block_rows: int) -> zarr.Array:
    """A scratch array of sample tokens [0, D], grown block by block."""
    return zarr.create_array(
        str(path), shape=(0, d), chunks=(block_rows, d), dtype="float32", overwrite=True
    )
