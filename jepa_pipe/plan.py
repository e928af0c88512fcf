"""What a config's cache stage will cost, before anything runs: clips, token grids, bytes per
clip, disk per store, teacher FLOPs per clip and GPU-hours at a stated throughput, shards and
jobs. Shapes come from the teachers' configs only (no weights are read); clip counts from
the manifests, or from the annotations when a manifest is not built yet. Every clip is
assumed to decode: an invalid row is stored empty, so a real cache with failures is smaller.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jepa_pipe.cache.build import (
    RANDOM_WEIGHTS,
    CachePlan,
    load_configured_teacher,
    plan_from_config,
    teacher_weights,
)

# float16 tokens: 2 bytes; every chunk also carries a 4-byte crc32c and its index entry,
# negligible next to a clip (measured 1.0013x L.D.2 on the demo's 16 KB rows)
F16 = 2
# per store: zarr metadata and provenance (~3 KB), and per shard its done marker and index
STORE_BYTES, SHARD_BYTES = 3000, 200


def describe_teacher(cfg: dict, name: str, frames: int, size: int):
    """The teacher's config-only description (shapes, no weights). A random checkpoint that
    the tiny_teacher rule has not written yet is described from the config it will write."""
    from jepa_pipe.teachers import TEACHERS, LoadOptions
    from jepa_pipe.teachers.tiny import teacher_config

    tcfg = cfg["teachers"][name]
    path = teacher_weights(cfg, name)
    if tcfg["weights"] in RANDOM_WEIGHTS and not Path(path).is_dir():
        config = teacher_config(tcfg["kind"], RANDOM_WEIGHTS[tcfg["weights"]], size, frames)
        return TEACHERS[tcfg["kind"]](config, LoadOptions())
    return load_configured_teacher({**tcfg, "weights": path}, "cpu", weights_too=False)


def encoder_flops(config, length: int, patch_pixels: int) -> float:
    """Forward FLOPs (2 per multiply-add) of a ViT-style encoder over `length` tokens: patch
    embedding, then per layer the QKV/output and MLP matmuls and the two attention products."""
    d, layers = config.hidden_size, config.num_hidden_layers
    mlp = getattr(config, "intermediate_size", None) or int(config.mlp_ratio * d)
    per_layer = 2 * length * (4 * d * d + 2 * d * mlp) + 4 * length * length * d
    return 2 * length * patch_pixels * d + layers * per_layer


def _rows_and_texts(cfg: dict, plan: CachePlan) -> tuple[int, int, str]:
    from jepa_pipe.datasets import build_manifest
    from jepa_pipe.datasets.manifest import read_manifest

    if plan.manifest.is_file():
        table, source = read_manifest(plan.manifest), str(plan.manifest)
    else:
        table, _ = build_manifest(plan.dataset, plan.root, cfg["datasets"][plan.dataset]["splits"])
        source = f"annotations under {plan.root}"
    texts = sum(len(t) for t in table.column("text").to_pylist())
    if plan.segments is not None and plan.segments.is_file():  # one cache row per segment
        return read_manifest(plan.segments).num_rows, texts, str(plan.segments)
    return table.num_rows, texts, source


def plan_dataset(cfg: dict, dataset: str, tflops: float) -> dict:
    plan = plan_from_config(cfg, dataset)
    s = plan.sampling
    rows, texts, source = _rows_and_texts(cfg, plan)
    views = s.num_views
    t, size = s.frames_per_clip, s.size
    frames_row = t * size * size * 3 + t * 8 + 4 * 8 + 1  # frames, indices, crop_box, valid
    stores = {
        "frames": {
            "bytes_per_clip": frames_row,
            "bytes": rows * views * frames_row,
            "note": "upper bound: zstd frames" if plan.compress_frames else None,
        }
    }
    teachers = {}
    for name, tcfg in plan.teachers.items():
        teacher = describe_teacher(cfg, name, t, size)
        grid = teacher.token_grid(t, size)
        length = int(np.prod(grid))
        dim = tcfg.get("projection", {}).get("dim", teacher.hidden_size)
        per_clip = length * dim * F16 + dim * F16 + 1  # tokens, pooled, valid
        stores[name] = {"bytes_per_clip": per_clip, "bytes": rows * views * per_clip}
        if views > 1:  # one store per view, same shapes
            stores[name]["views"] = views
        c = teacher.config
        patch = getattr(c, "tubelet_size", 1) * c.patch_size**2 * 3
        flops = encoder_flops(c, length, patch)
        teachers[name] = {
            "token_grid": list(grid),
            "dim": dim,
            "teacher_dim": teacher.hidden_size,
            "tflop_per_clip": float(f"{flops / 1e12:.3g}"),
            "gpu_hours": float(f"{rows * views * flops / (tflops * 1e12) / 3600:.3g}"),
        }
    if plan.text_teacher:
        name, tcfg = plan.text_teacher
        teacher = describe_teacher(cfg, name, t, size)
        per_text = teacher.hidden_size * F16 + 8  # text, text_row
        if tcfg["kind"] == "bert":  # token level, padded to max_length at most
            per_text += tcfg.get("max_length", 512) * (teacher.hidden_size * F16 + 1)
        stores[name] = {"bytes_per_text": per_text, "bytes": texts * per_text}
    shards = math.ceil(rows / plan.shard_size)
    warnings = [
        f"{name}: batch_size {tcfg.get('batch_size', 8)} > cache.shard_size "
        f"{plan.shard_size}: the pass batches within a shard, so it runs batches of "
        f"{plan.shard_size}; raise shard_size"
        for name, tcfg in plan.teachers.items()
        if tcfg.get("batch_size", 8) > plan.shard_size
    ]
    if plan.segments is not None and not plan.segments.is_file():
        warnings.append(
            f"segmented dataset: rows below are videos; each becomes one row per segment "
            f"(run `python -m jepa_pipe segments` first for the real counts, {plan.segments})"
        )
    for name, store in stores.items():
        per_view = "bytes_per_clip" in store  # frames and teacher stores: one per view
        store["bytes"] += (STORE_BYTES + SHARD_BYTES * shards) * views if per_view else STORE_BYTES
        proj = plan.teachers.get(name, {}).get("projection")
        if proj:  # float32 mean [D], components [D, dim], explained [dim]
            store["bytes"] += 4 * (teachers[name]["teacher_dim"] * (proj["dim"] + 1) + proj["dim"])
    n_stores = views * (1 + len(plan.teachers))
    return {
        "clips": rows,
        "texts": texts,
        "counted_from": source,
        "views": views,
        "clip": {"frames": t, "size": size},
        "teachers": teachers,
        "stores": stores,
        "bytes": sum(v["bytes"] for v in stores.values()),
        "shards": shards,
        "warnings": warnings,
        "jobs": {
            "cache_part": min(plan.parts, shards),
            "cache_finalize": n_stores,
            "cache_text": int(plan.text_teacher is not None),
        },
    }


def plan_config(cfg: dict, tflops: float = 200.0, datasets: list[str] | None = None) -> dict:
    """The plan of every dataset (or `datasets`) of a validated config."""
    out = {name: plan_dataset(cfg, name, tflops) for name in datasets or cfg["datasets"]}
    return {
        "tflops_assumed": tflops,
        "datasets": out,
        "total_bytes": sum(d["bytes"] for d in out.values()),
        "total_gpu_hours": float(
            f"{sum(t['gpu_hours'] for d in out.values() for t in d['teachers'].values()):.3g}"
        ),
    }


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return ""


def format_plan(result: dict) -> str:
    lines = [
        f"{'dataset':<13} {'store':<22} {'per clip':>10} {'total':>10}  "
        f"{'grid':<11} {'TFLOP/clip':>10} {'GPU-h':>8}"
    ]
    for ds, d in result["datasets"].items():
        for store, s in d["stores"].items():
            t = d["teachers"].get(store, {})
            per = s.get("bytes_per_clip", s.get("bytes_per_text"))
            grid = "x".join(map(str, t["token_grid"])) if t else ""
            lines.append(
                f"{ds:<13} {store:<22} {_size(per):>10} {_size(s['bytes']):>10}  {grid:<11} "
                f"{t.get('tflop_per_clip', ''):>10} {t.get('gpu_hours', ''):>8}"
            )
        jobs = ", ".join(f"{k} {v}" for k, v in d["jobs"].items())
        lines.append(
            f"{ds:<13} {d['clips']} clips x {d['views']} view(s), {d['texts']} texts, "
            f"{d['shards']} shards; jobs: {jobs}"
        )
        lines += [f"{ds:<13} warning: {w}" for w in d["warnings"]]
    lines.append(
        f"total: {_size(result['total_bytes'])} on disk, {result['total_gpu_hours']} GPU-hours "
        f"at {result['tflops_assumed']:g} TFLOP/s effective"
    )
    return "\n".join(lines)
