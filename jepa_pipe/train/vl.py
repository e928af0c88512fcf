"""VL-JEPA predictors trained from caches only: no encoder (video, image or text) is built.

- ``vljepa_video`` (Charades-STA): per training query, its ground-truth window's cached
  segment features and the query's cached MiniLM embedding. Every query is scored against
  every window of the batch (the ground-truth windows and ``windows.negatives`` random
  same-video windows per query that overlap its moment little),
  ``score = cos(predictor(window, query), target_text) / T``, and the loss is bidirectional
  InfoNCE over that score matrix.
  The target text is the query sentence itself, so a predictor that copied its query input
  would score every window alike: the loss is low only when the window decides the score.
- ``vljepa_image`` (COCO): random patch masking of the cached ViT tokens; the predictor sees
  the visible patches, the caption's cached BERT tokens (when ``text_conditioning``) and mask
  tokens, and predicts the masked patches' cached latents (cosine / L1 / MSE).

Outputs: runs/{experiment}/predictor.pt, metrics.parquet, summary.json, config.yaml, and
checkpoints/last.pt every ``checkpoint_every`` steps: a rerun resumes from it and replays the
uninterrupted run (same batches, negatives and masks; bitwise on CPU).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
import yaml

from jepa_pipe import JepaPipeError, get_logger
from jepa_pipe.cache.loader import RowReader
from jepa_pipe.cache.store import file_sha256, open_store, store_meta, store_path
from jepa_pipe.losses import info_nce_scores, token_loss
from jepa_pipe.train.loop import STEP_METRICS
from jepa_pipe.train.recipe import merge_settings

log = get_logger("train.vl")

VL_SYSTEMS = ("vljepa_video", "vljepa_image")

VL_DEFAULTS = {
    "vljepa_video": {
        "predictor": {"kind": "transformer", "dim": 384, "depth": 4, "heads": 6},
        "loss": "infonce",
        "temperature": 0.07,
        "batch_size": 64,
        # windows of these lengths (s) at this stride are the candidates at search time, and
        # the pool training negatives come from: `negatives` per query, each overlapping the
        # query's moment at IoU < negative_iou (partial windows too, so that the predictor
        # learns a moment's extent, not only its content)
        "windows": {
            "lengths_s": [2.0, 4.0, 8.0, 16.0],
            "stride_s": 1.0,
            "negatives": 3,
            "negative_iou": 0.5,
        },
    },
    "vljepa_image": {
        "predictor": {
            "kind": "transformer",
            "dim": 384,
            "depth": 6,
            "heads": 6,
            "text_conditioning": True,
        },
        "masking": {"kind": "random", "ratio": 0.5},
        "loss": "cosine",
        "batch_size": 256,
    },
}
COMMON = {
    "optim": {"lr": 1e-4, "weight_decay": 0.01, "warmup_steps": 0, "grad_clip": 1.0},
    "epochs": 1,
    "checkpoint_every": 1000,
    "seed": 0,
    "splits": ["train"],
    "device": "auto",
}


class VLError(JepaPipeError):
    """A VL-JEPA experiment whose caches or settings do not fit."""


class StaleCheckpoint(VLError):
    """A run's checkpoint was trained with other settings or on other caches."""


