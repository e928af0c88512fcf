"""SIGKILL a demo cache build at random moments, resume it, compare with a clean build.

For one demo dataset (default UCF-101: 72 clips, two tiny video teachers) this builds the
cache once without interruption, then `--kills` times: a fresh cache directory, `python -m
jepa_pipe cache` killed with SIGKILL after a delay drawn uniformly from [0, clean build
time), the same command run again to the end, and every file of the cache compared (sha256)
with the clean build. Prints one JSON object: kills, resumed builds byte-identical, rows lost
or duplicated (rows whose bytes differ from the clean build's, per store).

    python scripts/fault_kills.py --config config/config.yaml --dataset ucf101 --kills 10

Needs the dataset's manifest and its teachers' checkpoints (the demo DAG's `cache` target,
or `snakemake --cores 2 manifests` and the tiny_teacher jobs).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def rows_differing(a: Path, b: Path) -> dict[str, int]:
    """Per store and array: rows whose bytes differ (a lost or duplicated row shows here)."""
    import numpy as np
    import zarr

    out = {}
    for store in sorted(a.glob("*.zarr")):
        ga, gb = (
            zarr.open_group(str(store), mode="r"),
            zarr.open_group(str(b / store.name), mode="r"),
        )
        for name in ("frames", "tokens", "pooled", "valid"):
            if name in ga:
                x, y = ga[name][:], gb[name][:]
                diff = (x != y).reshape(len(x), -1).any(axis=1) if x.shape == y.shape else x
                out[f"{store.stem}/{name}"] = int(np.count_nonzero(diff))
    return out


def build(config: Path, dataset: str, kill_after: float | None = None) -> tuple[float, bool]:
    """Run the cache verb; with `kill_after`, SIGKILL it then. (seconds, killed)"""
    cmd = [sys.executable, "-m", "jepa_pipe", "cache", "--config", str(config)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "--dataset", dataset], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return time.perf_counter() - t0, True
    if proc.wait() != 0:
        raise SystemExit(f"cache build failed:\n{proc.stderr.read().decode()[-3000:]}")
    return time.perf_counter() - t0, False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ap.add_argument("--dataset", default="ucf101")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    scratch = Path(tempfile.mkdtemp(prefix="jepa_kills_"))
    teachers = Path(cfg["paths"]["cache"]) / "teachers"

    def fresh(name: str = "work") -> tuple[Path, Path]:
        """The same cache directory every time (summaries record its path)."""
        shutil.rmtree(scratch / name, ignore_errors=True)
        c = copy.deepcopy(cfg)
        c["datasets"] = {args.dataset: cfg["datasets"][args.dataset]}
        c.pop("experiments", None)
        cache = scratch / name
        (cache / "teachers").mkdir(parents=True)
        for t in teachers.iterdir():  # the checkpoints, shared read-only
            os.symlink(t.resolve(), cache / "teachers" / t.name)
        c["paths"]["cache"] = str(cache)
        path = scratch / f"{name}.yaml"
        path.write_text(yaml.safe_dump(c))
        return path, cache / args.dataset

    try:
        config, work = fresh()
        clean_s, _ = build(config, args.dataset)
        expected = tree(work)
        clean = scratch / "clean"
        shutil.copytree(work, clean)
        rng = random.Random(args.seed)
        runs = []
        for _ in range(args.kills):
            config, cache = fresh()
            delay = rng.uniform(0, clean_s)
            _, killed = build(config, args.dataset, kill_after=delay)
            build(config, args.dataset)
            got = tree(cache)
            diff = rows_differing(clean, cache)
            runs.append(
                {
                    "kill_after_s": round(delay, 2),
                    "killed": killed,
                    "identical": got == expected,
                    "rows_differing": sum(diff.values()),
                }
            )
        print(
            json.dumps(
                {
                    "dataset": args.dataset,
                    "clean_build_s": round(clean_s, 2),
                    "files": len(expected),
                    "kills": sum(r["killed"] for r in runs),
                    "resumed_identical": sum(r["identical"] for r in runs),
                    "rows_lost_or_duplicated": sum(r["rows_differing"] for r in runs),
                    "runs": runs,
                }
            )
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
