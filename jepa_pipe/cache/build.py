"""Building caches: init (create stores once) -> parts (decode + teachers, shard by shard)
-> finalize (verify, summarise, mark complete). Text stores are one job.

Resumable at shard granularity: a shard's done marker is written only after its aligned
write returned, so a killed job redoes exactly the shards without a marker, and the bytes
are the same as an uninterrupted build (decoding and teachers are deterministic per shard).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from jepa_pipe import get_logger
from jepa_pipe.cache import projection
from jepa_pipe.cache.segments import segments_path
from jepa_pipe.cache.shards import write_shard
from jepa_pipe.cache.store import (
    SCHEMA_VERSION,
    CacheError,
    create_store,
    file_sha256,
    library_versions,
    mark_complete,
    progress_dir,
    shard_marker,
    shard_rows,
    shards_of_part,
    store_meta,
    verify_store,
    write_json_atomic,
)
from jepa_pipe.datasets.manifest import manifest_path, read_manifest
from jepa_pipe.sampling import ClipSampling

log = get_logger("cache")
IMAGE_DATASETS = ("coco",)


@dataclass
class CachePlan:
    """What the config says about one dataset's caches."""

    dataset: str
    root: Path
    manifest: Path
    cache_dir: Path
    sampling: ClipSampling
    teachers: dict[str, dict] = field(default_factory=dict)
    text_teacher: tuple[str, dict] | None = None
    shard_size: int = 16
    parts: int = 1
    workers: int = 1
    timeout_s: float = 60.0
    device: str = "cpu"
    compress_frames: bool = False
    # segmented datasets (Charades-STA): the row stores hold one row per segment, listed in
    # this table (manifest columns + video_row); text stores keep the video manifest's rows
    segments: Path | None = None

    @property
    def rows(self) -> Path:
        """The table whose row order the frames and teacher stores share."""
        return self.segments or self.manifest

    def store_path(self, name: str) -> Path:
        return self.cache_dir / f"{name}.zarr"

    @staticmethod
    def view_name(store: str, view: int) -> str:
        """View 0 keeps the plain name; view v > 0 is a store of its own, `<store>.v<v>`,
        so every store keeps the contract's shapes ([N, T, H, W, 3], [N, L, D])."""
        return store if view == 0 else f"{store}.v{view}"

    def store_names(self) -> list[str]:
        """Every row-sharded store of the dataset: frames, then teachers, each per view."""
        views = range(self.sampling.num_views)
        return [self.view_name(s, v) for s in ["frames", *self.teachers] for v in views]


def tiny_checkpoint(cache_root: str, name: str) -> str:
    """Where the tiny_teacher rule writes teacher `name`'s random checkpoint."""
    return str(Path(cache_root) / "teachers" / name)


RANDOM_WEIGHTS = {"tiny": "tiny", "random": "full"}  # weights value -> tiny-teacher --size


def teacher_weights(cfg: dict, name: str) -> str:
    """``weights: tiny`` (the demo) and ``weights: random`` (the real architecture at full size,
    for GPU benchmarks) are random checkpoints written by the tiny_teacher rule."""
    weights = cfg["teachers"][name]["weights"]
    return tiny_checkpoint(cfg["paths"]["cache"], name) if weights in RANDOM_WEIGHTS else weights


def plan_from_config(cfg: dict, dataset: str) -> CachePlan:
    ds = cfg["datasets"][dataset]
    opts = cfg.get("cache", {})
    decode = dict(ds.get("decode", {}))
    if dataset in IMAGE_DATASETS:
        decode.update(frames_per_clip=1, frame_step=1, num_clips=1)
        decode.pop("fps", None), decode.pop("duration", None)
    text = ds.get("text_teacher")
    segmented = "segment_seconds" in decode
    for k in ("segment_seconds", "segment_stride"):
        decode.pop(k, None)
    return CachePlan(
        dataset=dataset,
        root=Path(ds["root"]),
        manifest=manifest_path(cfg["paths"]["manifests"], dataset),
        cache_dir=Path(cfg["paths"]["cache"]) / dataset,
        sampling=ClipSampling.from_config(decode),
        teachers={
            t: {**cfg["teachers"][t], "weights": teacher_weights(cfg, t)}
            for t in ds.get("teachers", [])
        },
        text_teacher=(text, {**cfg["teachers"][text], "weights": teacher_weights(cfg, text)})
        if text
        else None,
        shard_size=opts.get("shard_size", 16),
        parts=opts.get("parts", 1),
        workers=opts.get("decode_workers", 1),
        timeout_s=opts.get("decode_timeout_s", 60.0),
        device=opts.get("device", "cpu"),
        compress_frames=opts.get("compress_frames", False),
        segments=segments_path(cfg["paths"]["manifests"], dataset) if segmented else None,
    )


