"""The training loop: cache-only, exactly resumable, DDP-ready.

Every step costs a student forward and backward: frames and targets come from the caches
(jepa_pipe.cache.loader), masks from jepa_pipe.masking seeded by (seed, step, rank), the loss
from jepa_pipe.losses. Nothing here imports a teacher or transformers.

Exact resume: the checkpoint holds model, EMA, optimizer, schedule and the loader position
(epoch, batch within it); masks depend on the step only and the loader's plan on
(seed, epoch), so a resumed run replays the uninterrupted one bit for bit on CPU.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml

from jepa_pipe import JepaPipeError, get_logger
from jepa_pipe.cache.loader import CacheBatches, Field, loader
from jepa_pipe.cache.store import open_store, store_meta, write_json_atomic
from jepa_pipe.losses import token_loss
from jepa_pipe.masking import make_masks
from jepa_pipe.models import Ema, JepaModel, StudentConfig
from jepa_pipe.train.recipe import resolve_experiment, same_training

log = get_logger("train")

METRIC_COLUMNS = (
    "step", "epoch", "loss", "lr", "samples_per_s", "data_wait_s", "step_s", "clip_frames",
    "ema_momentum",
)  # fmt: skip


class TrainingError(JepaPipeError):
    pass


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0


def store_path(cfg: dict, dataset: str, store: str) -> Path:
    return Path(cfg["paths"]["cache"]) / dataset / f"{store}.zarr"


def train_rows(cfg: dict, dataset: str, splits: list[str]) -> np.ndarray:
    from jepa_pipe.datasets.manifest import read_manifest

    table = read_manifest(Path(cfg["paths"]["manifests"]) / f"{dataset}.parquet")
    split = np.asarray(table.column("split").to_pylist())
    unknown = sorted(set(splits) - set(split))
    if unknown:
        raise TrainingError(
            f"{dataset}: no rows in split(s) {unknown}; it has {sorted(set(split))}"
        )
    return np.asarray(table.column("row"))[np.isin(split, splits)]


def clip_schedule(exp: dict, frames: int, total: int) -> list[int]:
    """Clip length per step stage: ``clip_frames`` splits training into equal stages (V-JEPA 2
    grows the clip); without it, every step uses all cached frames."""
    stages = exp.get("clip_frames") or [frames]
    tub = exp["student"]["tubelet_size"]
    for n in stages:
        if n > frames or n % tub:
            raise TrainingError(
                f"clip_frames {n}: must be at most the cached {frames} frames and a multiple "
                f"of tubelet_size {tub}"
            )
    return stages


def lr_at(step: int, total: int, optim: dict) -> float:
    """Linear warmup to ``lr``, then cosine to 0 (a multiplier of the base lr)."""
    warm = optim["warmup_steps"]
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or name.endswith("mask_token") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0},
    ]


def check_finite(step: int, **tensors: torch.Tensor) -> None:
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise TrainingError(
                f"step {step}: {name} has {bad} NaN/Inf value(s) (shape {list(t.shape)}); "
                "stopped before the optimizer step, the last checkpoint is intact"
            )


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainingError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); it is truncated or "
            "corrupt: delete it to train from scratch"
        ) from None


def _save(obj: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-save never leaves a half checkpoint


def _write_metrics(rows: list[dict], path: Path) -> None:
    table = pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


METRIC_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("epoch", pa.int64()),
        ("loss", pa.float64()),
        ("lr", pa.float64()),
        ("samples_per_s", pa.float64()),
        ("data_wait_s", pa.float64()),
        ("step_s", pa.float64()),
        ("clip_frames", pa.int64()),
        ("ema_momentum", pa.float64()),
    ]
)


def _device(exp: dict, dist: Distributed) -> torch.device:
    want = exp["device"]
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("device: cuda was asked for but torch sees no GPU")
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def normalise(frames: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float [B, 3, T, H, W] normalised as the teacher's input was."""
    x = frames.permute(0, 4, 1, 2, 3).float().div_(255)
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1, 1)
    return (x - m) / s


