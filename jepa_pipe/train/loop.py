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
from jepa_pipe.cache.store import open_store, store_meta, store_path, write_json_atomic
from jepa_pipe.losses import token_loss
from jepa_pipe.masking import make_masks
from jepa_pipe.models import Ema, JepaModel, StudentConfig
from jepa_pipe.train.recipe import resolve_experiment, same_training

log = get_logger("train")
# warn when a run's EMA would end with more than this weight on its initial parameters
EMA_INITIAL_WARN = 0.2


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


def train_rows(cfg: dict, dataset: str, splits: list[str]) -> np.ndarray:
    from jepa_pipe.datasets.manifest import manifest_path, read_manifest

    table = read_manifest(manifest_path(cfg["paths"]["manifests"], dataset))
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


def _write_metrics(rows: list[dict], path: Path, schema: pa.Schema | None = None) -> None:
    table = pa.Table.from_pylist(rows, schema=schema or METRIC_SCHEMA)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


# the columns every training run's metrics.parquet has (students and VL predictors)
STEP_METRICS = [
    ("step", pa.int64()),
    ("epoch", pa.int64()),
    ("loss", pa.float64()),
    ("lr", pa.float64()),
    ("samples_per_s", pa.float64()),
]
METRIC_SCHEMA = pa.schema(
    [
        *STEP_METRICS,
        ("data_wait_s", pa.float64()),
        ("step_s", pa.float64()),
        ("clip_frames", pa.int64()),
        ("ema_momentum", pa.float64()),
        # the loss on the visible tokens (context_loss_weight > 0; unweighted, this rank's)
        ("context_loss", pa.float64()),
    ]
)


def pick_device(want: str, local_rank: int = 0) -> torch.device:
    """The device a training run asked for (auto: the GPU of this rank when there is one)."""
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("device: cuda was asked for but torch sees no GPU")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def normalise(frames: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float [B, 3, T, H, W] normalised as the teacher's input was."""
    x = frames.permute(0, 4, 1, 2, 3).float().div_(255)
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1, 1)
    return (x - m) / s