def row_tasks(plan: CachePlan, table) -> list[tuple]:
    """Per row, the decode task's (path, window): a row with start_s/end_s (a trimmed clip or
    a segment) is sampled inside that window, others over the whole file."""
    paths = [str(plan.root / p) for p in table.column("path").to_pylist()]
    starts, ends = table.column("start_s").to_pylist(), table.column("end_s").to_pylist()
    return [
        (p,) if a is None or b is None else (p, (a, b))
        for p, a, b in zip(paths, starts, ends, strict=True)
    ]


def inference_threads(plan: CachePlan) -> int:
    """On a CPU device the teachers get the cores the decode workers leave free, so the two
    stages run side by side instead of time-slicing the same cores."""
    return max(1, (os.cpu_count() or 1) - plan.workers)


def load_configured_teacher(tcfg: dict, device: str, weights_too: bool = True):
    """A teacher from its config entry (weights resolved): dtype on GPU only, options as
    configured; ``weights_too=False`` reads its config alone (shapes and provenance)."""
    from jepa_pipe.teachers import LoadOptions, load_teacher

    dtype = tcfg.get("dtype", "float32") if device != "cpu" else "float32"
    extra = {k: tcfg[k] for k in ("max_length", "cuda_graph") if k in tcfg}
    opts = LoadOptions(
        device=device,
        dtype=dtype,
        extra=extra,
        trust_remote_code=tcfg.get("trust_remote_code", False),
        allow_download=tcfg.get("allow_download", False),
        revision=tcfg.get("revision"),
    )
    return load_teacher(tcfg["kind"], tcfg["weights"], opts, weights_too=weights_too)


def _teacher_identity(name: str, tcfg: dict, teacher) -> dict:
    """What every store a teacher wrote records about it (video and text stores alike)."""
    from jepa_pipe.teachers import resolve_weights, weights_hash

    return {
        "teacher": name,
        "teacher_kind": tcfg["kind"],
        "weights": tcfg["weights"],
        "weights_sha256": weights_hash(resolve_weights(tcfg["weights"])),
        "dtype": "float16",
        "libraries": library_versions(),
        **teacher.provenance(),
    }


def _teacher_provenance(name: str, tcfg: dict, teacher, frames_meta: dict) -> dict:
    s = frames_meta["sampling"]
    return {
        **_teacher_identity(name, tcfg, teacher),
        "revision": tcfg.get("revision"),
        "compute_dtype": teacher.opts.dtype,
        "projection": None,
        "token_grid": list(teacher.token_grid(s["frames_per_clip"], s["size"])),
        "dim": teacher.hidden_size,
        "frames_fingerprint": frames_meta["fingerprint"],
        "manifest_sha256": frames_meta["manifest_sha256"],
    }


def _existing(path: Path, provenance_keys: dict) -> bool:
    """A store from an earlier (interrupted) run with the same provenance is kept."""
    if not (path / "zarr.json").is_file():
        return False
    try:
        meta = store_meta(zarr.open_group(str(path), mode="r"))
    except Exception:
        return False
    return all(meta.get(k) == v for k, v in provenance_keys.items())


def _fresh(path: Path, kind: str, arrays: dict, plan: CachePlan, prov: dict) -> None:
    import shutil

    if _existing(path, {**prov, "schema_version": SCHEMA_VERSION}):
        log.info("%s: kept (same provenance; finished shards are reused)", path)
        return
    shutil.rmtree(progress_dir(path), ignore_errors=True)
    create_store(path, kind, arrays, shard_size=plan.shard_size, provenance=prov)
    log.info("%s: created", path)


