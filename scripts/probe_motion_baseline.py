"""Is a demo dataset's label (UCF-101 by default) linearly readable at all, and from which
features?

Probes (the benchmark's own linear_probe) on: a pixel baseline (per-step centroid of frame
differences, no learning), and the teacher cache's tokens mean-pooled and time-ordered. Run
after the demo DAG:  python scripts/probe_motion_baseline.py [--cache cache --manifests manifests]
(SSv2's PCA-projected store, trained on train, scored on validation:
--dataset ssv2 --teacher videomae_tiny_pca --test-split validation)
Prints one JSON object (top-1 per feature, chance)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import zarr

from jepa_pipe.eval.probe import linear_probe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("cache"))
    ap.add_argument("--manifests", type=Path, default=Path("manifests"))
    ap.add_argument("--teacher", default="videomae_tiny")
    ap.add_argument("--dataset", default="ucf101")
    ap.add_argument("--test-split", default="test")
    args = ap.parse_args()
    table = pq.read_table(args.manifests / f"{args.dataset}.parquet")
    y = np.asarray(table.column("label_id").to_pylist())
    split = np.asarray(table.column("split").to_pylist())
    labelled = y >= 0  # SSv2's test split has no labels
    tr, te = (split == "train") & labelled, (split == args.test_split) & labelled
    classes = len(np.unique(y[labelled]))
    y = np.searchsorted(np.unique(y[labelled]), y)  # dense class ids

    def top1(x: np.ndarray) -> float:
        return round(linear_probe(x[tr], y[tr], x[te], y[te], classes)["top1"], 1)

    frames = zarr.open_group(str(args.cache / args.dataset / "frames.zarr"), mode="r")["frames"][:]
    gray = frames.astype(np.float32).mean(-1)  # [N, T, H, W]
    moving = np.abs(np.diff(gray, axis=1))  # [N, T-1, H, W]
    mass = moving.sum((2, 3)) + 1e-6
    rows, cols = np.arange(gray.shape[2]), np.arange(gray.shape[3])
    centroid = np.concatenate(
        [(moving.sum(3) * rows).sum(2) / mass, (moving.sum(2) * cols).sum(2) / mass], axis=1
    )
    group = zarr.open_group(str(args.cache / args.dataset / f"{args.teacher}.zarr"), mode="r")
    tokens = group["tokens"][:].astype(np.float32)  # [N, L, D]
    t = group.attrs["jepa_pipe"]["token_grid"][0]
    per_step = tokens.reshape(len(tokens), t, -1, tokens.shape[-1]).mean(2)  # [N, T', D]
    centred = tokens - tokens.mean((0, 1))
    clip_mean = centred.mean(1, keepdims=True)  # [N, 1, D]
    print(json.dumps({
        "chance": round(100 / classes, 1),
        "pixel_motion_centroid": top1(centroid),
        "teacher_mean_pooled": top1(tokens.mean(1)),
        "teacher_time_ordered": top1(per_step.reshape(len(tokens), -1)),
        # one token alone (first, middle, last position): does each token carry the label?
        **{f"teacher_token_{i}": top1(tokens[:, i]) for i in (0, tokens.shape[1] // 2, -1)},
        # how much of the tokens' variance is the clip's mean token (what students see least)
        "clip_mean_variance_share": round(
            float((clip_mean**2).sum() * tokens.shape[1] / (centred**2).sum()), 3
        ),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
