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


def _peak_gib(device: str, reset: bool = False) -> float | None:
    """Peak GPU memory allocated by torch since the last reset (None off CUDA)."""
    import torch

    if not str(device).startswith("cuda"):
        return None
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return round(peak, 2)


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


def bench_cache(cfg: dict, dataset: str, limit: int = 64, isolate: bool = False) -> dict:
    """Decode-only, teacher-only and end-to-end on the first `limit` rows, in a scratch
    cache directory (real caches are not touched).

    `isolate` also runs the pass twice more before the end-to-end one, writing nothing:
    once decoding as usual, once from the rows decoded above. Against the full pass and the
    teacher alone, these say what the writes, the concurrent decoding and the pass's own loop
    each cost inside it."""
    from jepa_pipe.cache.build import (
        build_part,
        finalize_store,
        inference_threads,
        init_stores,
        load_configured_teacher,
        plan_from_config,
        row_tasks,
    )
    from jepa_pipe.datasets.manifest import read_manifest, write_manifest
    from jepa_pipe.video import DecodePool

    plan = plan_from_config(cfg, dataset)
    scratch = Path(tempfile.mkdtemp(prefix="jepa_bench_"))
    try:
        table = read_manifest(plan.rows)  # a segmented dataset: its segments
        table = table.slice(0, min(limit, table.num_rows))
        write_manifest(
            table.replace_schema_metadata(table.schema.metadata), scratch / "manifest.parquet"
        )
        plan = replace(
            plan, manifest=scratch / "manifest.parquet", segments=None, cache_dir=scratch / "cache"
        )
        tasks = row_tasks(plan, table)
        n = len(tasks)

        with DecodePool(plan.sampling, plan.workers, plan.timeout_s) as pool:
            t0 = time.perf_counter()
            decoded = {
                k: (r, e) for k, r, e in pool.imap_unordered((i, *t) for i, t in enumerate(tasks))
            }
            decode_rate = n / (time.perf_counter() - t0)
        clips = np.stack([r["frames"][0] for r, _ in map(decoded.get, range(n)) if r is not None])

        if plan.device == "cpu":  # the thread budget the teachers get inside the pipeline
            import torch

            torch.set_num_threads(inference_threads(plan))
        teachers = {
            name: load_configured_teacher(tcfg, plan.device) for name, tcfg in plan.teachers.items()
        }
        # timed as the pass runs them: float16 tokens from the device (projection left out:
        # it is fitted later, and costs a matmul on the device)
        for name, teacher in teachers.items():  # warm up at the batch size timed
            teacher.cache_tokens(clips[: plan.teachers[name].get("batch_size", 8)])
        per_teacher, teacher_peak = {}, {}
        for name, teacher in teachers.items():
            b = plan.teachers[name].get("batch_size", 8)
            _peak_gib(plan.device, reset=True)
            t0 = time.perf_counter()
            for _ in teacher.cache_token_batches(clips[i : i + b] for i in range(0, len(clips), b)):
                pass
            per_teacher[name] = time.perf_counter() - t0
            teacher_peak[name] = _peak_gib(plan.device)
        # all of the dataset's teachers, one after another: what the pass runs per clip
        teacher_rate = len(clips) / sum(per_teacher.values())
        del teachers

        init_stores(plan)
        isolated = {}
        if isolate:  # these write nothing, so the stores stay unbuilt for the full pass
            for label, rows in (("no_writes", None), ("predecoded_no_writes", decoded)):
                part = build_part(plan, 0, 1, decoded_rows=rows, write=False)
                isolated[f"{label}_clips_per_s"] = round(
                    part["steady"]["rows"] / part["steady"]["seconds"], 1
                )
                isolated[f"{label}_timing"] = part["timing"]
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
            "each_teacher_clips_per_s": {
                n: round(len(clips) / t, 1) for n, t in per_teacher.items()
            },
            "teacher_batch_sizes": {n: t.get("batch_size", 8) for n, t in plan.teachers.items()},
            "teacher_peak_gpu_gib": teacher_peak if plan.device != "cpu" else None,
            "end_to_end_clips_per_s": round(e2e_rate, 1),
            "end_to_end_over_slower_stage": round(e2e_rate / slower, 3),
            # seconds of the end-to-end build spent waiting for decoded shards, in each
            # teacher (inference + host copy), writing (background thread) and waiting for
            # the last shard's writes (drain; inside the steady window)
            "end_to_end_timing": report["timing"],
            **({"isolated": isolated} if isolate else {}),
            "tokens": stores,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def bench_write(tokens_shape: tuple[int, int], shard_size: int, rounds: int = 3) -> dict:
    """The cache writer alone: one shard of seeded random float16 tokens written through
    `write_shard` (what the pass's writer thread runs), in a scratch store; best of `rounds`.
    Also timed with a busy Python thread beside it, as the pass's inference and decoding
    threads are: a writer that holds the GIL, or waits for it between calls, slows there."""
    import threading

    from jepa_pipe.cache.shards import write_shard
    from jepa_pipe.cache.store import create_store

    scratch = Path(tempfile.mkdtemp(prefix="jepa_bench_"))
    try:
        shape = (shard_size, *tokens_shape)
        group = create_store(
            scratch / "store",
            "teacher",
            {"tokens": ((2 * shard_size, *tokens_shape), "float16", False)},
            shard_size=shard_size,
            provenance={},
        )
        data = np.random.default_rng(0).standard_normal(shape).astype(np.float16)
        mb = data.nbytes / 1e6
        result = {"bench": "write", "shard_shape": list(shape), "shard_mb": round(mb, 1)}
        for label, busy in (("alone", False), ("busy_thread", True)):
            stop = threading.Event()
            spinner = threading.Thread(target=_spin, args=(stop,))
            if busy:
                spinner.start()
            times = []
            for r in range(rounds):
                t0 = time.perf_counter()
                write_shard(group["tokens"], r % 2, data)
                times.append(time.perf_counter() - t0)
            stop.set()
            if busy:
                spinner.join()
            result[f"{label}_ms_per_shard"] = round(min(times) * 1000, 1)
            result[f"{label}_mb_per_s"] = round(mb / min(times), 1)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def expand(pattern: str, limit: int) -> list[str]:
    paths = sorted(glob.glob(pattern))[:limit]
    if not paths:
        raise FileNotFoundError(f"no file matches {pattern!r}")
    return paths