class Trainer:
    """One experiment's model, optimizer, schedule, EMA and loader, set up from the caches
    (and resumed from runs/{name}/checkpoints/last.pt when it exists)."""

    def __init__(self, cfg: dict, name: str, runs: Path | None = None):
        exp = self.exp = resolve_experiment(cfg, name)
        self.cfg, self.name = cfg, name
        dist = self.dist = Distributed.from_env()
        if dist.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if exp["device"] != "cpu" and torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)
        self.device = pick_device(exp["device"], dist.local_rank)
        self.run_dir = Path(runs or cfg["paths"]["runs"]) / name
        self.last = self.run_dir / "checkpoints" / "last.pt"
        ds = exp["dataset"]

        frames_path = store_path(cfg["paths"]["cache"], ds, "frames")
        teacher_path = store_path(cfg["paths"]["cache"], ds, exp["teacher"])
        frames = open_store(frames_path)
        frames_meta = store_meta(frames)
        expect = {"frames_fingerprint": frames_meta["fingerprint"]}
        teacher = open_store(teacher_path, expect=expect)
        self.teacher_meta = store_meta(teacher)
        self.grid = tuple(self.teacher_meta["token_grid"])
        self.dim = self.teacher_meta["dim"]
        _, self.t_frames, height, width, _ = frames["frames"].shape
        tokens_shape = tuple(teacher["tokens"].shape[1:])
        if tokens_shape != (math.prod(self.grid), self.dim):
            raise TrainingError(
                f"{teacher_path}: tokens are [L, D] = {list(tokens_shape)}, but its token grid "
                f"{list(self.grid)} and dim {self.dim} say [{math.prod(self.grid)}, {self.dim}]"
            )
        want = exp.get("target_dim")
        if want is not None and want != self.dim:
            raise TrainingError(
                f"experiment {name!r} expects {want}-d targets (target_dim), but the "
                f"{exp['teacher']} cache holds {self.dim}-d tokens (projection: "
                f"{self.teacher_meta.get('projection')})"
            )

        torch.manual_seed(exp["seed"])
        self.model = JepaModel(
            StudentConfig.from_dict(exp["student"]),
            self.dim,
            exp["predictor"],
            context_head=exp["context_loss_weight"] > 0,
        )
        self.model.student.check_grid(self.t_frames, height, width, self.grid)
        self.model.to(self.device)

        rows = train_rows(cfg, ds, exp["splits"])
        self.data = CacheBatches(
            [Field("frames", frames_path, "frames"), Field("tokens", teacher_path, "tokens")],
            batch_size=exp["batch_size"],
            rows=rows,
            seed=exp["seed"],
            workers=exp["loader_workers"],
            rank=dist.rank,
            world=dist.world,
        )
        per_epoch = self.data.batches_in_epoch(0)
        if per_epoch == 0:
            raise TrainingError(
                f"{ds}: {len(rows)} training rows make no batch of {exp['batch_size']} "
                f"(per rank, {dist.world} rank(s)); lower batch_size"
            )
        total = self.total = exp.get("steps") or math.ceil(exp["epochs"] * per_epoch)
        self.stages = clip_schedule(exp, self.t_frames, total)
        self.ema = (
            Ema(self.model.student, exp["ema"]["start"], exp["ema"]["end"], total)
            if "ema" in exp
            else None
        )
        # what the EMA still holds of the initial weights at the end (summary.json)
        self.ema_initial_weight = self.ema.initial_weight() if self.ema is not None else None
        if self.ema_initial_weight is not None and self.ema_initial_weight > EMA_INITIAL_WARN:
            log.warning(
                "%s: after %d steps the EMA weights are still %.0f%% the initialisation "
                "(momentum %s -> %s), so evaluating them (eval.weights: ema) scores mostly "
                "the random init: lower ema.start or train longer",
                self.name, total, 100 * self.ema_initial_weight, exp["ema"]["start"],
                exp["ema"]["end"],
            )  # fmt: skip
        self.opt = torch.optim.AdamW(
            _param_groups(self.model, exp["optim"]["weight_decay"]),
            lr=exp["optim"]["lr"],
            betas=(0.9, 0.999),
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_at(s, total, exp["optim"])
        )
        self.net = self.model
        if dist.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,  # the student's mask token: some masks only
            )
        self.provenance = {
            "frames": {k: frames_meta.get(k) for k in ("fingerprint", "sampling", "view")},
            "teacher": {
                k: self.teacher_meta.get(k)
                for k in (
                    "teacher",
                    "fingerprint",
                    "token_grid",
                    "dim",
                    "mean",
                    "std",
                    "projection",
                )
            },
        }
        self.step_no, self.epoch, self.batch_in_epoch, self.metrics = 0, 0, 0, []
        if self.last.is_file():
            self._resume()

    def _resume(self) -> None:
        state = load_checkpoint(self.last)
        diff = same_training(state["experiment"], self.exp)
        if diff:
            raise TrainingError(
                f"{self.last} was trained with different settings ({', '.join(diff)}); resume "
                f"with the same config, or move {self.run_dir} away to start over"
            )
        if state.get("caches") != self.provenance:
            raise TrainingError(
                f"{self.last} was trained on other caches than "
                f"{self.exp['dataset']}/{{frames,{self.exp['teacher']}}} are now (a cache was "
                f"rebuilt); move {self.run_dir} away to train on the new caches"
            )
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["schedule"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state["ema"])
        self.step_no, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        metrics = self.run_dir / "metrics.parquet"
        if metrics.is_file():
            old = pq.read_table(metrics).to_pylist()
            self.metrics = [r for r in old if r["step"] <= self.step_no]
        log.info("resumed %s at step %d (epoch %d, batch %d)", self.name, self.step_no,
                 self.epoch, self.batch_in_epoch)  # fmt: skip

    def clip_frames(self, step: int) -> int:
        return self.stages[min(len(self.stages) - 1, step * len(self.stages) // self.total)]

    def step(self, frames: torch.Tensor, tokens: torch.Tensor, step: int) -> dict:
        """One optimizer step. frames uint8 [B, T, H, W, 3], tokens [B, L, D] (the cached
        targets, or a teacher's output when a benchmark runs it online)."""
        exp, device, grid, dim = self.exp, self.device, self.grid, self.dim
        n_frames = self.clip_frames(step)
        t_tokens = n_frames * grid[0] // self.t_frames
        frames = frames.to(device, non_blocking=True)[:, :n_frames]
        b = len(frames)
        targets = tokens.to(device, non_blocking=True)  # [B, L, D]
        targets = targets.view(b, *grid, dim)[:, :t_tokens].reshape(b, -1, dim).float()
        check_finite(step, targets=targets)
        mean = self.teacher_meta.get("mean", [0.5] * 3)
        std = self.teacher_meta.get("std", [0.5] * 3)
        video = normalise(frames, mean, std)  # [B, 3, T, H, W]
        masks = make_masks(
            exp["masking"], (t_tokens, *grid[1:]), b, exp["seed"], step, self.dist.rank
        )
        pairs = [
            (torch.from_numpy(m.context).to(device), torch.from_numpy(m.target).to(device))
            for m in masks
        ]
        if device.type == "cuda":
            autocast = torch.autocast("cuda", dtype=torch.bfloat16)
        else:
            autocast = torch.autocast("cpu", enabled=False)  # fp32 on CPU

        def against(pred: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            at = torch.gather(targets, 1, index[..., None].expand(-1, -1, dim))  # [B, N, D]
            return token_loss(pred.float(), at, exp["loss"], exp["target_layernorm"])

        with autocast:
            outs = self.net(video, pairs)
            masked = torch.stack([against(o.target, o.target_index) for o in outs]).mean()
            loss, seen = masked, None
            if exp["context_loss_weight"] > 0:
                seen = torch.stack([against(o.context, o.context_index) for o in outs]).mean()
                loss = masked + exp["context_loss_weight"] * seen
        check_finite(step, loss=loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), exp["optim"]["grad_clip"])
        lr = self.opt.param_groups[0]["lr"]
        self.opt.step()
        self.sched.step()
        momentum = self.ema.update(self.model.student, step) if self.ema is not None else None
        value = loss.detach()
        if self.dist.world > 1:
            torch.distributed.all_reduce(value)
            value /= self.dist.world
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return {
            "loss": float(value),
            "lr": lr,
            "clip_frames": n_frames,
            "ema_momentum": momentum,
            "context_loss": None if seen is None else float(seen.detach()),
        }

    def save(self, final: bool = False) -> None:
        if not self.dist.main:
            return
        state = {
            "experiment": self.exp,
            "caches": self.provenance,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "schedule": self.sched.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "step": self.step_no,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
        }
        # metrics first: a kill between the two writes leaves metrics ahead of the checkpoint,
        # which resume trims; the other order lost the rows since the previous checkpoint
        _write_metrics(self.metrics, self.run_dir / "metrics.parquet")
        _save(state, self.last)
        if final:
            _save(
                {
                    "student_config": self.exp["student"],
                    "student": self.model.student.state_dict(),
                    "ema": self.ema.module.state_dict() if self.ema is not None else None,
                    "experiment": self.exp,
                    "caches": self.provenance,
                    "step": self.step_no,
                },
                self.run_dir / "student.pt",
            )

    def run(self, until_step: int | None = None, progress: bool = True) -> dict:
        from tqdm import tqdm

        if self.dist.main:
            self.last.parent.mkdir(parents=True, exist_ok=True)
            resolved = {"experiment": self.exp, "caches": self.provenance, "config": self.cfg}
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        total, world = self.total, self.dist.world
        stop = min(total, until_step) if until_step else total
        bar = tqdm(
            total=total, initial=self.step_no, desc=self.name,
            disable=not (progress and self.dist.main),
        )  # fmt: skip
        self.model.train()
        self.data.set_epoch(self.epoch, self.batch_in_epoch, epochs=None)  # endless epochs
        batches = iter(loader(self.data))
        while self.step_no < stop:
            waited = time.perf_counter()
            batch = next(batches)
            t0 = time.perf_counter()
            wait = t0 - waited
            self.epoch = int(batch["epoch"])
            out = self.step(batch["frames"], batch["tokens"], self.step_no)
            step_s = time.perf_counter() - t0
            self.step_no += 1
            self.batch_in_epoch = int(batch["index"]) + 1
            b = len(batch["frames"])
            self.metrics.append(
                {
                    "step": self.step_no,
                    "epoch": self.epoch,
                    "loss": out["loss"],
                    "lr": out["lr"],
                    "samples_per_s": b * world / (step_s + wait),
                    "data_wait_s": wait,
                    "step_s": step_s,
                    "clip_frames": out["clip_frames"],
                    "ema_momentum": out["ema_momentum"],
                    "context_loss": out["context_loss"],
                }
            )
            bar.update(1)
            bar.set_postfix(loss=f"{out['loss']:.4f}")
            if self.step_no % self.exp["checkpoint_every"] == 0 or self.step_no == stop:
                self.save(final=self.step_no == total)
        del batches  # stops the loader's worker processes
        bar.close()
        summary = _summary(self.exp, self.metrics, self.step_no, total, self.dist, self.model)
        if self.ema_initial_weight is not None:
            summary["ema_initial_weight"] = round(self.ema_initial_weight, 4)
        if self.dist.main:
            write_json_atomic(self.run_dir / "summary.json", summary)
        return summary


def train(cfg: dict, name: str, until_step: int | None = None, progress: bool = True) -> dict:
    """Train experiment ``name`` from the caches; resume from runs/{name}/checkpoints/last.pt
    if present. ``until_step`` stops early (a checkpoint is written there), as a preemptible
    job would. Returns a summary (also written to runs/{name}/summary.json)."""
    return Trainer(cfg, name).run(until_step=until_step, progress=progress)


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
