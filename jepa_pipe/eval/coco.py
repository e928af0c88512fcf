"""COCO (VL-JEPA, image) from caches: linear probe, image-text retrieval, the masked-patch
loss with and without the caption, and the ablation grid.

Sources, side by side: ``teacher`` (the cached ViT patch tokens, mean-pooled), ``student``
(the trained patch predictor's features: every patch visible, outputs mean-pooled) and
``random`` (the same predictor at random init). Retrieval: an alignment head (symmetric
InfoNCE) on the train split's image features and cached caption vectors, then text-to-image
(``t2i``, every caption a query) and image-to-text (``i2t``) ranks on the test split.
"""

from __future__ import annotations

import copy
import itertools
import shutil
from pathlib import Path

import numpy as np
import torch

from jepa_pipe import get_logger
from jepa_pipe.cache.store import write_json_atomic
from jepa_pipe.eval.benchmarks import register_benchmark
from jepa_pipe.eval.probe import DEFAULT_CS, linear_probe
from jepa_pipe.eval.retrieval import HeadConfig, retrieval

log = get_logger("eval.coco")


def _splits(cfg: dict, exp: dict) -> dict:
    """Train on the dataset's first split, test on its last, unless eval.coco says else."""
    splits = cfg["datasets"][exp["dataset"]]["splits"]
    settings = {"train_split": splits[0], "test_split": splits[-1], "cs": list(DEFAULT_CS)}
    return settings | cfg.get("eval", {}).get("coco", {})


@torch.no_grad()
def predictor_features(predictor, data, rows: np.ndarray, batch: int = 256) -> np.ndarray:
    out = [
        predictor.features(torch.from_numpy(data.tokens[rows[i : i + batch]]).float()).numpy()
        for i in range(0, len(rows), batch)
    ]
    return np.concatenate(out)


@torch.no_grad()
def masked_loss(predictor, data, rows, exp, captions: str, seed: int = 0) -> float:
    """Mean masked-patch loss on `rows` with the same seeded masks for every variant:
    ``matched`` (one of the image's own captions), ``shuffled`` (another image's caption)
    or ``none`` (no text tokens at all)."""
    from jepa_pipe.train.vl import masked_patch_loss, patch_batch

    rng = np.random.default_rng(seed)
    own = np.array([np.random.default_rng(seed + 1).choice(c) for c in data.captions(rows)])
    if captions == "shuffled":  # a derangement: no image keeps its own caption
        own = np.roll(own, 1)
    losses, n = 0.0, 0
    for i in range(0, len(rows), 256):
        b = patch_batch(data, rows[i : i + 256], exp["masking"]["ratio"], rng, own[i : i + 256])
        if captions == "none":
            b = (*b[:3], None, None)
        losses += masked_patch_loss(predictor, b, exp["loss"]).item() * len(b[0])
        n += len(b[0])
    return losses / n


def evaluate(cfg: dict, exp: dict, predictor_path: Path, settings: dict, full: bool = True) -> dict:
    """Every source's probe and retrieval, and the masked-patch loss by caption; ``full=False``
    (an ablation point) keeps the trained predictor's probe and the masked-patch loss."""
    from jepa_pipe.eval.features import EvalError
    from jepa_pipe.train.vl import build_predictor, load_patch_data, load_predictor, split_rows

    data = load_patch_data(cfg, exp)
    trained, ckpt = load_predictor(predictor_path)
    torch.manual_seed(exp["seed"] + 1)
    untrained = build_predictor(exp, ckpt["dims"]).eval()
    train = split_rows(data.splits, data.valid, [settings["train_split"]], "coco train")
    test = split_rows(data.splits, data.valid, [settings["test_split"]], "coco test")
    labelled = (data.labels[train] >= 0).all() and (data.labels[test] >= 0).all()
    features = {
        "student": (
            predictor_features(trained, data, train),
            predictor_features(trained, data, test),
        ),
    }
    if full:
        features["teacher"] = (data.pooled[train], data.pooled[test])
        features["random"] = (
            predictor_features(untrained, data, train),
            predictor_features(untrained, data, test),
        )
    head = HeadConfig.from_dict(cfg.get("eval", {}).get("retrieval_head"))
    caps_tr, caps_te = data.captions(train), data.captions(test)
    if any(len(c) == 0 for c in caps_te):
        raise EvalError("coco: every test image needs a caption for image-to-text retrieval")
    tr_t = np.concatenate(caps_tr)
    tr_v = np.repeat(np.arange(len(train)), [len(c) for c in caps_tr])
    te_t = np.concatenate(caps_te)
    te_v = np.repeat(np.arange(len(test)), [len(c) for c in caps_te])
    sources = {}
    for source, (ftr, fte) in features.items():
        out = {}
        if full:
            r = retrieval(
                (ftr, data.text_pooled[tr_t], tr_v), (fte, data.text_pooled[te_t], te_v), head
            )
            out = {"t2i": r["t2v"], "i2t": r["v2t"], "t2i_sd": r["t2v_sd"], "i2t_sd": r["v2t_sd"]}
            out["head_loss_last"] = r["loss_last"]
        if labelled:
            n_cls = int(data.labels.max()) + 1
            out |= linear_probe(
                ftr, data.labels[train], fte, data.labels[test], n_cls, settings["cs"]
            )
        sources[source] = out
    text_effect = {
        c: masked_loss(trained, data, test, exp, c)
        for c in (("matched", "shuffled", "none") if trained.text_conditioning else ("none",))
    }
    return {
        "protocol": "features: teacher = mean of cached patch tokens, student = trained "
        "predictor with every patch visible (mean of outputs), random = same at random init; "
        "linear probe (C by stratified CV on train) and an alignment head (symmetric InfoNCE) "
        "for t2i / i2t retrieval on the test split; masked-patch loss on the test split with "
        "the same masks and matched, shuffled or no captions",
        "settings": {**settings, "head": vars(head)},
        "rows": {"train": len(train), "test": len(test)},
        "chance": {"R1": 100 / len(test)},
        "sources": sources,
        "masked_patch_loss": text_effect,
        "predictor": str(predictor_path),
        "caches": data.provenance,
    }


