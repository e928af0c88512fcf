"""Diagnostic for the demo's eval targets: could another tiny teacher make the demo caches
carry the motion that the demo's labels depend on? Prints, as JSON lines, the UCF-101 linear
probe top-1 (6 classes, chance 16.7 %) of a tiny VideoMAE's tokens, mean-pooled and kept in
time order, for

- ``--mode width``: randomly initialised VideoMAEs of several widths, depths, patch and
  tubelet sizes (does a larger random teacher expose motion?);
- ``--mode supervised``: a tiny VideoMAE trained with a linear head on the demo SSv2 train
  split's labels (the same motion vocabulary as the demo UCF-101), probed every 150 steps
  (does a teacher that was taught motion on another dataset transfer?).

Run after the demo DAG:  python scripts/demo_teacher_probes.py --mode width"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when transformers is imported

import numpy as np
import pyarrow.parquet as pq
import torch
import zarr
from transformers import VideoMAEConfig, VideoMAEModel

from jepa_pipe.eval.probe import linear_probe

WIDTHS = [  # (hidden, layers, patch, tubelet); the first is the demo's videomae_tiny
    (64, 2, 16, 2),
    (384, 4, 16, 2),
    (768, 2, 16, 2),
    (384, 4, 8, 2),
    (384, 2, 8, 4),
]


def load(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frames = zarr.open_group(f"cache/{dataset}/frames.zarr", mode="r")["frames"][:]
    table = pq.read_table(f"manifests/{dataset}.parquet")
    labels = np.asarray(table.column("label_id").to_pylist())
    return frames, labels, np.asarray(table.column("split").to_pylist())


def normalise(frames: np.ndarray) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float [B, T, 3, H, W] (VideoMAE's layout)."""
    x = torch.from_numpy(frames).float().div(255).permute(0, 1, 4, 2, 3)
    return (x - 0.45) / 0.225


def model(hidden: int, layers: int, patch: int, tubelet: int) -> VideoMAEModel:
    torch.manual_seed(0)
    cfg = VideoMAEConfig(
        image_size=64, num_frames=16, patch_size=patch, tubelet_size=tubelet,
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=4 * hidden,
    )  # fmt: skip
    return VideoMAEModel(cfg)


def ucf_probes(net: VideoMAEModel, frames, labels, split, time_steps: int) -> dict:
    net.eval()
    with torch.no_grad():
        tokens = torch.cat(
            [net(normalise(frames[i : i + 8])).last_hidden_state for i in range(0, len(frames), 8)]
        )  # [N, T' * S, D]
    net.train()
    per_step = tokens.view(len(tokens), time_steps, -1, tokens.shape[-1]).mean(2)  # [N, T', D]
    tr, te = split == "train", split == "test"
    out = {}
    for name, x in (("pooled", tokens.mean(1)), ("time_ordered", per_step.flatten(1))):
        x = x.numpy()
        out[f"{name}_top1"] = round(
            linear_probe(x[tr], labels[tr], x[te], labels[te], 6)["top1"], 1
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mode", choices=["width", "supervised"], default="width")
    ap.add_argument("--steps", type=int, default=600, help="supervised: training steps")
    args = ap.parse_args()
    torch.set_num_threads(2)
    ucf = load("ucf101")
    if args.mode == "width":
        for hidden, layers, patch, tubelet in WIDTHS:
            t0 = time.perf_counter()
            probes = ucf_probes(model(hidden, layers, patch, tubelet), *ucf, 16 // tubelet)
            row = {"hidden": hidden, "layers": layers, "patch": patch, "tubelet": tubelet}
            print(json.dumps({**row, **probes, "seconds": round(time.perf_counter() - t0, 1)}))
        return
    frames, labels, split = load("ssv2")
    train = np.flatnonzero((split == "train") & (labels >= 0))
    net, head = model(64, 2, 16, 2), torch.nn.Linear(64, int(labels.max()) + 1)
    opt = torch.optim.AdamW([*net.parameters(), *head.parameters()], lr=1e-3, weight_decay=0.05)
    rng = np.random.default_rng(0)
    print(json.dumps({"step": 0, **ucf_probes(net, *ucf, 8)}), flush=True)
    for step in range(1, args.steps + 1):
        rows = np.sort(rng.choice(train, 8, replace=False))
        logits = head(net(normalise(frames[rows])).last_hidden_state.mean(1))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels[rows]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 150 == 0:
            row = {"step": step, "ssv2_train_loss": round(loss.item(), 3)}
            print(json.dumps({**row, **ucf_probes(net, *ucf, 8)}), flush=True)


if __name__ == "__main__":
    main()