def init_stores(plan: CachePlan) -> dict:
    """Create the frames stores and one store per teacher, per view (metadata only), once."""
    import av
    import decord

    table = read_manifest(plan.rows)
    n, s = table.num_rows, plan.sampling
    t, size = s.frames_per_clip, s.size
    manifest_sha256 = file_sha256(plan.rows)
    out, frames_meta = {}, {}
    for v in range(s.num_views):
        prov = {
            "dataset": plan.dataset,
            "manifest_sha256": manifest_sha256,
            "sampling": s.as_dict(),
            "view": s.view(v),
            "frames_codec": "zstd" if plan.compress_frames else "none",
            "resize": "short side bilinear antialias",
            "decoders": {"decord": decord.__version__, "av": av.__version__},
        }
        path = plan.store_path(plan.view_name("frames", v))
        _fresh(
            path,
            "frames",
            {
                "frames": ((n, t, size, size, 3), "uint8", plan.compress_frames),
                "indices": ((n, t), "int64", True),
                "crop_box": ((n, 4), "int64", True),  # top, left, resized height, width
                "valid": ((n,), "bool", True),
            },
            plan,
            prov,
        )
        frames_meta[v] = store_meta(zarr.open_group(str(path), mode="r"))
        out[plan.view_name("frames", v)] = frames_meta[v]["fingerprint"]
    for name, tcfg in plan.teachers.items():
        # shapes and provenance only
        teacher = load_configured_teacher(tcfg, "cpu", weights_too=False)
        teacher.check_input(t, size)
        base = _teacher_provenance(name, tcfg, teacher, frames_meta[0])
        params = None
        if tcfg.get("projection"):  # fitted once, on view 0, shared by every view
            params, base["projection"] = _fit_projection(plan, name, tcfg, table, base)
            base["dim"] = base["projection"]["dim"]
        length, dim = int(np.prod(base["token_grid"])), base["dim"]
        for v in range(s.num_views):
            prov = {**base, "view": s.view(v), "frames_fingerprint": frames_meta[v]["fingerprint"]}
            path = plan.store_path(plan.view_name(name, v))
            _fresh(
                path,
                "teacher",
                {
                    "tokens": ((n, length, dim), "float16", False),
                    "pooled": ((n, dim), "float16", False),
                    "valid": ((n,), "bool", True),
                },
                plan,
                prov,
            )
            group = zarr.open_group(str(path), mode="r+")
            if params is not None:
                projection.save(group, params)
            out[plan.view_name(name, v)] = store_meta(group)["fingerprint"]
    return out


def _fit_projection(plan: CachePlan, name: str, tcfg: dict, table, prov: dict):
    """Fit the PCA on the teacher's tokens of an evenly spaced sample of clips."""
    import hashlib
    import math
    import shutil

    from jepa_pipe.video import DecodePool

    cfg = tcfg["projection"]
    length, d = int(np.prod(prov["token_grid"])), prov["dim"]
    rows = projection.sample_rows(
        table.num_rows, math.ceil(cfg.get("sample_tokens", 200_000) / length)
    )
    tasks = row_tasks(plan, table)
    teacher = load_configured_teacher(tcfg, plan.device)
    scratch = plan.cache_dir / ".pca" / f"{name}.zarr"
    spill = projection.spill(scratch, d, block_rows=max(4096, length * 8))
    batch, clips_used = tcfg.get("batch_size", 8), 0
    with DecodePool(plan.sampling, plan.workers, plan.timeout_s) as pool:
        done = {k: r for k, r, _ in pool.imap_unordered((int(r), *tasks[r]) for r in rows)}
    clips = [done[int(r)]["frames"][0] for r in rows if done[int(r)] is not None]
    for i in range(0, len(clips), batch):
        tokens, _ = teacher.encode(np.stack(clips[i : i + batch]))  # [B, L, D]
        spill.append(tokens.reshape(-1, d))
        clips_used += len(tokens)
    if clips_used == 0:
        raise CacheError(f"{plan.dataset}: no sample clip decoded to fit {name}'s projection")
    params = projection.fit_pca(spill, cfg["dim"])
    shutil.rmtree(scratch.parent, ignore_errors=True)
    digest = hashlib.sha256(params["mean"].tobytes() + params["components"].tobytes())
    info = {
        "method": cfg.get("method", "pca"),
        "dim": cfg["dim"],
        "input_dim": d,
        "sample_clips": clips_used,
        "sample_tokens": int(spill.shape[0]),
        "explained_variance": round(float(params["explained"].sum()), 6),
        "params_sha256": digest.hexdigest(),
    }
    log.info(
        "%s: %s projection %d -> %d fitted on %d tokens (%.1f%% of variance)",
        plan.dataset,
        name,
        d,
        cfg["dim"],
        info["sample_tokens"],
        100 * info["explained_variance"],
    )
    return params, info


