"""The summary page (``python -m jepa_pipe report``, ``snakemake report``): one self-contained
HTML file with the plots embedded as PNG, built from what the workflow left on disk:
training loss curves, probe accuracy bars, retrieval R@K bars, cache statistics and the
results table. Whatever a stage has not produced yet is listed as missing, not drawn."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt
import numpy as np
import pyarrow.parquet as pq

from jepa_pipe.eval.benchmarks import (
    BENCHMARKS,
    TABLE_HEADER,
    benchmarks_for,
    headline_records,
    result_path,
    table_rows,
)
from jepa_pipe.eval.features import SOURCES

COLORS = {
    "student": "#1f77b4",
    "teacher": "#7f7f7f",
    "random": "#d62728",
    "random_windows": "#ff7f0e",
}
LABELS = {
    "student": "student",
    "teacher": "teacher cache",
    "random": "random-init student",
    "random_windows": "random windows",
}
# the VL benchmarks compare a predictor, not a student
PREDICTOR_LABELS = {
    **LABELS,
    "student": "trained predictor",
    "random": "random-init predictor",
}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _figure(title: str, png: str, caption: str) -> str:
    return (
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def loss_curves(runs: dict[str, Path]) -> str | None:
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, path in runs.items():
        t = pq.read_table(path, columns=["step", "loss"])
        ax.plot(t.column("step").to_numpy(), t.column("loss").to_numpy(), label=name, lw=1.2)
    ax.set(xlabel="step", ylabel="training loss", title="Training loss (from the caches only)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _grouped_bars(
    ax,
    groups: list[str],
    values: dict[str, list[float]],
    labels: dict[str, str] = LABELS,
    errors: dict[str, list[float]] | None = None,
) -> None:
    """One bar per source in each group; ``errors`` (same shape) draws +-1 sd whiskers."""
    x = np.arange(len(groups))
    width = 0.8 / len(values)
    for i, (source, vals) in enumerate(values.items()):
        bars = ax.bar(
            x + (i - (len(values) - 1) / 2) * width,
            vals,
            width,
            label=labels[source],
            color=COLORS[source],
            yerr=None if errors is None else errors[source],
            error_kw={"lw": 0.8, "capsize": 2},
        )
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(x, groups, fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def probe_bars(results: dict[str, dict]) -> str | None:
    if not results:
        return None
    exps = sorted(results)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    _grouped_bars(ax, exps, {s: [results[e]["sources"][s]["top1"] for e in exps] for s in SOURCES})
    chance = next(iter(results.values()))["chance"]["top1"]
    ax.axhline(chance, color="k", ls="--", lw=0.8, label=f"chance ({chance:.1f}%)")
    ax.set(ylabel="top-1 (%)", title="UCF-101 linear probe (testlist01)", ylim=(0, 105))
    ax.legend(fontsize=7)
    return _png(fig)


def retrieval_bars(results: dict[tuple[str, str], dict]) -> str | None:
    if not results:
        return None
    keys = sorted(results)
    groups = [f"{e}\n{b}" for e, b in keys]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    rows = {s: [results[key]["sources"][s] for key in keys] for s in SOURCES}
    for ax, k in zip(axes, ("R1", "R5", "R10"), strict=True):
        values = {s: [r["t2v"][k] for r in rs] for s, rs in rows.items()}
        # the spread over the head's seeds (results from before repeats have none)
        errors = {s: [r.get("t2v_sd", {}).get(k, 0.0) for r in rs] for s, rs in rows.items()}
        _grouped_bars(ax, groups, values, errors=errors)
        # chance differs per benchmark (its test split's size): a dash over each group
        at_k = int(k[1:])
        chance = [min(100.0, at_k * results[key]["chance"]["R1"]) for key in keys]
        ax.plot(range(len(keys)), chance, "k_", ms=28, mew=1.2, label="chance")
        top = max(v + e for s in values for v, e in zip(values[s], errors[s], strict=True))
        ax.set(title=f"text-to-video R@{at_k}", ylim=(0, min(105.0, 1.25 * max(top, *chance))))
        ax.tick_params(axis="x", labelsize=6, labelrotation=30)
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=7)
    fig.suptitle("whiskers: ± sd over the alignment head's seeds", fontsize=8, y=0.99)
    fig.tight_layout()
    return _png(fig)


def moment_bars(results: dict[str, dict]) -> str | None:
    """Charades-STA: R@1 at each IoU and mIoU, trained predictor vs random init vs random
    windows (one panel per experiment)."""
    if not results:
        return None
    exps = sorted(results)
    fig, axes = plt.subplots(1, len(exps), figsize=(5.5 * len(exps), 3.6), squeeze=False)
    keys = ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU"]
    for ax, e in zip(axes[0], exps, strict=True):
        srcs = results[e]["sources"]
        _grouped_bars(ax, keys, {s: [srcs[s][k] for k in keys] for s in srcs}, PREDICTOR_LABELS)
        ax.set(title=f"{e}: Charades-STA moments", ylim=(0, 105), ylabel="%")
        ax.legend(fontsize=7)
    return _png(fig)


def coco_bars(results: dict[str, dict], ablations: dict[str, dict]) -> str | None:
    """COCO: text-to-image R@1 and probe top-1 per source; masked-patch loss with matched,
    shuffled and no captions; the ablation grid's validation loss."""
    if not results:
        return None
    e = sorted(results)[0]
    r = results[e]
    panels = 3 if e in ablations else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6))
    srcs = r["sources"]
    metrics = {"t2i R@1": lambda x: x["t2i"]["R1"], "i2t R@1": lambda x: x["i2t"]["R1"]}
    if all("top1" in x for x in srcs.values()):
        metrics["probe top-1"] = lambda x: x["top1"]
    values = {s: [f(srcs[s]) for f in metrics.values()] for s in srcs}
    _grouped_bars(axes[0], list(metrics), values, PREDICTOR_LABELS)
    axes[0].axhline(r["chance"]["R1"], color="k", ls="--", lw=0.8, label="retrieval chance")
    axes[0].set(title=f"{e}: COCO from caches", ylim=(0, 105), ylabel="%")
    axes[0].legend(fontsize=7)
    loss = r["masked_patch_loss"]
    axes[1].bar(list(loss), list(loss.values()), color="#1f77b4")
    axes[1].set(title="val masked-patch loss by caption", ylabel="loss")
    if e in ablations:
        runs = ablations[e]["runs"]
        labels = [
            f"r={x['mask_ratio']}\n{'text' if x['text_conditioning'] else 'no text'}\n{x['loss']}"
            for x in runs
        ]
        vals = [x["val_masked_loss"].get("matched", x["val_masked_loss"]["none"]) for x in runs]
        axes[2].bar(range(len(runs)), vals, color="#9467bd")
        axes[2].set_xticks(range(len(runs)), labels, fontsize=7)
        axes[2].set(title="ablations: val masked-patch loss", ylabel="loss")
    return _png(fig)