def resolve_vl_experiment(cfg: dict, name: str) -> dict:
    exp = cfg.get("experiments", {}).get(name)
    if exp is None:
        raise VLError(f"experiment {name!r} is not in the config")
    system = exp["system"]
    if system not in VL_SYSTEMS:
        raise VLError(f"experiment {name!r}: system {system!r} is not a VL-JEPA system")
    out = merge_settings(merge_settings(COMMON, VL_DEFAULTS[system]), exp)
    ds = cfg["datasets"].get(exp["dataset"])
    if ds is None:
        raise VLError(f"experiment {name!r}: dataset {exp['dataset']!r} is not in datasets")
    if exp["teacher"] not in ds.get("teachers", []):
        raise VLError(
            f"experiment {name!r}: teacher {exp['teacher']!r} has no cache for "
            f"dataset {exp['dataset']!r}"
        )
    text = out.setdefault("text_teacher", ds.get("text_teacher"))
    if text is None or text != ds.get("text_teacher"):
        raise VLError(
            f"experiment {name!r}: text teacher {text!r} is not dataset {exp['dataset']!r}'s "
            f"text_teacher ({ds.get('text_teacher')!r})"
        )
    if system == "vljepa_video" and "segment_seconds" not in ds.get("decode", {}):
        raise VLError(
            f"experiment {name!r}: dataset {exp['dataset']!r} is not segmented "
            "(set decode.segment_seconds and segment_stride)"
        )
    out["name"] = name
    return out


# ----------------------------------------------------------------------------- video data
@dataclass
class MomentData:
    """Everything moment retrieval reads, from the caches (small: one vector per segment)."""

    segments: np.ndarray  # float32 [S_total, Dv] pooled teacher features per segment
    segment_valid: np.ndarray  # bool [S_total]
    video_segments: dict[int, np.ndarray]  # video row -> its segment rows in time order
    segment_start: np.ndarray  # float [S_total] seconds
    segment_len: float
    durations: dict[int, float]  # video row -> seconds (end of its last segment)
    text: np.ndarray  # float32 [M, Dt] query embeddings
    queries: list[dict]  # per text: video_row, split, start, end, text index, sentence
    provenance: dict
    # per (query moment, window settings): candidate windows, the negatives' pool, IoU order
    negative_pools: dict = field(default_factory=dict)

    def window_rows(self, video_row: int, window: tuple[float, float]) -> np.ndarray:
        from jepa_pipe.cache.segments import covering

        rows = self.video_segments[video_row]
        return rows[covering(self.segment_start[rows], self.segment_len, window)]

    def batch_windows(self, items: list[tuple[int, tuple[float, float]]]):
        """[(video_row, window)] -> segments [K, S, Dv], valid [K, S] (left-aligned)."""
        rows = [self.window_rows(v, w) for v, w in items]
        return pad_windows(self.segments, self.segment_valid, rows)


def pad_windows(features: np.ndarray, valid: np.ndarray, rows: list[np.ndarray]):
    """Windows as padded batches: features [N, Dv] and valid [N] of the segments, and each
    window's segment rows -> segments [K, S, Dv] float32, valid [K, S] (left-aligned)."""
    s = max(len(r) for r in rows)
    feats = np.zeros((len(rows), s, features.shape[1]), np.float32)
    mask = np.zeros((len(rows), s), bool)
    for i, r in enumerate(rows):
        feats[i, : len(r)] = features[r]
        mask[i, : len(r)] = valid[r]
        if not mask[i].any():  # every segment failed: attend to a zero vector, not NaN
            mask[i, 0] = True
    return torch.from_numpy(feats), torch.from_numpy(mask)


def grid_of(grid: list[int] | None) -> tuple[int, int, int] | None:
    """A segment_grid setting, None when it is the whole segment (the store's `pooled`)."""
    return None if not grid or list(grid) == [1, 1, 1] else tuple(grid)