def _decode_stream(
    plan: CachePlan,
    tasks: list[tuple],
    shards: list[int],
    rows: int,
    clip_ids: list[str],
    out: queue.Queue,
    decoded_rows: dict | None = None,
) -> None:
    """Background thread: decode shard after shard in worker processes and hand complete,
    assembled shards to the main thread, so decoding (and the copies into the shard's
    arrays) overlap with teacher inference. `decoded_rows` ({row: (result, error)}, for
    benchmarks) stands in for the decoders."""
    from jepa_pipe.video import DecodePool

    try:
        with (
            DecodePool(plan.sampling, plan.workers, plan.timeout_s)
            if decoded_rows is None
            else contextlib.nullcontext()
        ) as pool:
            for shard in shards:
                rng = shard_rows(shard, rows, plan.shard_size)
                if decoded_rows is not None:
                    results = {r: decoded_rows[r] for r in rng}
                else:
                    results = {
                        key: (result, error)
                        for key, result, error in pool.imap_unordered((r, *tasks[r]) for r in rng)
                    }
                backends = Counter(r["backend"] for r, _ in results.values() if r is not None)
                out.put((shard, *_assemble(plan, rng, results, clip_ids), backends))
        out.put(None)
    except BaseException as e:  # surface in the main thread
        out.put(e)


def build_part(
    plan: CachePlan,
    part: int,
    parts: int,
    *,
    decoded_rows: dict | None = None,
    write: bool = True,
) -> dict:
    """Build every unfinished shard that part `part` of `parts` owns, for every store.

    For `bench cache --isolate` only: `decoded_rows` replaces decoding with rows decoded
    earlier, and `write=False` runs the pass without writing anything (no shard is marked
    done), so each stage's share of the end-to-end time can be measured inside the pass."""
    table = read_manifest(plan.rows)
    rows = table.num_rows
    clip_ids = table.column("clip_id").to_pylist()
    tasks = row_tasks(plan, table)
    names = plan.store_names()
    groups = {name: zarr.open_group(str(plan.store_path(name)), mode="r+") for name in names}
    owned = shards_of_part(part, parts, rows, plan.shard_size)
    todo = []
    for shard in owned:
        need = [n for n in names if not shard_marker(plan.store_path(n), shard).is_file()]
        if need:
            todo.append((shard, need))
    report = {
        "part": part,
        "parts": parts,
        "shards_owned": owned,
        "built": {n: [s for s, need in todo if n in need] for n in names},
    }
    if not todo:
        return report
    if plan.device == "cpu":
        import torch

        torch.set_num_threads(inference_threads(plan))
    views = range(plan.sampling.num_views)
    teachers = {
        name: load_configured_teacher(cfg, plan.device)
        for name, cfg in plan.teachers.items()
        if any(plan.view_name(name, v) in need for _, need in todo for v in views)
    }
    projections = {name: projection.load(groups[name]) for name in plan.teachers}
    # opening an array reads its metadata from disk (~1 ms): once per store, not per shard
    arrays = {name: dict(group.arrays()) for name, group in groups.items()}
    decode_shards = [s for s, need in todo if any(n.startswith("frames") for n in need)]
    decoded: queue.Queue = queue.Queue(maxsize=2)
    if decode_shards:
        threading.Thread(
            target=_decode_stream,
            daemon=True,
            args=(plan, tasks, decode_shards, rows, clip_ids, decoded, decoded_rows),
        ).start()
    timing = Counter()
    writer = ShardWriter(write=write)
    try:
        steady = _build_shards(
            plan,
            part,
            parts,
            todo,
            rows,
            clip_ids,
            arrays,
            teachers,
            decoded,
            writer,
            timing,
            projections,
        )
    finally:
        writer.close()
    timing["write_s"] = writer.seconds
    report["timing"] = {k: round(v, 3) for k, v in timing.items()}
    report["steady"] = steady  # throughput after the first shard, without start-up costs
    return report