@register_benchmark("coco", "coco")
def coco(cfg: dict, experiment: str) -> dict:
    from jepa_pipe.eval.charades import _experiment_for

    exp = _experiment_for(cfg, "coco", "vljepa_image", experiment)
    path = Path(cfg["paths"]["runs"]) / experiment / "predictor.pt"
    return evaluate(cfg, exp, path, _splits(cfg, exp))


# ----------------------------------------------------------------------------- ablations
ABLATION_KEYS = {
    "mask_ratio": ("masking", "ratio"),
    "text_conditioning": ("predictor", "text_conditioning"),
    "loss": ("loss",),
}


def ablation_grid(exp_cfg: dict, grid: dict) -> list[tuple[dict, dict]]:
    """[(setting, experiment config)] for every combination of the grid's values."""
    unknown = sorted(set(grid) - set(ABLATION_KEYS))
    if unknown:
        raise ValueError(f"ablation keys {unknown}: expected some of {sorted(ABLATION_KEYS)}")
    keys = sorted(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        setting, cfg = dict(zip(keys, values, strict=True)), copy.deepcopy(exp_cfg)
        for k, v in setting.items():
            *parents, leaf = ABLATION_KEYS[k]
            node = cfg
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = v
        out.append((setting, cfg))
    return out


def run_ablations(cfg: dict, experiment: str, out: Path) -> dict:
    """Train and evaluate every grid point from the same caches (one teacher pass); each run
    lives in runs/{experiment}/ablations/{experiment}__{setting}/, so a rerun resumes or
    reuses the points it finished. A point whose checkpoint was trained with other settings
    (the base experiment changed) or on rebuilt caches is trained again from scratch: its
    old result no longer belongs to this grid. Writes `out` (JSON) and a plot beside it."""
    from jepa_pipe.train.vl import StaleCheckpoint, resolve_vl_experiment, train_vl

    base = resolve_vl_experiment(cfg, experiment)
    if base["system"] != "vljepa_image":
        raise ValueError(f"ablations run on a vljepa_image experiment, not {base['system']}")
    grid = base.get("ablations") or {
        "mask_ratio": [0.5, 0.75],
        "text_conditioning": [True, False],
        "loss": [base["loss"]],
    }
    settings = _splits(cfg, base)
    rows = []
    runs = Path(cfg["paths"]["runs"]) / experiment / "ablations"
    for i, (setting, exp_cfg) in enumerate(ablation_grid(cfg["experiments"][experiment], grid)):
        name = f"{experiment}__" + "_".join(f"{k}-{v}" for k, v in setting.items())
        sub = {**cfg, "experiments": {name: {k: v for k, v in exp_cfg.items() if k != "ablations"}}}
        try:
            summary = train_vl(sub, name, runs=runs)
        except StaleCheckpoint as e:
            log.warning("ablation %s: %s; training it again", name, e)
            shutil.rmtree(runs / name)
            summary = train_vl(sub, name, runs=runs)
        exp = resolve_vl_experiment(sub, name)
        result = evaluate(sub, exp, runs / name / "predictor.pt", settings, full=False)
        rows.append(
            {
                "mask_ratio": exp["masking"]["ratio"],
                "text_conditioning": exp["predictor"].get("text_conditioning", True),
                "loss": exp["loss"],
                "train_loss_last": summary["last_loss"],
                "val_masked_loss": result["masked_patch_loss"],
                "probe_top1": result["sources"]["student"].get("top1"),
            }
        )
        log.info("ablation %d %s: %s", i, setting, rows[-1])
    report = {"experiment": experiment, "grid": grid, "settings": settings, "runs": rows}
    write_json_atomic(out, report)
    plot_ablations(rows, out.with_suffix(".png"))
    return report


def plot_ablations(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"r={r['mask_ratio']}\n{'text' if r['text_conditioning'] else 'no text'}\n{r['loss']}"
        for r in rows
    ]
    matched = [r["val_masked_loss"].get("matched", r["val_masked_loss"]["none"]) for r in rows]
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(rows)), 3.2))
    ax.bar(
        range(len(rows)), matched, color=["C0" if r["text_conditioning"] else "C7" for r in rows]
    )
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("val masked-patch loss")
    ax.set_title("COCO ablations (lower is better)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
