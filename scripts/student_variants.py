"""Train one video experiment with settings changed, through the real trainer, and probe it:
how the README's "masked tokens alone" and seed rows were measured (issue 5). Not a recipe.

The experiment is trained from the caches under --runs (not runs/, so the DAG's own runs
stay as they are), then its frozen student and its random init are probed side by side:
UCF-101 train -> test and SSv2 train -> validation (the benchmark's linear_probe on
mean-pooled tokens), and with --retrieval the MSR-VTT / MSVD / UCF-101 benchmarks as
`eval` runs them. Run in a workspace after the demo DAG, e.g.
    python scripts/student_variants.py --tag masked_only --set '{"context_loss_weight": 0}'
    python scripts/student_variants.py --tag seed1 --set '{"seed": 1}' --retrieval
Prints one JSON object per line."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from jepa_pipe.cache.store import store_path
from jepa_pipe.datasets.manifest import manifest_path, read_manifest
from jepa_pipe.eval.benchmarks import headline, run_benchmark
from jepa_pipe.eval.features import extract, load_students, student_pooled
from jepa_pipe.eval.probe import linear_probe
from jepa_pipe.train.loop import Trainer
from jepa_pipe.train.recipe import merge_settings


def probe(cfg: dict, models: dict, teacher: dict, dataset: str, test_split: str) -> dict:
    frames = store_path(cfg["paths"]["cache"], dataset, "frames")
    pooled, valid, _ = student_pooled(models, frames, teacher["mean"], teacher["std"])
    table = read_manifest(manifest_path(cfg["paths"]["manifests"], dataset)).to_pydict()
    split, labels = np.asarray(table["split"]), np.asarray(table["label_id"])
    rows = np.asarray(table["row"])
    train = rows[(split == "train") & valid[rows]]
    test = rows[(split == test_split) & valid[rows]]
    classes = int(labels.max()) + 1
    return {
        f"{dataset}_{k}_top1": round(
            linear_probe(x[train], labels[train], x[test], labels[test], classes)["top1"], 1
        )
        for k, x in pooled.items()
    } | {f"{dataset}_{test_split}_clips": len(test)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("logs/config.resolved.yaml"))
    ap.add_argument("--experiment", default="st_jepa_demo")
    ap.add_argument("--set", default="{}", help="JSON merged over the experiment's settings")
    ap.add_argument("--tag", required=True, help="the variant's run name under --runs")
    ap.add_argument("--runs", type=Path, default=Path("runs_variants"))
    ap.add_argument("--retrieval", action="store_true", help="also the eval benchmarks")
    args = ap.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    over = json.loads(args.set)
    cfg["experiments"][args.tag] = merge_settings(cfg["experiments"][args.experiment], over)
    cfg["paths"]["runs"] = str(args.runs)
    shutil.rmtree(args.runs / args.tag, ignore_errors=True)
    t0 = time.perf_counter()
    summary = Trainer(cfg, args.tag).run(progress=False)
    train_s = time.perf_counter() - t0
    weights = cfg.get("eval", {}).get("weights", "ema")
    students = load_students(args.runs / args.tag / "student.pt", ["student", "random"], weights)
    models = {k: m for k, (m, _) in students.items()}
    teacher = students["student"][1]["caches"]["teacher"]
    out = {"tag": args.tag, "set": over, "loss_first_last": [summary["first_loss"],
           summary["last_loss"]], "train_s": round(train_s, 1)}  # fmt: skip
    out |= probe(cfg, models, teacher, "ucf101", "test")
    out |= probe(cfg, models, teacher, cfg["experiments"][args.tag]["dataset"], "validation")
    print(json.dumps(out), flush=True)
    if args.retrieval:
        bench = {}
        for name in ("ucf101", "msrvtt", "msvd"):
            extract(cfg, args.tag, name)
            result = run_benchmark(cfg, args.tag, name, out=args.runs / args.tag / f"{name}.json")
            bench[name] = {
                source: round(row.get("t2v_R1", row.get("top1")), 1)
                for source, row in headline(result).items()
            }
        print(json.dumps({"tag": args.tag, "benchmarks": bench}), flush=True)


if __name__ == "__main__":
    main()