class ShardWriter:
    """Writes shards, then their done markers, in order, in a background thread: encoding
    (zstd) and file I/O release the GIL, so writing overlaps with inference on the next
    shard. A failed write is raised in the caller at the next submit or at flush; a marker
    is never written before its data."""

    def __init__(self, write: bool = True):
        self.write = write  # False: take the jobs, write nothing (benchmarks)
        self.jobs: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                if self.error is None and self.write:
                    t0 = time.perf_counter()
                    arrays, shard, marker, content = job
                    for array, data in arrays:
                        write_shard(array, shard, data)
                    write_json_atomic(marker, content)
                    self.seconds += time.perf_counter() - t0
            except BaseException as e:
                self.error = e
            finally:
                self.jobs.task_done()

    def submit(self, arrays: list, shard: int, marker: Path, content: dict) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put((arrays, shard, marker, content))

    def flush(self) -> None:
        self.jobs.join()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()


@dataclass
class _StoreShard:
    """One teacher store's shard while its batches are on the device."""

    teacher: str  # its name in plan.teachers (timing)
    store: str
    shard: int
    rng: range
    need: list[str]  # the shard's stores this run builds (logged when the shard is done)
    tokens: np.ndarray  # [n, L, D'] float16
    pooled: np.ndarray  # [n, D'] float16
    valid: np.ndarray  # [n]: decoded, and the teacher's output finite
    failures: list[dict]
    open_batches: int  # batches launched and not yet collected

    def fill(self, idx: np.ndarray, outputs: tuple, clip_ids: list[str]) -> None:
        """Store one collected batch (rows `idx` of the shard)."""
        tok, pool, finite = outputs  # [B, L, D'], [B, D'], [B]
        for i in idx[~finite]:
            self.valid[i] = False
            self.failures.append(
                {
                    "row": self.rng[i],
                    "clip_id": clip_ids[self.rng[i]],
                    "store": self.store,
                    "reason": "non-finite teacher output (NaN, Inf or beyond float16)",
                }
            )
        span = _run(idx) if finite.all() else None
        if span is not None:  # the usual case: one copy, no temporaries
            self.tokens[span], self.pooled[span] = tok, pool
        else:
            keep = idx[finite]
            self.tokens[keep], self.pooled[keep] = tok[finite], pool[finite]
        self.open_batches -= 1