def _tiled_stores(fields: list, repeat: int, scratch: Path) -> list:
    """Copies of the fields' stores with every whole shard written ``repeat`` times (the same
    row bytes, an epoch ``repeat`` times longer), through the cache's own shard writer."""
    import zarr

    from jepa_pipe.cache.loader import Field
    from jepa_pipe.cache.shards import compressed, read_shard, write_shard
    from jepa_pipe.cache.store import ATTR, create_store, store_meta

    tiled = []
    for f in fields:
        src = zarr.open_group(str(f.store), mode="r")
        meta = store_meta(src)
        shard_size = meta["shard_size"]
        whole = meta["rows"] // shard_size  # a partial last shard is left out
        if not whole:
            raise ValueError(f"{f.store}: --repeat needs at least one whole shard")
        names = [f.array] + (["valid"] if "valid" in src else [])
        arrays = {
            name: (
                (whole * shard_size * repeat, *src[name].shape[1:]),
                str(src[name].dtype),
                compressed(src[name]),
            )
            for name in names
        }
        provenance = {k: v for k, v in meta.items() if k not in ("fingerprint", "complete")}
        provenance["rows"] = whole * shard_size * repeat
        path = scratch / f"{f.name}.zarr"
        group = create_store(
            path, meta["kind"], arrays, shard_size=shard_size, provenance=provenance
        )
        for name in names:
            for shard in range(whole):
                data = read_shard(src[name], shard)
                for k in range(repeat):
                    write_shard(group[name], k * whole + shard, data)
        group.attrs[ATTR] = {**store_meta(group), "complete": True}
        tiled.append(Field(f.name, path, f.array))
    return tiled


