"""An experiment's training settings with every default filled in, in one place.

The system sets the architecture, masking and loss a recipe gets when it leaves them out; the
resolved dict is what a run records next to its checkpoints and compares on resume.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from jepa_pipe import JepaPipeError

VIDEO_SYSTEMS = ("st_jepa", "vjepa", "vjepa2")

SYSTEM_DEFAULTS: dict[str, dict[str, Any]] = {
    "st_jepa": {
        "student": {"arch": "hybrid", "factorized_depth": 8},
        "masking": {"kind": "tube", "ratio": 0.9},
        "loss": "cosine",
    },
    "vjepa": {
        "student": {"arch": "joint"},
        "masking": {"kind": "multiblock"},
        "loss": "l1",
        "ema": {"start": 0.998, "end": 1.0},
    },
    "vjepa2": {
        "student": {"arch": "factorized", "factorized_depth": 8},
        "masking": {"kind": "future", "ratio": 0.75, "future_bias": 2.0},
        "loss": "mse",
    },
}

COMMON_DEFAULTS: dict[str, Any] = {
    "student": {"dim": 384, "depth": 12, "heads": 6, "patch_size": 16, "tubelet_size": 2},
    "predictor": {"kind": "transformer", "dim": 384, "depth": 4, "heads": 6},
    "target_layernorm": False,
    # weight of the loss on the tokens the student saw (0: the masked tokens only, as the
    # JEPA recipes have it); see JepaModel.context_head
    "context_loss_weight": 0.0,
    "optim": {"lr": 1.5e-4, "weight_decay": 0.05, "warmup_steps": 0, "grad_clip": 1.0},
    "batch_size": 32,
    "epochs": 1,
    "checkpoint_every": 1000,
    "seed": 0,
    "splits": ["train"],
    # 0 reads in the training process: on CPU that is faster than handing batches over from
    # a worker (measured: 2.4% vs 5.1% of step time waiting); recipes for GPUs set more.
    "loader_workers": 0,
    "device": "auto",
}


def merge_settings(base: dict, over: dict) -> dict:
    """`over` on top of `base`, nested dicts merged key by key (neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = (
            merge_settings(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def resolve_experiment(cfg: dict, name: str) -> dict:
    experiments = cfg.get("experiments", {})
    if name not in experiments:
        raise JepaPipeError(
            f"experiment {name!r} is not in the config; it has {sorted(experiments)}"
        )
    exp = experiments[name]
    system = exp["system"]
    if system not in VIDEO_SYSTEMS:
        raise JepaPipeError(
            f"experiment {name!r}: system {system!r} is not trained by `train` "
            f"(it trains {', '.join(VIDEO_SYSTEMS)})"
        )
    out = merge_settings(merge_settings(COMMON_DEFAULTS, SYSTEM_DEFAULTS[system]), exp)
    if out["loss"] not in ("cosine", "l1", "mse"):
        raise JepaPipeError(f"experiment {name!r}: loss {out['loss']!r} is not a token loss")
    if exp["dataset"] not in cfg["datasets"]:
        raise JepaPipeError(f"experiment {name!r}: dataset {exp['dataset']!r} is not in datasets")
    if exp["teacher"] not in cfg["datasets"][exp["dataset"]].get("teachers", []):
        raise JepaPipeError(
            f"experiment {name!r}: teacher {exp['teacher']!r} has no cache for dataset "
            f"{exp['dataset']!r} (add it to datasets.{exp['dataset']}.teachers)"
        )
    out["name"] = name
    return out


def same_training(a: dict, b: dict) -> list[str]:
    """Keys whose values differ between two resolved experiments, ignoring ones that do not
    change the trajectory (how often checkpoints are written, the device)."""
    ignore = {"checkpoint_every", "device"}
    keys = sorted((set(a) | set(b)) - ignore)

    def value(d: dict, k: str) -> str:  # a key a run predates counts as its default
        return json.dumps(d.get(k, COMMON_DEFAULTS.get(k)), sort_keys=True)

    return [k for k in keys if value(a, k) != value(b, k)]