def _build_shards(
    plan,
    part,
    parts,
    todo,
    rows,
    clip_ids,
    arrays: dict[str, dict[str, zarr.Array]],
    teachers,
    decoded,
    writer: ShardWriter,
    timing: Counter,
    projections: dict,
) -> dict:
    """Every teacher batch of every shard and store is launched before the previous one is
    collected, so the device never waits for the host between batches, shards or teachers:
    the host stores batch k and hands finished shards to the writer while batch k+1 runs."""
    from jepa_pipe.teachers import collect

    steady = {"start": None, "rows": 0}
    views = range(plan.sampling.num_views)
    open_stores: dict[int, int] = {}  # shard -> teacher stores not yet handed to the writer
    in_flight = None  # (job, rows, launched batch): collected after the next launch

    def shard_done(shard: int, need: list[str], n: int) -> None:
        log.info(
            "%s part %d/%d: shard %d done (%s)", plan.dataset, part, parts, shard, ", ".join(need)
        )
        if steady["start"] is None:  # throughput after the first shard, without start-up
            steady["start"] = time.perf_counter()
        else:
            steady["rows"] += n

    def store_done(job: _StoreShard) -> None:
        group = arrays[job.store]
        writer.submit(
            [
                (group["tokens"], job.tokens),
                (group["pooled"], job.pooled),
                (group["valid"], job.valid),
            ],
            job.shard,
            shard_marker(plan.store_path(job.store), job.shard),
            {
                "shard": job.shard,
                "rows": [job.rng.start, job.rng.stop],
                "valid": int(job.valid.sum()),
                "failures": job.failures,
            },
        )
        open_stores[job.shard] -= 1
        if not open_stores[job.shard]:
            shard_done(job.shard, job.need, len(job.rng))

    def finish(job: _StoreShard, idx: np.ndarray, launched) -> None:
        t0 = time.perf_counter()
        job.fill(idx, collect(launched), clip_ids)
        timing[f"teacher_{job.teacher}_s"] += time.perf_counter() - t0
        if not job.open_batches:
            store_done(job)

    for shard, need in todo:
        rng = shard_rows(shard, rows, plan.shard_size)
        sl = slice(rng.start, rng.stop)
        view_clips, failures = {}, []
        if any(n.startswith("frames") for n in need):
            t0 = time.perf_counter()
            item = decoded.get()
            timing["wait_decode_s"] += time.perf_counter() - t0
            if isinstance(item, BaseException):
                raise item
            got_shard, per_view, valid, failures, backends = item
            assert got_shard == shard
            for v in views:
                clips, indices, boxes = per_view[v]
                view_clips[v] = (clips, valid)
                name = plan.view_name("frames", v)
                if name not in need:
                    continue
                group = arrays[name]
                writer.submit(
                    [
                        (group["frames"], clips),
                        (group["indices"], indices),
                        (group["crop_box"], boxes),
                        (group["valid"], valid),
                    ],
                    shard,
                    shard_marker(plan.store_path(name), shard),
                    {
                        "shard": shard,
                        "rows": [rng.start, rng.stop],
                        "valid": int(valid.sum()),
                        "failures": failures,
                        "decoded_with": dict(sorted(backends.items())),
                    },
                )
        stores = [
            (name, v, plan.view_name(name, v))
            for name in teachers
            for v in views
            if plan.view_name(name, v) in need
        ]
        open_stores[shard] = len(stores)
        if not stores:
            shard_done(shard, need, len(rng))
        for name, v, store_name in stores:
            teacher, proj = teachers[name], projections[name]
            if v not in view_clips:  # decoded in an earlier run: read it back
                frames = arrays[plan.view_name("frames", v)]
                view_clips[v] = (frames["frames"][sl], frames["valid"][sl])
            clips, valid = view_clips[v]
            dim = teacher.hidden_size if proj is None else proj["components"].shape[1]
            length = int(np.prod(teacher.token_grid(clips.shape[1], clips.shape[2])))
            todo_rows = np.nonzero(valid)[0]
            batch = plan.teachers[name].get("batch_size", 8)
            batches = [todo_rows[i : i + batch] for i in range(0, len(todo_rows), batch)]
            job = _StoreShard(
                name,
                store_name,
                shard,
                rng,
                need,
                np.zeros((len(rng), length, dim), np.float16),
                np.zeros((len(rng), dim), np.float16),
                valid.copy(),
                [dict(f, store=store_name) for f in failures],
                open_batches=len(batches),
            )
            if not batches:
                store_done(job)
            for idx in batches:
                t0 = time.perf_counter()
                # a run of rows is a view; only a batch with an invalid row needs a gathered copy
                launched = teacher.launch(clips[_run(idx) or idx], proj)
                timing[f"teacher_{name}_s"] += time.perf_counter() - t0
                if in_flight is not None:
                    finish(*in_flight)
                in_flight = (job, idx, launched)
    if in_flight is not None:
        finish(*in_flight)
    t0 = time.perf_counter()
    writer.flush()  # the window ends when the last shard is on disk
    timing["drain_s"] += time.perf_counter() - t0  # the last writes, overlapping nothing
    return {"rows": steady["rows"], "seconds": time.perf_counter() - steady["start"]}


