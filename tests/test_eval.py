"""Benchmarks: the probe and the retrieval head on cases with known answers, and the eval
verbs end to end on small synthetic caches (features -> results -> summary -> report)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
import zarr

from jepa_pipe.cli import main
from jepa_pipe.eval import BENCHMARK_NAMES
from jepa_pipe.eval.benchmarks import BENCHMARKS
from jepa_pipe.eval.features import EvalError, load_features
from jepa_pipe.eval.probe import linear_probe
from jepa_pipe.eval.retrieval import HeadConfig, evaluate_head, retrieval, train_head

from train_fixtures import write_eval_caches


def test_probe_on_separable_features_is_perfect():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 16)) * 10
    y_train, y_test = np.repeat(np.arange(5), 12), np.repeat(np.arange(5), 4)
    x_train = centers[y_train] + rng.normal(size=(60, 16))
    x_test = centers[y_test] + rng.normal(size=(20, 16))
    r = linear_probe(x_train, y_train, x_test, y_test, num_classes=5)
    assert r["top1"] == 100.0 and r["top5"] == 100.0
    assert set(r["cv_top1"]) == {"0.001", "0.01", "0.1", "1.0", "10.0", "100.0"}
    lo, hi = r["top1_ci95"]  # 20 of 20: the Wilson interval's lower end z^2 away from n
    assert hi == 100.0 and lo == pytest.approx(100 * 20 / (20 + 1.96**2), abs=0.01)


def test_probe_on_label_free_features_is_near_chance():
    rng = np.random.default_rng(1)
    y_train, y_test = np.repeat(np.arange(4), 50), np.repeat(np.arange(4), 50)
    r = linear_probe(
        rng.normal(size=(200, 8)), y_train, rng.normal(size=(200, 8)), y_test, num_classes=4
    )
    assert r["top1"] < 40  # chance is 25


def test_retrieval_head_on_identical_features_is_perfect():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(120, 24)).astype(np.float32)
    train, test = feats[:80], feats[80:]
    # identical video and text features; test pairs were never seen in training
    r = retrieval((train, train, np.arange(80)), (test, test, np.arange(40)), HeadConfig(steps=300))
    assert r["t2v"]["R1"] == 100.0 and r["v2t"]["R1"] == 100.0
    assert r["t2v"]["MdR"] == 1.0 and r["loss_last"] < r["loss_first"]


def test_retrieval_with_several_captions_per_video():
    rng = np.random.default_rng(2)
    video = rng.normal(size=(30, 12)).astype(np.float32)
    text_video = np.repeat(np.arange(30), 3)  # three noisy captions per video
    text = video[text_video] + 0.05 * rng.normal(size=(90, 12)).astype(np.float32)
    head, _ = train_head(video, text, text_video, HeadConfig(steps=200, dim=32))
    r = evaluate_head(head, video, text, text_video)
    assert r["t2v"]["R1"] > 90 and r["v2t"]["R1"] > 90
    with pytest.raises(ValueError, match="at least one caption"):
        evaluate_head(head, video, text[:3], text_video[:3])


def test_retrieval_reports_the_mean_over_head_seeds():
    """`repeats` heads, seeds seed..seed+repeats-1: each run is the single-seed protocol, and
    every reported metric is their mean (sd beside it), so one head's luck is not the result."""
    rng = np.random.default_rng(4)
    video = rng.normal(size=(60, 12)).astype(np.float32)
    text = video + 0.8 * rng.normal(size=(60, 12)).astype(np.float32)  # noisy: seeds differ
    train, test = (video[:40], text[:40], np.arange(40)), (video[40:], text[40:], np.arange(20))
    cfg = HeadConfig(steps=40, dim=16, seed=7, repeats=3)
    r = retrieval(train, test, cfg)
    assert [run["seed"] for run in r["runs"]] == [7, 8, 9]
    for run in r["runs"]:
        alone = retrieval(train, test, HeadConfig(steps=40, dim=16, seed=run["seed"], repeats=1))
        assert run["t2v"] == alone["t2v"] and run["v2t"] == alone["v2t"]
        assert alone["runs"] == [run]  # repeats=1: one run, the mean is that run
    for d in ("t2v", "v2t"):
        for k in ("R1", "R5", "R10", "MdR", "MnR"):
            values = [run[d][k] for run in r["runs"]]
            assert r[d][k] == pytest.approx(np.mean(values))
            assert r[f"{d}_sd"][k] == pytest.approx(np.std(values))
    assert len({run["t2v"]["MnR"] for run in r["runs"]}) > 1  # the seeds did differ here
    assert r["loss_last"] == pytest.approx(np.mean([run["loss_last"] for run in r["runs"]]))
    with pytest.raises(ValueError, match="repeats must be at least 1, got 0"):
        retrieval(train, test, HeadConfig(steps=1, repeats=0))


def test_head_training_is_seeded():
    rng = np.random.default_rng(3)
    v, t = rng.normal(size=(20, 8)), rng.normal(size=(20, 8))
    a, la = train_head(v, t, np.arange(20), HeadConfig(steps=20))
    b, lb = train_head(v, t, np.arange(20), HeadConfig(steps=20))
    assert la == lb
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)


