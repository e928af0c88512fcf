"""Clip features for the benchmarks, computed once per (experiment, dataset, source) and kept.

Sources, side by side in every benchmark:
- ``student``: the trained student (EMA weights where the run kept them and ``eval.weights``
  is ``ema``, else the online weights), frozen, mean-pooled tokens (``forward_head``);
- ``random``: a randomly initialised student of the same architecture and seed;
- ``teacher``: the teacher cache's ``pooled`` array, read as is (never recomputed).

A features file (``runs/{experiment}/features/{dataset}/{source}.npz``) holds ``pooled``
float32 [V, N, D] (one slice per view), ``valid`` bool [N] and ``meta`` (JSON: where the
weights and frames came from), so a result can name what it was computed from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from jepa_pipe import JepaPipeError, get_logger
from jepa_pipe.cache.build import CachePlan, plan_from_config
from jepa_pipe.cache.store import file_sha256, open_store, store_meta, store_path
from jepa_pipe.models.students import StudentConfig, VideoStudent
from jepa_pipe.train.loop import normalise

log = get_logger("eval")
Source = Literal["student", "teacher", "random"]
SOURCES: tuple[Source, ...] = ("student", "teacher", "random")  # the order tables show them
Weights = Literal["ema", "online"]


class EvalError(JepaPipeError):
    pass


def features_path(runs: str | os.PathLike, experiment: str, dataset: str, source: str) -> Path:
    return Path(runs) / experiment / "features" / dataset / f"{source}.npz"


def student_checkpoint(cfg: dict, experiment: str) -> Path:
    path = Path(cfg["paths"]["runs"]) / experiment / "student.pt"
    if not path.is_file():
        raise EvalError(f"{path} does not exist: train the experiment first (`snakemake train`)")
    return path


StudentSource = Literal["student", "random"]


def load_students(
    path: Path, sources: Sequence[StudentSource], weights: Weights = "ema"
) -> dict[str, tuple[VideoStudent, dict]]:
    """Frozen students of a run, by source: its trained weights (``student``) and a random
    init of its architecture and seed (``random``), each with what it was. The checkpoint is
    read and hashed once."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    exp = state["experiment"]
    made = {
        "checkpoint": str(path),
        "checkpoint_sha256": file_sha256(path),
        "step": state["step"],
        "caches": state["caches"],
    }
    out = {}
    for source in sources:
        torch.manual_seed(exp["seed"])  # the random init is the same whatever came before
        model = VideoStudent(StudentConfig.from_dict(state["student_config"]))
        info = {**made, "arch": model.describe()}
        if source == "student":
            use_ema = weights == "ema" and state.get("ema") is not None
            model.load_state_dict(state["ema"] if use_ema else state["student"])
            info["weights"] = "ema" if use_ema else "online"
        else:
            info["weights"] = f"random init (seed {exp['seed']})"
        out[source] = (model.eval().requires_grad_(False), info)
    return out


def reference_teacher(cfg: dict, experiment: str, dataset: str) -> str:
    """The teacher cache a benchmark reports beside the student: ``eval.teacher`` if set, else
    the experiment's own teacher where the dataset has its cache, else the dataset's first."""
    chosen = cfg.get("eval", {}).get("teacher", {}).get(dataset)
    cached = cfg["datasets"][dataset].get("teachers", [])
    if chosen is None:
        own = cfg["experiments"][experiment]["teacher"]
        chosen = own if own in cached else (cached[0] if cached else None)
    if chosen not in cached:
        raise EvalError(
            f"dataset {dataset!r} has no cache of teacher {chosen!r} (it has {cached}); set "
            f"eval.teacher.{dataset} or add the teacher to datasets.{dataset}.teachers"
        )
    return chosen


def view_names(plan: CachePlan, store: str, multi_view: bool) -> list[str]:
    views = range(plan.sampling.num_views) if multi_view else range(1)
    return [plan.view_name(store, v) for v in views]


