"""Small synthetic frames + teacher caches (and manifest) for training tests: the teacher's
tokens are a fixed function of the frames' patches, so a student can learn them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from jepa_pipe.cache.store import create_store, mark_complete
from jepa_pipe.datasets.manifest import ClipRecord, to_table, write_manifest

N, T, S, TUB, PATCH, D = 40, 8, 32, 2, 16, 12
GRID = (T // TUB, S // PATCH, S // PATCH)


def _store(path: Path, kind: str, arrays: dict, provenance: dict) -> dict:
    group = create_store(
        path,
        kind,
        {k: (v.shape, str(v.dtype), k == "frames") for k, v in arrays.items()},
        shard_size=8,
        provenance=provenance,
    )
    for k, v in arrays.items():
        group[k][:] = v
    mark_complete(path, {"valid": int(arrays["valid"].sum()), "invalid": 0})
    return group.attrs["jepa_pipe"]


def write_train_caches(root: Path, nan_row: int | None = None) -> Path:
    """Writes manifests/ucf101.parquet, cache/ucf101/{frames,teacher}.zarr and config.yaml under
    root; returns the config path."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (N, T, S, S, 3), dtype=np.uint8)
    patches = frames.reshape(N, GRID[0], TUB, GRID[1], PATCH, GRID[2], PATCH, 3).mean((2, 4, 6))
    proj = rng.normal(size=(3, D))
    tokens = (patches / 255 @ proj).reshape(N, -1, D).astype(np.float16)  # [N, L, D]
    if nan_row is not None:
        tokens[nan_row, 0, 0] = np.nan
    valid = np.ones(N, bool)
    cache = root / "cache" / "ucf101"
    fmeta = _store(
        cache / "frames.zarr",
        "frames",
        {"frames": frames, "valid": valid},
        {"dataset": "ucf101", "sampling": {"frames_per_clip": T}, "view": {"view": 0}},
    )
    _store(
        cache / "teacher.zarr",
        "teacher",
        {"tokens": tokens, "pooled": tokens.mean(1), "valid": valid},
        {
            "teacher": "teacher",
            "token_grid": list(GRID),
            "dim": D,
            "frames_fingerprint": fmeta["fingerprint"],
            "mean": [0.5] * 3,
            "std": [0.25] * 3,
        },
    )
    records = [
        ClipRecord(clip_id=f"c{i:03d}", path=f"c{i:03d}.mp4", split="train" if i < 32 else "test")
        for i in range(N)
    ]
    write_manifest(
        to_table(records, dataset="ucf101", splits=["train", "test"], classes=None),
        root / "manifests" / "ucf101.parquet",
    )
    (root / "data").mkdir(exist_ok=True)
    cfg = {
        "paths": {k: str(root / k) for k in ("manifests", "cache", "runs", "results", "logs")},
        "datasets": {
            "ucf101": {
                "root": str(root / "data"),
                "splits": ["train", "test"],
                "teachers": ["teacher"],
            }
        },
        "teachers": {"teacher": {"kind": "videomae", "weights": "tiny"}},
        "experiments": {
            name: {
                "system": system,
                "dataset": "ucf101",
                "teacher": "teacher",
                "student": {
                    "dim": 24,
                    "depth": 2,
                    "factorized_depth": 1,
                    "heads": 2,
                    "patch_size": PATCH,
                    "tubelet_size": TUB,
                },
                "predictor": {"dim": 24, "depth": 1, "heads": 2},
                "optim": {"lr": 1e-3, "warmup_steps": 2},
                "batch_size": 4,
                "steps": 6,
                "checkpoint_every": 2,
                "loader_workers": 0,
                **extra,
            }
            for name, system, extra in [
                ("st", "st_jepa", {"masking": {"kind": "tube", "ratio": 0.5}}),
                ("vj", "vjepa", {}),
                ("vj2", "vjepa2", {"clip_frames": [4, 8]}),
            ]
        },
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