def cache_bars(summaries: list[dict]) -> str | None:
    if not summaries:
        return None
    names = [f"{Path(s['store']).parent.name}/{Path(s['store']).stem}" for s in summaries]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.3 * len(names) + 1.5), sharey=True)
    y = np.arange(len(names))
    a.barh(y, [s["valid"] for s in summaries], color="#2ca02c", label="valid")
    a.barh(
        y,
        [s["invalid"] for s in summaries],
        left=[s["valid"] for s in summaries],
        color="#d62728",
        label="invalid",
    )
    a.set_yticks(y, names, fontsize=7)
    a.set(xlabel="rows", title="Cache rows")
    a.legend(fontsize=7)
    b.barh(y, [s["bytes"] / 2**20 for s in summaries], color="#9467bd")
    b.set(xlabel="MiB on disk", title="Cache size")
    return _png(fig)


def _table(records: list[dict]) -> str:
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in records
    )
    return f"<table>{rows}</table>"


def write_report(cfg: dict, out: Path, figures: Path | None = None) -> Path:
    """Write the page; with ``figures``, also each plot as ``<section>.png`` there (for a
    README or a paper draft)."""
    paths = cfg["paths"]
    experiments = sorted(cfg.get("experiments", {}))
    runs = {
        e: Path(paths["runs"]) / e / "metrics.parquet"
        for e in experiments
        if (Path(paths["runs"]) / e / "metrics.parquet").is_file()
    }
    probe, retrieval, moments, coco, records, missing = {}, {}, {}, {}, [], []
    for e in experiments:
        for bench in benchmarks_for(cfg["experiments"][e]["system"]):
            if BENCHMARKS[bench][0] not in cfg["datasets"]:
                continue
            path = result_path(paths["results"], e, bench)
            if not path.is_file():
                missing.append(str(path))
                continue
            r = json.loads(path.read_text())
            group = {"ucf101": probe, "charades": moments, "coco": coco}.get(bench)
            if group is None:
                retrieval[(e, bench)] = r
            else:
                group[e] = r
            records += headline_records(r)
    ablations = {
        e: json.loads(p.read_text())
        for e in experiments
        if (p := Path(paths["results"]) / "ablations" / f"{e}.json").is_file()
    }
    summaries = [
        json.loads(p.read_text()) for p in sorted(Path(paths["cache"]).glob("*/*.summary.json"))
    ]
    sections = [
        (
            "Training",
            loss_curves(runs),
            "Loss per step of every trained experiment (runs/*/metrics.parquet).",
        ),
        (
            "UCF-101 linear probe",
            probe_bars(probe),
            "Top-1 on testlist01 of a logistic "
            "regression on frozen mean-pooled features: student vs teacher cache vs a "
            "randomly initialised student of the same architecture.",
        ),
        (
            "Text-video retrieval",
            retrieval_bars(retrieval),
            "Text-to-video R@1/5/10 on the "
            "test split after an alignment head trained on the train split.",
        ),
        (
            "Charades-STA moment retrieval",
            moment_bars(moments),
            "VL-JEPA (video): R@k at IoU thresholds and mIoU on the test split; the trained "
            "predictor vs the same predictor at random init vs random windows through the same "
            "temporal NMS.",
        ),
        (
            "COCO image-text",
            coco_bars(coco, ablations),
            "VL-JEPA (image): retrieval and probe per feature source; the masked-patch loss "
            "with the image's own, another image's, or no caption; the ablation grid.",
        ),
        (
            "Caches",
            cache_bars(summaries),
            "Rows (valid / invalid) and bytes per store, from each store's verified summary.",
        ),
    ]
    body = []
    for title, png, caption in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        if figures is not None and png:
            figures.mkdir(parents=True, exist_ok=True)
            slug = "_".join(re.findall(r"[a-z0-9]+", title.lower()))
            (figures / f"{slug}.png").write_bytes(base64.b64decode(png))
        body.append(_figure(title, png, caption) if png else "<p><em>not produced yet</em></p>")
    body.append("<h2>Results</h2>")
    body.append(_table([TABLE_HEADER, *table_rows(records)]))
    if missing:
        body.append(
            "<h2>Not run yet</h2><ul>"
            + "".join(f"<li>{html.escape(m)}</li>" for m in missing)
            + "</ul>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>jepa_pipe report</title>"
        "<style>body{font-family:sans-serif;max-width:1150px;margin:2em auto}"
        "img{max-width:100%}table{border-collapse:collapse}"
        "td{border:1px solid #ccc;padding:2px 8px}figcaption{color:#555;font-size:90%}"
        "</style></head><body><h1>jepa_pipe report</h1>" + "".join(body) + "</body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