@torch.inference_mode()
def student_pooled(
    models: dict[str, VideoStudent], frames_path: Path, mean, std, batch_size: int = 16
) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Mean-pooled tokens of every row of a frames store (zeros where invalid), per model, in
    one pass over the frames."""
    group = open_store(frames_path)
    frames, valid = group["frames"], group["valid"][:]
    n = frames.shape[0]
    pooled = {k: np.zeros((n, m.dim), np.float32) for k, m in models.items()}
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        keep = valid[start:stop]
        if not keep.any():
            continue
        clips = torch.from_numpy(np.ascontiguousarray(frames[start:stop][keep]))
        video = normalise(clips, mean, std)  # [B, 3, T, H, W]
        for k, model in models.items():
            pooled[k][start:stop][keep] = model(video).float().numpy()  # [B, D]
    return (
        pooled,
        valid,
        {"frames": str(frames_path), "fingerprint": store_meta(group)["fingerprint"]},
    )


def extract(
    cfg: dict,
    experiment: str,
    dataset: str,
    sources: Sequence[StudentSource] = ("student", "random"),
) -> list[Path]:
    """Compute and write the features files of student sources (the teacher's are cached)."""
    ev = cfg.get("eval", {})
    plan = plan_from_config(cfg, dataset)
    students = load_students(student_checkpoint(cfg, experiment), sources, ev.get("weights", "ema"))
    models = {k: model for k, (model, _) in students.items()}
    teacher = next(iter(students.values()))[1]["caches"]["teacher"]
    views: dict[str, list[np.ndarray]] = {k: [] for k in models}
    valid_all, frames_info = None, []
    for name in view_names(plan, "frames", ev.get("multi_view", False)):
        path = store_path(cfg["paths"]["cache"], dataset, name)
        pooled, valid, where = student_pooled(
            models, path, teacher["mean"], teacher["std"], ev.get("batch_size", 16)
        )
        for k in models:
            views[k].append(pooled[k])
        valid_all = valid if valid_all is None else valid_all & valid
        frames_info.append(where)
    written = []
    for source, (_, info) in students.items():
        meta = {
            "experiment": experiment,
            "dataset": dataset,
            "source": source,
            **info,
            "frames": frames_info,
        }
        out = features_path(cfg["paths"]["runs"], experiment, dataset, source)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.npz")
        np.savez(
            tmp, pooled=np.stack(views[source]), valid=valid_all, meta=json.dumps(meta, default=str)
        )
        os.replace(tmp, out)
        written.append(out)
    log.info(
        "%s: %s features of %s, %d rows x %d views",
        experiment,
        "+".join(students),
        dataset,
        len(valid_all),
        len(frames_info),
    )
    return written


def load_features(
    cfg: dict, experiment: str, dataset: str, source: Source
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(pooled [N, D] averaged over views, valid [N], meta) for one source."""
    multi_view = cfg.get("eval", {}).get("multi_view", False)
    if source == "teacher":
        plan = plan_from_config(cfg, dataset)
        name = reference_teacher(cfg, experiment, dataset)
        views, valid, metas = [], None, []
        for store in view_names(plan, name, multi_view):
            group = open_store(store_path(cfg["paths"]["cache"], dataset, store))
            views.append(group["pooled"][:].astype(np.float32))
            v = group["valid"][:]
            valid = v if valid is None else valid & v
            m = store_meta(group)
            metas.append({"store": store, "fingerprint": m["fingerprint"], "teacher": name})
        return np.mean(views, axis=0), valid, {"source": "teacher", "stores": metas}
    path = features_path(cfg["paths"]["runs"], experiment, dataset, source)
    if not path.is_file():
        raise EvalError(
            f"{path} does not exist: run `python -m jepa_pipe features --experiment "
            f"{experiment} --dataset {dataset} --source {source}` (or the eval rule) first"
        )
    with np.load(path) as f:
        pooled, valid, meta = f["pooled"], f["valid"], json.loads(str(f["meta"]))
    ckpt = student_checkpoint(cfg, experiment)
    if meta["checkpoint_sha256"] != file_sha256(ckpt):
        raise EvalError(
            f"{path} was computed from another {ckpt} (the run was retrained): delete it and "
            "compute the features again"
        )
    want = len(view_names(plan_from_config(cfg, dataset), "frames", multi_view))
    if len(pooled) != want:
        raise EvalError(f"{path} has {len(pooled)} view(s), eval.multi_view wants {want}")
    return pooled.mean(0), valid, meta
