"""Diagnostic for the demo's eval targets: would a tiny VideoMAE that the demo trains itself
(pixel MAE with tube masking 0.75 on the demo SSv2 frames store) give motion-aware features?
Prints the UCF-101 linear-probe top-1 of its mean-pooled tokens at random init and every 200
steps, as JSON lines. Run after the demo DAG:  python scripts/mae_teacher_probe.py [--steps N]"""

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
from transformers import VideoMAEConfig, VideoMAEForPreTraining

from jepa_pipe.eval.probe import linear_probe


def normalise(frames: np.ndarray) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float [B, T, 3, H, W] (VideoMAE's layout)."""
    x = torch.from_numpy(frames).float().div(255).permute(0, 1, 4, 2, 3)
    return (x - 0.45) / 0.225


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = VideoMAEForPreTraining(
        VideoMAEConfig(image_size=64, num_frames=16, patch_size=16, tubelet_size=2,
                       hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=128, decoder_hidden_size=64,
                       decoder_num_hidden_layers=1, decoder_num_attention_heads=4,
                       decoder_intermediate_size=128, norm_pix_loss=True)
    )  # fmt: skip
    ssv2 = zarr.open_group("cache/ssv2/frames.zarr", mode="r")["frames"][:]
    ucf = zarr.open_group("cache/ucf101/frames.zarr", mode="r")["frames"][:]
    table = pq.read_table("manifests/ucf101.parquet")
    y = np.asarray(table.column("label_id").to_pylist())
    split = np.asarray(table.column("split").to_pylist())
    tr, te = split == "train", split == "test"

    def probe() -> float:
        model.eval()
        with torch.no_grad():
            pooled = torch.cat(
                [model.videomae(normalise(ucf[i : i + 16])).last_hidden_state.mean(1)
                 for i in range(0, len(ucf), 16)]
            ).numpy()  # fmt: skip
        model.train()
        return round(
            linear_probe(pooled[tr], y[tr], pooled[te], y[te], int(y.max()) + 1)["top1"], 1
        )

    print(json.dumps({"step": 0, "probe_top1": probe()}), flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    g = torch.Generator().manual_seed(0)
    t, s = 8, 16  # token grid: time steps, spatial positions
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        rows = np.sort(torch.randint(0, len(ssv2), (8,), generator=g).numpy())
        keep = torch.rand(8, s, generator=g).argsort(1)[:, : s // 4]  # tube masking 0.75
        hidden = torch.ones(8, s, dtype=torch.bool).scatter_(1, keep, False)
        mask = hidden[:, None, :].expand(8, t, s).reshape(8, t * s)
        loss = model(normalise(ssv2[rows]), bool_masked_pos=mask).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0:
            print(json.dumps({"step": step, "loss": round(loss.item(), 3), "probe_top1": probe(),
                              "seconds": round(time.perf_counter() - t0)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