def train(cfg: dict, name: str, until_step: int | None = None, progress: bool = True) -> dict:
    """Train experiment ``name`` from the caches; resume from runs/{name}/checkpoints/last.pt
    if present. ``until_step`` stops early (a checkpoint is written there), as a preemptible
    job would. Returns a summary (also written to runs/{name}/summary.json)."""
    exp = resolve_experiment(cfg, name)
    dist = Distributed.from_env()
    if dist.world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if exp["device"] != "cpu" and torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    device = _device(exp, dist)
    run_dir = Path(cfg["paths"]["runs"]) / name
    ckpt_dir = run_dir / "checkpoints"
    ds = exp["dataset"]

    frames_path = store_path(cfg, ds, "frames")
    teacher_path = store_path(cfg, ds, exp["teacher"])
    frames_meta = store_meta(open_store(frames_path))
    teacher = open_store(teacher_path, expect={"frames_fingerprint": frames_meta["fingerprint"]})
    teacher_meta = store_meta(teacher)
    grid, dim = tuple(teacher_meta["token_grid"]), teacher_meta["dim"]
    _, t_frames, height, width, _ = open_store(frames_path)["frames"].shape

    student_cfg = StudentConfig.from_dict(exp["student"])
    torch.manual_seed(exp["seed"])
    model = JepaModel(student_cfg, dim, exp["predictor"])
    model.student.check_grid(t_frames, height, width, grid)
    model.to(device)

    rows = train_rows(cfg, ds, exp["splits"])
    data = CacheBatches(
        [Field("frames", frames_path, "frames"), Field("tokens", teacher_path, "tokens")],
        batch_size=exp["batch_size"],
        rows=rows,
        seed=exp["seed"],
        workers=exp["loader_workers"],
        rank=dist.rank,
        world=dist.world,
    )
    per_epoch = data.batches_in_epoch(0)
    if per_epoch == 0:
        raise TrainingError(
            f"{ds}: {len(rows)} training rows make no batch of {exp['batch_size']} "
            f"(per rank, {dist.world} rank(s)); lower batch_size"
        )
    total = exp.get("steps") or math.ceil(exp["epochs"] * per_epoch)
    stages = clip_schedule(exp, t_frames, total)
    ema = (
        Ema(model.student, exp["ema"]["start"], exp["ema"]["end"], total) if "ema" in exp else None
    )
    opt = torch.optim.AdamW(
        _param_groups(model, exp["optim"]["weight_decay"]),
        lr=exp["optim"]["lr"],
        betas=(0.9, 0.999),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, exp["optim"]))

    step, epoch, batch_in_epoch, metrics = 0, 0, 0, []
    last = ckpt_dir / "last.pt"
    if last.is_file():
        state = load_checkpoint(last)
        diff = same_training(state["experiment"], exp)
        if diff:
            raise TrainingError(
                f"{last} was trained with different settings ({', '.join(diff)}); resume with "
                f"the same config, or move {run_dir} away to start over"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        if (run_dir / "metrics.parquet").is_file():
            old = pq.read_table(run_dir / "metrics.parquet").to_pylist()
            metrics = [r for r in old if r["step"] <= step]
        log.info("resumed %s at step %d (epoch %d, batch %d)", name, step, epoch, batch_in_epoch)

    provenance = {
        "frames": {k: frames_meta.get(k) for k in ("fingerprint", "sampling", "view")},
        "teacher": {
            k: teacher_meta.get(k)
            for k in ("teacher", "fingerprint", "token_grid", "dim", "mean", "std", "projection")
        },
    }
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(exist_ok=True)
        resolved = {"experiment": exp, "caches": provenance, "config": cfg}
        (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))

    net = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,  # the student's mask token is used by some masks only
        )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    mean, std = teacher_meta.get("mean", [0.5] * 3), teacher_meta.get("std", [0.5] * 3)
    t_grid = grid[0] / t_frames  # token steps per frame

    def save(final: bool = False) -> None:
        if not dist.main:
            return
        state = {
            "experiment": exp,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "schedule": sched.state_dict(),
            "ema": ema.module.state_dict() if ema is not None else None,
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
        }
        _save(state, last)
        _write_metrics(metrics, run_dir / "metrics.parquet")
        if final:
            _save(
                {
                    "student_config": exp["student"],
                    "student": model.student.state_dict(),
                    "ema": ema.module.state_dict() if ema is not None else None,
                    "experiment": exp,
                    "caches": provenance,
                    "step": step,
                },
                run_dir / "student.pt",
            )

    from tqdm import tqdm

    bar = tqdm(total=total, initial=step, desc=name, disable=not (progress and dist.main))
    stop = min(total, until_step) if until_step else total
    model.train()
    data.set_epoch(epoch, batch_in_epoch, epochs=None)  # one iterator, endless epochs
    batches = iter(loader(data))
    while step < stop:
        waited = time.perf_counter()
        batch = next(batches)
        t0 = time.perf_counter()
        wait = t0 - waited
        epoch = int(batch["epoch"])
        n_frames = stages[min(len(stages) - 1, step * len(stages) // total)]
        t_tokens = int(n_frames * t_grid)
        frames = batch["frames"].to(device, non_blocking=True)[:, :n_frames]
        b = len(frames)
        targets = batch["tokens"].to(device, non_blocking=True)  # [B, L, D] float16
        targets = targets.view(b, *grid, dim)[:, :t_tokens].reshape(b, -1, dim).float()
        check_finite(step, targets=targets)
        video = normalise(frames, mean, std)  # [B, 3, T, H, W]
        masks = make_masks(exp["masking"], (t_tokens, *grid[1:]), b, exp["seed"], step, dist.rank)
        pairs = [
            (torch.from_numpy(m.context).to(device), torch.from_numpy(m.target).to(device))
            for m in masks
        ]
        with autocast or torch.autocast("cpu", enabled=False):
            outs = net(video, pairs)
            losses = [
                token_loss(
                    pred.float(),
                    torch.gather(targets, 1, idx[..., None].expand(-1, -1, dim)),
                    exp["loss"],
                    exp["target_layernorm"],
                )
                for pred, idx in outs
            ]
            loss = torch.stack(losses).mean()
        check_finite(step, loss=loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), exp["optim"]["grad_clip"])
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        momentum = ema.update(model.student, step) if ema is not None else None
        value = loss.detach()
        if dist.world > 1:
            torch.distributed.all_reduce(value)
            value /= dist.world
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        step_s = time.perf_counter() - t0
        step += 1
        batch_in_epoch = int(batch["index"]) + 1
        metrics.append(
            {
                "step": step,
                "epoch": epoch,
                "loss": float(value),
                "lr": lr,
                "samples_per_s": b * dist.world / (step_s + wait),
                "data_wait_s": wait,
                "step_s": step_s,
                "clip_frames": n_frames,
                "ema_momentum": momentum,
            }
        )
        bar.update(1)
        bar.set_postfix(loss=f"{float(value):.4f}")
        if step % exp["checkpoint_every"] == 0 or step == stop:
            save(final=step == total)
    del batches  # stops the loader's worker processes
    bar.close()
    summary = _summary(exp, metrics, step, total, dist, model)
    if dist.main:
        write_json_atomic(run_dir / "summary.json", summary)
    return summary


def _params_checksum(model: torch.nn.Module) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def _summary(exp, metrics, step, total, dist, model) -> dict:
    waits = [m["data_wait_s"] for m in metrics[1:]]  # the first batch also starts the workers
    steps = [m["step_s"] for m in metrics[1:]]
    summary = {
        "experiment": exp["name"],
        "step": step,
        "total_steps": total,
        "finished": step >= total,
        "first_loss": metrics[0]["loss"] if metrics else None,
        "last_loss": metrics[-1]["loss"] if metrics else None,
        "data_wait_fraction": sum(waits) / max(1e-9, sum(waits) + sum(steps)) if steps else None,
        "world_size": dist.world,
    }
    if dist.world > 1:  # every rank must hold the same weights after DDP steps
        mine = torch.tensor([_params_checksum(model)], dtype=torch.float64)
        gathered = [torch.zeros_like(mine) for _ in range(dist.world)]
        torch.distributed.all_gather(gathered, mine)
        summary["ranks_in_sync"] = len({float(g) for g in gathered}) == 1
    return json.loads(json.dumps(summary))