def _assemble(plan: CachePlan, rng: range, results: dict, clip_ids: list[str]):
    """Per view v: (clips [n, T, S, S, 3], indices [n, T], boxes [n, 4]); valid [n]; failures.
    A row that failed to decode is invalid in every view."""
    s = plan.sampling
    n, nv = len(rng), s.num_views
    clips = np.zeros((nv, n, s.frames_per_clip, s.size, s.size, 3), np.uint8)
    indices = np.full((nv, n, s.frames_per_clip), -1, np.int64)
    boxes = np.zeros((nv, n, 4), np.int64)
    valid = np.zeros(n, bool)
    failures = []
    for i, row in enumerate(rng):
        result, error = results[row]
        if result is not None and result["frames"].shape != (nv, *clips.shape[2:]):
            shape = (nv, *clips.shape[2:])
            error, result = f"decoded shape {result['frames'].shape} != {shape}", None
        if result is None:
            failures.append(
                {"row": row, "clip_id": clip_ids[row], "store": "frames", "reason": error}
            )
            continue
        clips[:, i], indices[:, i], boxes[:, i] = (
            result["frames"],
            result["indices"],
            result["boxes"],
        )
        valid[i] = True
    return [(clips[v], indices[v], boxes[v]) for v in range(nv)], valid, failures


def _run(idx: np.ndarray) -> slice | None:
    """The slice of sorted row indices that are consecutive, else None."""
    return slice(idx[0], idx[-1] + 1) if idx[-1] - idx[0] + 1 == len(idx) else None


def finalize_store(path: Path, manifest: Path) -> dict:
    """Verify every shard, write failures.parquet and the summary, then mark complete."""
    summary = verify_store(path)
    failures = summary.pop("failures")
    table = pa.Table.from_pylist(
        sorted(failures, key=lambda f: f["row"]),
        schema=pa.schema(
            [
                ("row", pa.int64()),
                ("clip_id", pa.string()),
                ("store", pa.string()),
                ("reason", pa.string()),
            ]
        ),
    )
    pq.write_table(table, path.with_suffix(".failures.parquet"))
    summary["invalid_reasons"] = dict(Counter(f["reason"].split(":")[0] for f in failures))
    summary["manifest"] = str(manifest)
    mark_complete(path, summary)
    write_json_atomic(path.with_suffix(".summary.json"), summary)
    return summary


def build_text_store(plan: CachePlan) -> dict:
    """Embed every text of the manifest (row order, then text order) and verify the store."""
    name, tcfg = plan.text_teacher
    table = read_manifest(plan.manifest)
    texts, text_row = [], []
    for row, items in zip(
        table.column("row").to_pylist(), table.column("text").to_pylist(), strict=True
    ):
        texts += items
        text_row += [row] * len(items)
    if not texts:
        raise CacheError(f"{plan.dataset}: the manifest has no text to embed")
    teacher = load_configured_teacher(tcfg, plan.device)
    batch = tcfg.get("batch_size", 64)
    parts = [teacher.encode(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    prov = {
        "dataset": plan.dataset,
        **_teacher_identity(name, tcfg, teacher),
        "dim": int(out["text"].shape[1]),
        "manifest_sha256": file_sha256(plan.manifest),
    }
    m = len(texts)
    arrays = {
        "text": ((m, out["text"].shape[1]), "float16", False),
        "text_row": ((m,), "int64", True),
    }
    if "tokens" in out:
        arrays["tokens"] = (out["tokens"].shape, "float16", False)
        arrays["token_valid"] = (out["token_valid"].shape, "bool", True)
    path = plan.store_path(name)
    size = max(m, 1)  # one shard: written by this one job
    group = create_store(path, "text", arrays, shard_size=size, provenance=prov)
    group["text"][:] = out["text"].astype(np.float16)
    group["text_row"][:] = np.asarray(text_row, np.int64)
    if "tokens" in out:
        group["tokens"][:] = out["tokens"].astype(np.float16)
        group["token_valid"][:] = out["token_valid"]
    return finalize_store(path, plan.manifest)