def pool_tokens(tokens: np.ndarray, token_grid: list[int], grid: tuple[int, int, int]):
    """tokens [b, T'·H'·W', D] -> [b, t·h·w·D] float32: the mean over each cell of a coarse
    (t, h, w) grid, cells concatenated in raster order."""
    if any(g > n or n % g for g, n in zip(grid, token_grid, strict=True)):
        raise VLError(
            f"segment_grid {list(grid)} does not divide the cache's token grid {list(token_grid)}"
        )
    b, _, d = tokens.shape
    (t, h, w), (tt, hh, ww) = grid, token_grid
    x = tokens.astype(np.float32).reshape(b, t, tt // t, h, hh // h, w, ww // w, d)
    return x.mean(axis=(2, 4, 6)).reshape(b, -1)


def segment_features(
    teacher, grid: list[int] | None, store: Path | None = None, workers: int | None = None
) -> np.ndarray:
    """One vector per segment: the store's `pooled` (the mean of all tokens), or with
    ``grid`` (t, h, w) the tokens mean-pooled onto that coarse grid and concatenated
    [S, t·h·w·D], which keeps where (and when) inside the segment something is.

    The grid pass reads every token once (a V-JEPA 2-L Charades-STA cache is ~1.2 TB), in
    shard-sized row blocks on dask's threads; with ``store`` (the teacher store's path) its
    result is kept beside the store, named by the grid and the store's fingerprint, so later
    jobs (training, evaluation, other experiments) read it back instead (that grid's file of
    an earlier store is removed then)."""
    grid = grid_of(grid)
    if grid is None:
        return teacher["pooled"][:].astype(np.float32)
    meta = store_meta(teacher)
    kept = None
    if store is not None:
        cells = "x".join(map(str, grid))
        kept = Path(store).with_name(
            f"{Path(store).stem}.grid-{cells}.{meta['fingerprint'][:16]}.npy"
        )
        if kept.is_file():
            return np.load(kept)
    import dask

    tokens, token_grid = teacher["tokens"], meta["token_grid"]
    block, n = (tokens.shards or tokens.chunks)[0], tokens.shape[0]
    parts = [
        dask.delayed(_pool_block)(tokens, a, min(a + block, n), token_grid, grid)
        for a in range(0, n, block)
    ]
    with dask.config.set(scheduler="threads", num_workers=workers):
        features = np.concatenate(dask.compute(*parts))
    if kept is not None:
        tmp = kept.with_name(f".{kept.name}.tmp-{os.getpid()}.npy")
        np.save(tmp, features)
        os.replace(tmp, kept)  # two jobs computing it at once write the same bytes
        # the same grid of a store this one replaced is stale: never read again
        for old in kept.parent.glob(f"{Path(store).stem}.grid-{cells}.*.npy"):
            if old != kept:
                old.unlink(missing_ok=True)
    return features


def _pool_block(tokens, start: int, stop: int, token_grid, grid) -> np.ndarray:
    return pool_tokens(tokens[start:stop], token_grid, grid)


def load_moment_data(cfg: dict, exp: dict) -> MomentData:
    from jepa_pipe.cache.segments import read_segments, segments_path, video_segments
    from jepa_pipe.datasets.manifest import manifest_path, read_manifest

    dataset, cache = exp["dataset"], cfg["paths"]["cache"]
    seg_path = segments_path(cfg["paths"]["manifests"], dataset)
    segs = read_segments(seg_path)
    # the teacher store must have been built over exactly this segment table
    teacher_path = store_path(cache, dataset, exp["teacher"])
    teacher = open_store(teacher_path, expect={"manifest_sha256": file_sha256(seg_path)})
    video_manifest = manifest_path(cfg["paths"]["manifests"], dataset)
    text_store = open_store(
        store_path(cache, dataset, exp["text_teacher"]),
        expect={"manifest_sha256": file_sha256(video_manifest)},
    )
    videos = read_manifest(video_manifest)
    starts = segs.column("start_s").to_numpy()
    ends = segs.column("end_s").to_numpy()
    per_video = video_segments(segs)
    text_row = text_store["text_row"][:]
    splits = videos.column("split").to_pylist()
    queries, seen = [], {}
    texts = videos.column("text").to_pylist()
    t_start, t_end = (
        videos.column("text_start_s").to_pylist(),
        videos.column("text_end_s").to_pylist(),
    )
    for m, row in enumerate(text_row.tolist()):
        j = seen[row] = seen.get(row, -1) + 1  # texts are stored in row order, then file order
        if t_start[row] is None:
            raise VLError(f"{dataset}: manifest row {row} has texts without moments")
        queries.append(
            {
                "video_row": row,
                "split": splits[row],
                "start": t_start[row][j],
                "end": t_end[row][j],
                "text": m,
                "sentence": texts[row][j],
            }
        )
    return MomentData(
        segments=segment_features(teacher, exp.get("segment_grid"), teacher_path),
        segment_valid=teacher["valid"][:],
        video_segments=per_video,
        segment_start=starts,
        segment_len=float(ends[0] - starts[0]),
        durations={v: float(ends[r].max()) for v, r in per_video.items()},
        text=text_store["text"][:].astype(np.float32),
        queries=queries,
        provenance={
            "segments": str(seg_path),
            "teacher_fingerprint": store_meta(teacher)["fingerprint"],
            "text_fingerprint": store_meta(text_store)["fingerprint"],
        },
    )


def negative_windows(
    data: MomentData, q: dict, w: dict, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """`w["negatives"]` random candidate windows of the query's video whose IoU with its
    moment is below `w["negative_iou"]` (the least-overlapping ones when too few are)."""
    from jepa_pipe.eval.metrics import temporal_iou
    from jepa_pipe.eval.moments import candidate_windows

    moment, settings = (q["start"], q["end"]), (tuple(w["lengths_s"]), w["stride_s"])
    key = (q["video_row"], *moment, *settings, w["negative_iou"])
    if key not in data.negative_pools:  # the same for every step: computed once per query
        video = data.durations[q["video_row"]]
        windows = candidate_windows(video, w["lengths_s"], w["stride_s"])
        ious = np.array([temporal_iou(tuple(x), (q["start"], q["end"])) for x in windows])
        pool = np.flatnonzero(ious < w["negative_iou"])
        data.negative_pools[key] = (windows, pool, np.argsort(ious, kind="stable"))
    windows, pool, by_iou = data.negative_pools[key]
    k = w["negatives"]
    picks = rng.choice(pool, size=k, replace=False) if len(pool) >= k else by_iou[:k]
    return [(float(windows[i][0]), float(windows[i][1])) for i in picks]


def moment_scores(
    predictor,
    windows: torch.Tensor,
    valid: torch.Tensor,
    query: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """cos(predictor(window k, query i), target i) for every (i, k): [Q, K]."""
    q, k = len(query), len(windows)
    pred = predictor(
        windows.repeat(q, 1, 1), valid.repeat(q, 1), query.repeat_interleave(k, dim=0)
    )  # [Q*K, Dt]; row i*K + k is (query i, window k)
    target = target.repeat_interleave(k, dim=0)
    return F.cosine_similarity(pred, target, dim=-1).view(q, k)


# ----------------------------------------------------------------------------- image data
@dataclass
class PatchData:
    # token arrays are read by row from the mapped cache shards (COCO train2017's ViT-B
    # tokens are ~35 GB in float16): index them with row arrays, then cast
    tokens: RowReader  # float16 [N, L, Dp] patch tokens
    valid: np.ndarray  # bool [N]
    grid: tuple[int, int]
    text_tokens: RowReader  # float16 [M, Lt, Dt]
    text_valid: RowReader  # bool [M, Lt]
    text_pooled: np.ndarray  # float32 [M, Dt] sentence vectors
    text_row: np.ndarray  # int [M]
    splits: np.ndarray  # str [N]
    labels: np.ndarray  # int [N] (-1: none)
    pooled: np.ndarray  # float32 [N, Dp]
    provenance: dict

    def captions(self, rows: np.ndarray) -> list[np.ndarray]:
        order = np.argsort(self.text_row, kind="stable")
        first = np.searchsorted(self.text_row[order], rows, "left")
        last = np.searchsorted(self.text_row[order], rows, "right")
        return [order[a:b] for a, b in zip(first, last, strict=True)]


def load_patch_data(cfg: dict, exp: dict) -> PatchData:
    from jepa_pipe.datasets.manifest import manifest_path, read_manifest

    dataset, cache = exp["dataset"], cfg["paths"]["cache"]
    manifest = manifest_path(cfg["paths"]["manifests"], dataset)
    sha = {"manifest_sha256": file_sha256(manifest)}
    teacher = open_store(store_path(cache, dataset, exp["teacher"]), expect=sha)
    text = open_store(store_path(cache, dataset, exp["text_teacher"]), expect=sha)
    if "tokens" not in text:
        raise VLError(
            f"{exp['text_teacher']}: a sentence-level text store; the image "
            "predictor needs token-level text (BERT)"
        )
    grid = store_meta(teacher)["token_grid"]
    if grid[0] != 1:
        raise VLError(f"{exp['teacher']}: token grid {grid} is not an image grid (1, H', W')")
    table = read_manifest(manifest)
    teacher_path = store_path(cache, dataset, exp["teacher"])
    text_path = store_path(cache, dataset, exp["text_teacher"])
    return PatchData(
        tokens=RowReader(teacher_path, "tokens"),
        valid=teacher["valid"][:],
        grid=(int(grid[1]), int(grid[2])),
        text_tokens=RowReader(text_path, "tokens"),
        text_valid=RowReader(text_path, "token_valid"),
        text_pooled=text["text"][:].astype(np.float32),
        text_row=text["text_row"][:],
        splits=np.asarray(table.column("split").to_pylist()),
        labels=np.asarray(table.column("label_id").to_pylist()),
        pooled=teacher["pooled"][:].astype(np.float32),
        provenance={
            "teacher_fingerprint": store_meta(teacher)["fingerprint"],
            "text_fingerprint": store_meta(text)["fingerprint"],
        },
    )


def split_rows(splits: np.ndarray, valid: np.ndarray, wanted: list[str], what: str) -> np.ndarray:
    rows = np.flatnonzero(np.isin(splits, wanted) & valid)
    if len(rows) == 0:
        raise VLError(f"{what}: no valid rows in splits {wanted} (have {sorted(set(splits))})")
    return rows


def patch_batch(
    data: PatchData,
    rows: np.ndarray,
    ratio: float,
    rng: np.random.Generator,
    caption: np.ndarray | None = None,
):
    """Tensors of one masked batch: patches, context/target indices, one caption per image
    (random unless given), and the caption's text tokens."""
    from jepa_pipe import masking

    b, grid = len(rows), (1, *data.grid)
    masks = masking.random(grid, b, ratio, rng)
    context = torch.from_numpy(np.stack([np.flatnonzero(m) for m in masks.context.reshape(b, -1)]))
    target = torch.from_numpy(np.stack([np.flatnonzero(m) for m in masks.target.reshape(b, -1)]))
    if caption is None:
        caption = np.array([rng.choice(c) for c in data.captions(rows)])
    return (
        torch.from_numpy(data.tokens[rows]).float(),
        context,
        target,
        torch.from_numpy(data.text_tokens[caption]).float(),
        torch.from_numpy(data.text_valid[caption]),
    )


def masked_patch_loss(predictor, batch, loss: str) -> torch.Tensor:
    patches, context, target, text, text_valid = batch
    pred = predictor(patches, context, target, text, text_valid)  # [B, Nt, Dp]
    goal = torch.gather(patches, 1, target[..., None].expand(-1, -1, patches.shape[2]))
    return token_loss(pred, goal, loss)


# ----------------------------------------------------------------------------- training
def build_predictor(exp: dict, dims: dict):
    from jepa_pipe.models.vl import PatchPredictor, build_moment_predictor

    p = exp["predictor"]
    if exp["system"] == "vljepa_video":
        return build_moment_predictor(dims["video"], dims["text"], p)
    return PatchPredictor(
        dims["patch"],
        dims["text"],
        tuple(dims["grid"]),
        p.get("dim", 384),
        p.get("depth", 6),
        p.get("heads", 6),
        p.get("text_conditioning", True),
    )


METRICS = pa.schema(STEP_METRICS)  # a predictor step logs the students' common columns


def train_vl(
    cfg: dict,
    name: str,
    progress: bool = False,
    runs: Path | None = None,
    until_step: int | None = None,
) -> dict:
    """Train a VL-JEPA predictor from the caches; writes runs/{name}/predictor.pt. Resumes
    from runs/{name}/checkpoints/last.pt when it exists; ``until_step`` stops early (after a
    checkpoint) without writing predictor.pt."""
    from jepa_pipe.models.vl import load_trainable_state, trainable_state
    from jepa_pipe.train.loop import (
        _param_groups,
        _save,
        _write_metrics,
        check_finite,
        lr_at,
        pick_device,
    )

    exp = resolve_vl_experiment(cfg, name)
    run_dir = Path(runs or cfg["paths"]["runs"]) / name
    last = run_dir / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(exp["seed"])
    rng = np.random.default_rng(exp["seed"])
    device = pick_device(exp["device"])
    if exp["system"] == "vljepa_video":
        data = load_moment_data(cfg, exp)
        items = [
            q
            for q in data.queries
            if q["split"] in exp["splits"]
            and data.segment_valid[data.video_segments[q["video_row"]]].any()
        ]
        dims = {"video": data.segments.shape[1], "text": data.text.shape[1]}
    else:
        data = load_patch_data(cfg, exp)
        items = split_rows(data.splits, data.valid, exp["splits"], name).tolist()
        dims = {
            "patch": data.tokens.shape[2],
            "text": data.text_tokens.shape[2],
            "grid": list(data.grid),
        }
    if len(items) < 2:
        raise VLError(f"experiment {name!r}: {len(items)} training item(s); need at least 2")
    predictor = build_predictor(exp, dims).to(device)
    params = [p for p in predictor.parameters() if p.requires_grad]
    groups = [
        {**g, "params": [p for p in g["params"] if p.requires_grad]}
        for g in _param_groups(predictor, exp["optim"]["weight_decay"])
    ]
    opt = torch.optim.AdamW(groups, lr=exp["optim"]["lr"])
    batch = min(exp["batch_size"], len(items))
    per_epoch = len(items) // batch
    total = exp.get("steps") or max(1, math.ceil(exp["epochs"] * per_epoch))
    stop = min(total, until_step) if until_step else total
    metrics, step, epoch = [], 0, 0
    order = rng.permutation(len(items))
    if last.is_file():  # resume: everything the next step draws from is in the checkpoint
        state = load_checkpoint_for(last, exp, data.provenance)
        load_trainable_state(predictor, state["state"])
        opt.load_state_dict(state["optimizer"])
        step, epoch, order = state["step"], state["epoch"], state["order"].numpy()
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        if (run_dir / "metrics.parquet").is_file():  # may run ahead of the checkpoint: trim
            old = pq.read_table(run_dir / "metrics.parquet").to_pylist()
            metrics = [m for m in old if m["step"] < step]
        log.info("resumed %s at step %d (epoch %d)", name, step, epoch)

    def save() -> None:
        # metrics first: a kill between the two writes leaves them ahead of the checkpoint,
        # which resume trims
        _write_metrics(metrics, run_dir / "metrics.parquet", METRICS)
        state = {
            "experiment": exp,
            "caches": data.provenance,
            "state": trainable_state(predictor),
            "optimizer": opt.state_dict(),
            "step": step,
            "epoch": epoch,
            "order": torch.from_numpy(order),
            "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }
        _save(state, last)

    from tqdm import tqdm

    bar = tqdm(total=total, initial=step, disable=not progress, desc=name)
    while step < stop:
        if (step - epoch * per_epoch) >= per_epoch:
            epoch, order = epoch + 1, rng.permutation(len(items))
        pos = (step - epoch * per_epoch) * batch
        pick = [items[i] for i in order[pos : pos + batch]]
        t0 = time.perf_counter()
        lr = exp["optim"]["lr"] * lr_at(step, total, exp["optim"])
        for g in opt.param_groups:
            g["lr"] = lr
        if exp["system"] == "vljepa_video":
            w = exp["windows"]
            windows = [(q["video_row"], (q["start"], q["end"])) for q in pick]
            windows += [
                (q["video_row"], neg) for q in pick for neg in negative_windows(data, q, w, rng)
            ]
            feats, valid = data.batch_windows(windows)
            query = torch.from_numpy(data.text[[q["text"] for q in pick]])
            scores = moment_scores(
                predictor, feats.to(device), valid.to(device), query.to(device), query.to(device)
            )
            loss = info_nce_scores(scores / exp["temperature"])
        else:
            b = patch_batch(data, np.asarray(pick), exp["masking"]["ratio"], rng)
            loss = masked_patch_loss(predictor, [t.to(device) for t in b], exp["loss"])
        check_finite(step, loss=loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if exp["optim"].get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(params, exp["optim"]["grad_clip"])
        opt.step()
        dt = time.perf_counter() - t0
        metrics.append(
            {
                "step": step,
                "epoch": epoch,
                "loss": loss.item(),
                "lr": lr,
                "samples_per_s": len(pick) / dt,
            }
        )
        step += 1
        bar.update(1)
        if step % exp["checkpoint_every"] == 0 or step == stop:
            save()
    bar.close()
    if step < total:  # stopped early on purpose; rerun to finish
        return {"experiment": name, "system": exp["system"], "steps": total, "stopped_at": step}
    resolved = {"experiment": exp, "dims": dims, "caches": data.provenance}
    _save({"state": trainable_state(predictor.cpu()), **resolved}, run_dir / "predictor.pt")
    _write_metrics(metrics, run_dir / "metrics.parquet", METRICS)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(json.loads(json.dumps({**resolved, "config": cfg})), sort_keys=False)
    )
    first = float(np.mean([m["loss"] for m in metrics[: max(1, len(metrics) // 10)]]))
    last_loss = float(np.mean([m["loss"] for m in metrics[-max(1, len(metrics) // 10) :]]))
    summary = {
        "experiment": name,
        "system": exp["system"],
        "steps": total,
        "items": len(items),
        "first_loss": first,
        "last_loss": last_loss,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    log.info("%s: %d steps, loss %.4f -> %.4f", name, total, first, last_loss)
    return summary


def load_checkpoint_for(path: Path, exp: dict, caches: dict) -> dict:
    """A VL training checkpoint, refused when it was trained with other settings or caches."""
    from jepa_pipe.train.loop import load_checkpoint
    from jepa_pipe.train.recipe import same_training

    state = load_checkpoint(path)
    diff = same_training(state["experiment"], exp)
    if diff:
        raise StaleCheckpoint(
            f"{path} was trained with different settings ({', '.join(diff)}); resume with the "
            f"same config, or move {path.parent.parent} away to start over"
        )
    if state["caches"] != caches:
        raise StaleCheckpoint(
            f"{path} was trained on other caches than {exp['dataset']}/{{{exp['teacher']},"
            f"{exp['text_teacher']}}} are now (a cache was rebuilt); move "
            f"{path.parent.parent} away to train on the new caches"
        )
    return state


def load_predictor(path: str | Path):
    """A trained predictor (eval mode, CPU) and its checkpoint's metadata."""
    from jepa_pipe.models.vl import load_trainable_state
    from jepa_pipe.train.loop import load_checkpoint

    ckpt = load_checkpoint(Path(path))
    predictor = build_predictor(ckpt["experiment"], ckpt["dims"])
    load_trainable_state(predictor, ckpt["state"])
    return predictor.eval(), ckpt
