"""Benchmarks that print one JSON object: figures are measured side by side in one run, so
ratios hold on a noisy shared machine even when absolute times drift.

  bench decode   project decode (sampler + resize/crop) vs raw decord get_batch, same indices
  bench cache    decode-only, teacher-only and end-to-end clips/s; bytes per clip vs L·D·2
"""

from __future__ import annotations

import glob
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from jepa_pipe.sampling import ClipSampling, clip_indices


def _rate(fn, items) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - t0)


def bench_decode(paths: list[str], sampling: ClipSampling, rounds: int = 3) -> dict:
    """Both decoders in one thread, interleaved round by round; the median round counts."""
    import decord
    import torch

    from jepa_pipe.video import decode_clip

    torch.set_num_threads(1)

    def raw(path: str) -> None:
        vr = decord.VideoReader(path, num_threads=1)
        idx = clip_indices(len(vr), vr.get_avg_fps(), sampling)
        vr.get_batch(idx.reshape(-1).tolist()).asnumpy()

    def project(path: str) -> None:
        decode_clip(path, sampling, "decord")

    readable = []
    for path in paths:  # compare on files raw decord can read (it fails on some VP9 widths)
        try:
            raw(path)
            readable.append(path)
        except Exception:
            pass
    skipped, paths = len(paths) - len(readable), readable
    if not paths:
        raise RuntimeError("raw decord could not read any of the files")
    project(paths[0])  # warm caches
    raws, projects = [], []
    for _ in range(rounds):
        raws.append(_rate(raw, paths))
        projects.append(_rate(project, paths))
    first = decord.VideoReader(paths[0])
    r, p = statistics.median(raws), statistics.median(projects)
    return {
        "bench": "decode",
        "clips": len(paths),
        "rounds": rounds,
        "skipped_unreadable_by_raw_decord": skipped,
        "source_hw": list(first[0].shape[:2]),
        "sampling": sampling.as_dict(),
        "raw_decord_clips_per_s": round(r, 1),
        "project_clips_per_s": round(p, 1),
        "project_over_raw": round(p / r, 3),
    }


def bench_cache(cfg: dict, dataset: str, limit: int = 64) -> dict:
    """Decode-only, teacher-only and end-to-end on the first `limit` rows, in a scratch
    cache directory (real caches are not touched)."""
    from jepa_pipe.cache.build import (
        _load,
        build_part,
        finalize_store,
        inference_threads,
        init_stores,
        plan_from_config,
    )
    from jepa_pipe.datasets.manifest import read_manifest, write_manifest
    from jepa_pipe.video import DecodePool

    plan = plan_from_config(cfg, dataset)
    scratch = Path(tempfile.mkdtemp(prefix="jepa_bench_"))
    try:
        table = read_manifest(plan.manifest)
        table = table.slice(0, min(limit, table.num_rows))
        write_manifest(
            table.replace_schema_metadata(table.schema.metadata), scratch / "manifest.parquet"
        )
        plan = replace(plan, manifest=scratch / "manifest.parquet", cache_dir=scratch / "cache")
        paths = [str(plan.root / p) for p in table.column("path").to_pylist()]
        n = len(paths)

        with DecodePool(plan.sampling, plan.workers, plan.timeout_s) as pool:
            t0 = time.perf_counter()
            decoded = {k: r for k, r, _ in pool.imap_unordered(enumerate(paths))}
            decode_rate = n / (time.perf_counter() - t0)
        clips = np.stack([decoded[i]["frames"][0] for i in range(n) if decoded[i] is not None])

        if plan.device == "cpu":  # the thread budget the teachers get inside the pipeline
            import torch

            torch.set_num_threads(inference_threads(plan))
        teachers = {name: _load(tcfg, plan.device) for name, tcfg in plan.teachers.items()}
        for teacher in teachers.values():  # warm up
            teacher.encode(clips[:1])
        t0 = time.perf_counter()
        for name, teacher in teachers.items():
            b = plan.teachers[name].get("batch_size", 8)
            for i in range(0, len(clips), b):
                teacher.encode(clips[i : i + b])
        teacher_rate = len(clips) / (time.perf_counter() - t0)
        del teachers

        init_stores(plan)
        report = build_part(plan, 0, 1)
        e2e_rate = report["steady"]["rows"] / report["steady"]["seconds"]
        stores = {}
        for name in plan.teachers:
            s = finalize_store(plan.store_path(name), plan.manifest)
            stores[name] = {
                "bytes_per_clip": round(s["tokens_bytes_per_row"], 1),
                "ideal_bytes_per_clip": s["token_bytes_ideal"],
                "over_ideal": round(s["tokens_bytes_per_row"] / s["token_bytes_ideal"], 4),
            }
        slower = min(decode_rate, teacher_rate)
        return {
            "bench": "cache",
            "dataset": dataset,
            "clips": n,
            "device": plan.device,
            "decode_workers": plan.workers,
            "teachers": list(plan.teachers),
            "inference_threads": inference_threads(plan) if plan.device == "cpu" else None,
            "decode_clips_per_s": round(decode_rate, 1),
            "teacher_clips_per_s": round(teacher_rate, 1),
            "end_to_end_clips_per_s": round(e2e_rate, 1),
            "end_to_end_over_slower_stage": round(e2e_rate / slower, 3),
            "tokens": stores,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def expand(pattern: str, limit: int) -> list[str]:
    paths = sorted(glob.glob(pattern))[:limit]
    if not paths:
        raise FileNotFoundError(f"no file matches {pattern!r}")
    return paths


def bench_loader(fields: list, batch_size: int = 8, rounds: int = 3) -> dict:
    """Cache loader rows/s vs a numpy memmap gather of the same rows in the same batches (the
    limit: data already decoded in one flat file per array, pages mapped), over ``rounds``
    epochs read as training reads them (one iterator); the median of three repeats each."""
    import numpy as np

    from jepa_pipe.cache.loader import CacheBatches

    ds = CacheBatches(fields, batch_size=batch_size, seed=0)
    ds.set_epoch(0, epochs=rounds)
    order = [b["row"] for b in ds]  # also maps the shards and checks their checksums once
    n = sum(len(r) for r in order)
    scratch = Path(tempfile.mkdtemp(prefix="jepa_bench_"))
    try:
        import zarr

        maps = {}
        for f in fields:
            np.save(scratch / f"{f.name}.npy", zarr.open_group(str(f.store), mode="r")[f.array][:])
            maps[f.name] = np.load(scratch / f"{f.name}.npy", mmap_mode="r")
        for rows in order:  # map the pages once, as the loader's first pass did
            for m in maps.values():
                np.ascontiguousarray(m[np.sort(rows)])
        loads, gathers = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            got = sum(len(b["row"]) for b in ds)
            loads.append(got / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for rows in order:
                for m in maps.values():
                    np.ascontiguousarray(m[np.sort(rows)])
            gathers.append(n / (time.perf_counter() - t0))
        load, gather = statistics.median(loads), statistics.median(gathers)
        return {
            "bench": "loader",
            "rows": n,
            "batch_size": batch_size,
            "epochs": rounds,
            "fields": [f.name for f in fields],
            "loader_rows_per_s": round(load, 1),
            "memmap_gather_rows_per_s": round(gather, 1),
            "loader_over_memmap": round(load / gather, 3),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
