"""On a CUDA machine: tiny random VideoMAE and V-JEPA 2 teachers streamed through the cache
pass's `cache_token_batches`, with and without CUDA graphs (bf16, batch 8, 50 batches). Tiny
models are launch-bound, so this shows what a graph saves in launches, not a real model's
rate. Then the CUDA case of the streamed-batches test in tests/test_teachers.py.

    PYTHONPATH=. python scripts/gpu_graph_check.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jepa_pipe.teachers import LoadOptions, load_teacher
from jepa_pipe.teachers.tiny import write_tiny_teacher

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_teachers

root = Path(tempfile.mkdtemp())
clips = np.random.default_rng(0).integers(0, 256, (8, 16, 64, 64, 3), dtype=np.uint8)
for kind in ("videomae", "vjepa2"):
    write_tiny_teacher(kind, root / kind, seed=0)
    for graph in (True, False):
        opts = LoadOptions(device="cuda", dtype="bfloat16", extra={"cuda_graph": graph})
        teacher = load_teacher(kind, str(root / kind), opts)
        list(teacher.cache_token_batches([clips] * 3))  # warm-up (and capture)
        t0 = time.perf_counter()
        list(teacher.cache_token_batches([clips] * 50))
        rate = 50 * len(clips) / (time.perf_counter() - t0)
        graphs = [list(k) for k in teacher._graphs or {}]
        print(
            json.dumps(
                {"teacher": kind, "cuda_graph": graph, "graphs": graphs, "clips_per_s": round(rate)}
            )
        )
test_teachers.test_streamed_batches_equal_one_batch_at_a_time(root, "cuda")
print("CUDA streamed-batches test passed")
