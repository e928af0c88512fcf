"""Can the demo's student architecture take the teacher's motion features at all, when nothing
is masked? A diagnostic for the UCF-101 gap (issue 5), not a recipe.

Dense distillation: the student sees every frame of an SSv2 clip and a linear head regresses
every cached teacher token from its output token (cosine), from the caches only. Then the
UCF-101 probe (the benchmark's linear_probe) on mean-pooled student tokens, beside the same
architecture at its random init. Run in a demo workspace after the DAG; the issue's notes used
SSv2 at 4x (192 training clips):
    python -m jepa_pipe demo-data --out data/demo --dataset ssv2 --scale 4 --seed 0
    python -m jepa_pipe manifest --dataset ssv2 --root data/demo/ssv2 \\
        --split train,validation,test --out manifests/ssv2.parquet
    python -m jepa_pipe cache --config config/config.yaml --dataset ssv2
    python scripts/dense_distill_probe.py --steps 1500
Prints one JSON object."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import zarr

from jepa_pipe.cache.store import open_store, store_meta
from jepa_pipe.eval.features import student_pooled
from jepa_pipe.eval.probe import linear_probe
from jepa_pipe.models.students import StudentConfig, VideoStudent
from jepa_pipe.train.loop import normalise


def split_rows(manifests: Path, dataset: str, split: str) -> tuple[np.ndarray, dict]:
    table = pq.read_table(manifests / f"{dataset}.parquet").to_pydict()
    rows = [r for r, s in zip(table["row"], table["split"], strict=True) if s == split]
    return np.asarray(rows), table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("cache"))
    ap.add_argument("--manifests", type=Path, default=Path("manifests"))
    ap.add_argument("--teacher", default="videomae_tiny_pca", help="SSv2 store to distil")
    ap.add_argument("--arch", default="hybrid", choices=["hybrid", "factorized", "joint"])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    # the demo students' shape (config/config.yaml: D=48, 4 blocks)
    cfg = StudentConfig(arch=args.arch, dim=48, depth=4, heads=4, factorized_depth=2)
    student, untrained = VideoStudent(cfg), VideoStudent(cfg)
    untrained.load_state_dict(student.state_dict())  # the same init, never trained

    train, _ = split_rows(args.manifests, "ssv2", "train")
    frames = zarr.open_group(str(args.cache / "ssv2/frames.zarr"), mode="r")["frames"]
    teacher = open_store(args.cache / f"ssv2/{args.teacher}.zarr")
    meta = store_meta(teacher)  # the input normalisation the teacher's cache was made with
    mean, std = meta["mean"], meta["std"]
    tokens = teacher["tokens"]
    clips = torch.from_numpy(frames.oindex[train])  # [N, T, H, W, 3] uint8
    targets = torch.from_numpy(tokens.oindex[train].astype(np.float32))  # [N, L, Dt]
    head = torch.nn.Linear(cfg.dim, targets.shape[-1])
    params = [*student.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    losses = []
    for _ in range(args.steps):
        idx = torch.randint(len(clips), (args.batch_size,), generator=gen)
        pred = head(student.forward_features(normalise(clips[idx], mean, std))[0])  # [B, L, Dt]
        loss = 1 - torch.nn.functional.cosine_similarity(pred, targets[idx], dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    student.eval()

    # every UCF-101 row, both models in one pass over the frames, as `features` does
    models = {"dense_student": student, "random_init": untrained}
    pooled, _, _ = student_pooled(models, args.cache / "ucf101/frames.zarr", mean, std)
    tr, table = split_rows(args.manifests, "ucf101", "train")
    te, _ = split_rows(args.manifests, "ucf101", "test")
    labels = np.asarray(table["label_id"])
    classes = int(labels.max()) + 1
    top1 = {
        name: linear_probe(x[tr], labels[tr], x[te], labels[te], classes)
        for name, x in pooled.items()
    }
    print(
        json.dumps(
            {
                "arch": args.arch,
                "steps": args.steps,
                "seed": args.seed,
                "ssv2_train_clips": len(train),
                "loss_first_last": [losses[0], float(np.mean(losses[-50:]))],
                "ucf101_test_clips": len(te),
                **{f"{k}_top1": v["top1"] for k, v in top1.items()},
                **{f"{k}_top1_ci95": v["top1_ci95"] for k, v in top1.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