def test_benchmark_names_match_the_registry():
    assert set(BENCHMARK_NAMES) == set(BENCHMARKS)


def test_eval_verbs_end_to_end(tmp_path, capsys):
    config = write_eval_caches(tmp_path)
    cfg_args = ["--config", str(config), "--experiment", "st"]
    assert main(["train", *cfg_args, "--no-progress"]) == 0
    for dataset in ("ucf101", "msrvtt"):
        assert main(["features", *cfg_args, "--dataset", dataset]) == 0
    for bench in ("ucf101", "msrvtt"):
        assert main(["eval", bench, *cfg_args]) == 0
    results = tmp_path / "results" / "st"
    ucf = json.loads((results / "ucf101.json").read_text())
    assert set(ucf["sources"]) == {"student", "teacher", "random"}
    assert ucf["classes"] == 4 and ucf["chance"]["top1"] == 25.0
    assert ucf["rows"] == {"train": 32, "test": 8}
    for r in ucf["sources"].values():
        assert 0 <= r["top1"] <= r["top5"] <= 100 and r["test_clips"] == 8
    feats = ucf["features"]
    assert feats["student"]["weights"] == "online"  # st_jepa keeps no EMA
    assert feats["random"]["weights"].startswith("random init")
    assert feats["teacher"]["stores"][0]["fingerprint"]
    assert feats["student"]["checkpoint_sha256"] and ucf["manifest_sha256"]

    ret = json.loads((results / "msrvtt.json").read_text())
    assert ret["chance"]["R1"] == pytest.approx(100 / 8) and ret["text"]["store"] == "text"
    for r in ret["sources"].values():
        assert r["test_videos"] == 8 and r["test_queries"] == 8
        assert {"R1", "R5", "R10", "MdR", "MnR"} <= set(r["t2v"]) and r["v2t"]["MnR"] >= 1

    files = [str(results / f"{b}.json") for b in ("ucf101", "msrvtt")]
    md, table = tmp_path / "results/summary.md", tmp_path / "results/summary.parquet"
    assert main(["summary", *files, "--markdown", str(md), "--parquet", str(table)]) == 0
    assert "| st | ucf101 | top1 |" in md.read_text()
    assert pq.read_table(table).num_rows == 3 * 2 + 3 * 8

    page = tmp_path / "results" / "report.html"
    assert main(["report", "--config", str(config), "--out", str(page)]) == 0
    text = page.read_text()
    pngs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert [alt for alt, _ in pngs] == [
        "Training",
        "UCF-101 linear probe",
        "Text-video retrieval",
        "Caches",
    ]
    assert all(len(data) > 1000 for _, data in pngs)
    assert "results/vj/ucf101.json" in text or "vj/ucf101.json" in text  # not run: listed

    # a retrained run makes the kept features stale: refused, not silently reused
    cfg = yaml.safe_load(config.read_text())
    ckpt = tmp_path / "runs" / "st" / "student.pt"
    state = torch.load(ckpt, weights_only=True)
    state["step"] += 1
    torch.save(state, ckpt)
    with pytest.raises(EvalError, match="retrained"):
        load_features(cfg, "st", "ucf101", "student")
    capsys.readouterr()


def test_multi_view_features_average_every_cached_view(tmp_path):
    """With eval.multi_view, student features hold one slice per view store (frames,
    frames.v1) and the teacher's are the mean of its per-view pooled arrays."""
    config = write_eval_caches(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cache = tmp_path / "cache" / "ucf101"
    shutil.copytree(cache / "frames.zarr", cache / "frames.v1.zarr")
    shutil.copytree(cache / "teacher.zarr", cache / "teacher.v1.zarr")
    # view 1 of the teacher differs, so its mean is not view 0's array
    v1 = zarr.open_group(str(cache / "teacher.v1.zarr"), mode="r+")
    v1["pooled"][:] = -v1["pooled"][:]
    cfg["datasets"]["ucf101"]["decode"] = {"views": [{"crop": "center"}, {"flip": True}]}
    cfg["eval"]["multi_view"] = True
    config.write_text(yaml.safe_dump(cfg))
    args = ["--config", str(config), "--experiment", "st"]
    assert main(["train", *args, "--no-progress"]) == 0
    assert main(["features", *args, "--dataset", "ucf101", "--source", "student"]) == 0
    with np.load(tmp_path / "runs/st/features/ucf101/student.npz") as f:
        assert f["pooled"].shape[0] == 2
        np.testing.assert_allclose(f["pooled"][0], f["pooled"][1])  # same frames in both
    teacher, valid, meta = load_features(cfg, "st", "ucf101", "teacher")
    assert [s["store"] for s in meta["stores"]] == ["teacher", "teacher.v1"]
    assert np.abs(teacher).max() < 1e-3 and valid.all()  # x and -x average to zero
    cfg["eval"]["multi_view"] = False  # features of 2 views do not serve a 1-view eval
    with pytest.raises(EvalError, match="1"):
        load_features(cfg, "st", "ucf101", "student")