def synthetic_stores(
    rows: int, frames_shape: tuple, tokens_shape: tuple, shard_size: int, scratch: Path
) -> list:
    """A frames store (uint8) and a teacher store (float16 tokens) of ``rows`` seeded random
    rows of the given shapes, written through the cache's own shard writer: a loader bench at
    a real recipe's row size (e.g. ST-JEPA: 16 x 224 x 224 x 3 frames, 1568 x 384 tokens)."""
    from jepa_pipe.cache.loader import Field
    from jepa_pipe.cache.shards import write_shard
    from jepa_pipe.cache.store import create_store, mark_complete, num_shards

    rng = np.random.default_rng(0)
    specs = {
        "frames": ("frames", {"frames": ((rows, *frames_shape), "uint8", False)}),
        "tokens": ("teacher", {"tokens": ((rows, *tokens_shape), "float16", False)}),
    }
    fields = []
    for name, (kind, arrays) in specs.items():
        arrays["valid"] = ((rows,), "bool", False)
        path = scratch / f"{name}.zarr"
        group = create_store(path, kind, arrays, shard_size=shard_size, provenance={})
        for shard in range(num_shards(rows, shard_size)):
            n = min(shard_size, rows - shard * shard_size)
            shape = (n, *arrays[name][0][1:])
            if name == "frames":
                data = rng.integers(0, 256, shape, dtype=np.uint8)
            else:
                data = rng.standard_normal(shape, dtype=np.float32).astype(np.float16)
            write_shard(group[name], shard, data)
            write_shard(group["valid"], shard, np.ones(n, bool))
        mark_complete(path, {"valid": rows, "invalid": 0})
        fields.append(Field(name, path, name))
    return fields


def bench_loader(
    fields: list | None,
    batch_size: int = 8,
    rounds: int = 3,
    repeat: int = 1,
    synthetic: dict | None = None,
) -> dict:
    """Cache loader rows/s vs a numpy memmap gather of the same rows in the same batches (the
    limit: data already decoded in one flat file per array, pages mapped), over ``rounds``
    epochs read as training reads them (one iterator); the median of three repeats each.

    The gather builds each batch as the loader does (a dict of arrays, kept by the consumer
    until the next batch is built); ``memmap_discard_rows_per_s`` is the same gather with
    each array dropped as soon as it is made (its buffer stays hot in the CPU cache, which
    no training loop gets). ``repeat`` > 1 reads a scratch copy of the stores with every shard
    written ``repeat`` times: the same rows, epochs ``repeat`` times longer, so the per-epoch
    planning is amortised as on a real dataset. ``synthetic`` (rows, frames_shape,
    tokens_shape, shard_size) reads seeded random stores of that size instead of ``fields``."""
    import numpy as np

    from jepa_pipe.cache.loader import CacheBatches

    scratch = Path(tempfile.mkdtemp(prefix="jepa_bench_"))
    try:
        import zarr

        if synthetic:
            fields = synthetic_stores(**synthetic, scratch=scratch / "synthetic")
        if repeat > 1:
            fields = _tiled_stores(fields, repeat, scratch / "tiled")
        ds = CacheBatches(fields, batch_size=batch_size, seed=0)
        ds.set_epoch(0, epochs=rounds)
        order = [b["row"] for b in ds]  # also maps the shards and checks their checksums once
        n = sum(len(r) for r in order)
        maps = {}
        for f in fields:
            np.save(scratch / f"{f.name}.npy", zarr.open_group(str(f.store), mode="r")[f.array][:])
            maps[f.name] = np.load(scratch / f"{f.name}.npy", mmap_mode="r")

        def gathered():
            for rows in order:
                yield {name: np.ascontiguousarray(m[np.sort(rows)]) for name, m in maps.items()}

        def gather() -> None:  # consumed like the loader: each batch held until the next
            for _batch in gathered():
                pass

        def gather_discard() -> None:
            for rows in order:
                for m in maps.values():
                    np.ascontiguousarray(m[np.sort(rows)])

        gather()  # map the pages once, as the loader's first pass did
        br, mapped = ds.block_rows, ds._mapped.kept
        names = [f.name for f in fields]
        can_copy = all(
            (name, int(r - r % br)) in mapped for rows in order for r in rows for name in names
        )

        def copied():  # the loader's row copies alone, from its mapped shards
            for rows in order:
                batch = {}
                for name, m in maps.items():
                    out = np.empty((len(rows), *m.shape[1:]), m.dtype)
                    for i, r in enumerate(rows.tolist()):
                        out[i] = mapped[(name, r - r % br)][r % br]
                    batch[name] = out
                yield batch

        def copy_only() -> None:
            for _batch in copied():
                pass

        def rate(fn) -> float:
            t0 = time.perf_counter()
            fn()
            return n / (time.perf_counter() - t0)

        def load() -> None:
            for _batch in ds:
                pass

        runs: dict[str, list[float]] = {"load": [], "gather": [], "discard": [], "copy": []}
        for _ in range(3):
            runs["load"].append(rate(load))
            runs["gather"].append(rate(gather))
            runs["discard"].append(rate(gather_discard))
            if can_copy:
                runs["copy"].append(rate(copy_only))
        med = {k: statistics.median(v) if v else None for k, v in runs.items()}
        load, gather_rate = med["load"], med["gather"]
        return {
            "bench": "loader",
            "rows": n,
            "rows_per_epoch": n // rounds,
            "repeat": repeat,
            "batch_size": batch_size,
            "epochs": rounds,
            "fields": [f.name for f in fields],
            "row_bytes": {f.name: int(maps[f.name][0].nbytes) for f in fields},
            "loader_rows_per_s": round(load, 1),
            "memmap_gather_rows_per_s": round(gather_rate, 1),
            "memmap_discard_rows_per_s": round(med["discard"], 1),
            "loader_over_memmap": round(load / gather_rate, 3),
            "loader_over_memmap_discard": round(load / med["discard"], 3),
            # the bound the loader's design allows: its row copies without its bookkeeping
            "row_copies_over_memmap": round(med["copy"] / gather_rate, 3) if med["copy"] else None,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def bench_train(cfg: dict, experiment: str, steps: int = 20) -> dict:
    """What a cache-only training step costs, on the experiment's own caches and batch size:

    - the loader's rows/s vs a memmap gather of the same rows (bench_loader);
    - the fraction of step time spent waiting for data in a short run of the real loop
      (its loader workers, metrics.parquet's data_wait_s; the first step is left out);
    - the cache-only step vs the same step with the teacher run online on the batch's frames
      (same student, same batches, one process, interleaved): ``ideal`` is
      (teacher + cached step) / cached step, ``speedup`` the measured online / cached step
      time, and ``efficiency`` = speedup / ideal (1.0: the cache removes the whole teacher
      cost and adds nothing)."""
    import copy

    import torch

    from jepa_pipe.cache import projection
    from jepa_pipe.cache.build import load_configured_teacher, teacher_weights
    from jepa_pipe.cache.store import open_store, store_path
    from jepa_pipe.train.loop import Trainer

    scratch = Path(tempfile.mkdtemp(prefix="jepa_bench_train_"))
    try:
        run_cfg = copy.deepcopy(cfg)
        run_cfg["experiments"][experiment]["steps"] = steps
        run_cfg["experiments"][experiment]["checkpoint_every"] = 10**9
        trainer = Trainer(run_cfg, experiment, runs=scratch / "run")
        exp = trainer.exp
        loader_result = bench_loader(trainer.data.fields, batch_size=exp["batch_size"], rounds=3)
        summary = trainer.run(progress=False)

        # cached vs online: a fresh trainer, batches read in this process
        timed = Trainer(run_cfg, experiment, runs=scratch / "timed")
        timed.data.workers = 0
        tname = exp["teacher"]
        tcfg = {**cfg["teachers"][tname], "weights": teacher_weights(cfg, tname)}
        teacher = load_configured_teacher(tcfg, str(timed.device))
        group = open_store(store_path(cfg["paths"]["cache"], exp["dataset"], tname))
        proj = projection.load(group)
        timed.data.set_epoch(0, epochs=None)
        batches = iter(timed.data)
        cached, online, teacher_s = [], [], []
        peaks = {"cached": 0.0, "online": 0.0}
        for i in range(steps):
            batch = next(batches)
            frames = torch.from_numpy(batch["frames"])
            t0 = time.perf_counter()
            timed.step(frames, torch.from_numpy(batch["tokens"]), 2 * i)
            cached.append(time.perf_counter() - t0)
            peaks["cached"] = max(peaks["cached"], _peak_gib(timed.device, reset=True) or 0.0)
            t0 = time.perf_counter()
            with torch.inference_mode():  # the teacher as an online pipeline would run it
                tokens = teacher.device_tokens(batch["frames"])  # [B, L, D_teacher]
                if proj is not None:  # the cache holds PCA-projected tokens: so does online
                    tokens = projection.project(tokens, proj["mean"], proj["components"])
            tokens = tokens.clone()  # a normal tensor: autograd refuses inference tensors
            if timed.device.type == "cuda":
                torch.cuda.synchronize(timed.device)
            t1 = time.perf_counter()
            timed.step(frames, tokens, 2 * i + 1)
            online.append(time.perf_counter() - t0)
            teacher_s.append(t1 - t0)
            peaks["online"] = max(peaks["online"], _peak_gib(timed.device, reset=True) or 0.0)
        keep = slice(2, None)  # warm-up steps left out
        student = statistics.median(cached[keep])
        teach = statistics.median(teacher_s[keep])
        both = statistics.median(online[keep])
        ideal = (teach + student) / student
        return {
            "bench": "train",
            "experiment": experiment,
            "device": str(timed.device),
            "torch_threads": torch.get_num_threads(),
            "batch_size": exp["batch_size"],
            "steps": steps,
            "loader_rows_per_s": loader_result["loader_rows_per_s"],
            "memmap_gather_rows_per_s": loader_result["memmap_gather_rows_per_s"],
            "loader_over_memmap": loader_result["loader_over_memmap"],
            "loader_workers": exp["loader_workers"],
            "data_wait_fraction": round(summary["data_wait_fraction"], 4),
            "cached_step_s": round(student, 5),
            "teacher_s": round(teach, 5),
            "online_step_s": round(both, 5),
            "ideal_speedup": round(ideal, 3),
            "speedup": round(both / student, 3),
            "efficiency": round(both / student / ideal, 3),
            # peak GPU memory of a cached step (student, predictor, optimizer) and of an online
            # one (the frozen teacher's weights and activations on top)
            "peak_gpu_gib": peaks if timed.device.type == "cuda" else None,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def bench_infer(cfg: dict, experiment: str, video: str | None = None, repeats: int = 3) -> dict:
    """`infer` latency on one video, in a scratch cache: cold (decode + video teacher + text
    teacher), warm video with a new query (text teacher only), warm video and a query seen
    before (no encoder). Each warm figure is the median of `repeats` calls."""
    from jepa_pipe.cache.segments import read_segments, segments_path
    from jepa_pipe.eval.charades import infer

    exp = cfg["experiments"][experiment]
    ckpt = Path(cfg["paths"]["runs"]) / experiment / "predictor.pt"
    if video is None:  # the dataset's first video
        segs = read_segments(segments_path(cfg["paths"]["manifests"], exp["dataset"]))
        video = str(Path(cfg["datasets"][exp["dataset"]]["root"]) / segs.column("path")[0].as_py())
    scratch = Path(tempfile.mkdtemp(prefix="jepa_infer_"))

    def timed(query: str) -> tuple[float, dict]:
        t0 = time.perf_counter()
        result = infer(cfg, ckpt, Path(video), query, cache_dir=scratch)
        return 1000 * (time.perf_counter() - t0), result

    try:
        cold_ms, cold = timed("a shape moves to the left")
        new = [timed(f"a shape moves quickly, take {i}") for i in range(repeats)]
        seen = [timed("a shape moves to the left") for _ in range(repeats)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    decode_ms = _segment_decode_ms(cfg, exp, video, repeats)
    assert cold["video_cache"] == "cold" and all(r["video_cache"] == "warm" for _, r in new + seen)
    return {
        "bench": "infer",
        "experiment": experiment,
        "video": video,
        "segments": cold["segments"],
        "cold_ms": round(cold_ms, 1),
        "warm_new_query_ms": round(float(np.median([t for t, _ in new])), 1),
        "warm_seen_query_ms": round(float(np.median([t for t, _ in seen])), 1),
        "cold_over_warm_seen": round(cold_ms / float(np.median([t for t, _ in seen])), 1),
        # the cold path's decode: all segments from one open file vs a decode per segment
        "segment_decode_ms": decode_ms,
        "repeats": repeats,
    }


def _segment_decode_ms(cfg: dict, exp: dict, video: str, repeats: int) -> dict:
    from jepa_pipe.cache.build import plan_from_config
    from jepa_pipe.cache.segments import segment_settings, video_windows
    from jepa_pipe.video import decode_clip, decode_clips, probe_video

    plan = plan_from_config(cfg, exp["dataset"])
    duration = probe_video(video)["duration_s"]
    _, windows = video_windows(duration, *segment_settings(cfg, exp["dataset"]))
    one, each = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        decode_clips(video, plan.sampling, windows)
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for w in windows:
            decode_clip(video, plan.sampling, window=w)
        each.append(time.perf_counter() - t0)
    one_ms, each_ms = 1000 * float(np.median(one)), 1000 * float(np.median(each))
    return {
        "one_open": round(one_ms, 1),
        "open_per_segment": round(each_ms, 1),
        "speedup": round(each_ms / one_ms, 1),
    }
