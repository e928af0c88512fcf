"""Cache-only training: grids, exact resume, NaN stop, DDP, no teacher in the process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from jepa_pipe.config import load_config
from jepa_pipe.masking import make_masks
from jepa_pipe.models import GridMismatch, StudentConfig, VideoStudent
from jepa_pipe.models.layers import Block
from jepa_pipe.train.loop import TrainingError, train

from conftest import REPO
from train_fixtures import write_train_caches


def cfg_of(path):
    return load_config(path)


def losses(run):
    return pq.read_table(run / "metrics.parquet").column("loss").to_pylist()


def test_student_grid_mismatch_names_both_grids():
    student = VideoStudent(StudentConfig(arch="joint", dim=24, depth=1, heads=2, patch_size=16))
    with pytest.raises(
        GridMismatch, match=r"student token grid \[8, 14, 14\].*token grid \[8, 16, 16\]"
    ):
        student.check_grid(16, 224, 224, (8, 16, 16))
    student.check_grid(16, 224, 224, (8, 14, 14))


@pytest.mark.parametrize("arch", ["hybrid", "factorized", "joint"])
@pytest.mark.parametrize("kind", ["tube", "future", "multiblock"])
def test_students_see_only_visible_tokens(arch, kind):
    """Outputs depend on visible patches only: changing every hidden pixel changes nothing."""
    torch.manual_seed(0)
    cfg = StudentConfig(arch=arch, dim=24, depth=2, heads=2, factorized_depth=1, patch_size=8)
    student = VideoStudent(cfg).eval()
    masks = make_masks({"kind": kind, "ratio": 0.6}, (4, 4, 4), 2, seed=1, step=0)[0]
    context = torch.from_numpy(masks.context)
    video = torch.randn(2, 3, 8, 32, 32)
    hidden = (~context).repeat_interleave(2, 1).repeat_interleave(8, 2).repeat_interleave(8, 3)
    other = torch.where(hidden[:, None], torch.randn_like(video), video)
    tokens, index = student.forward_features(video, context)
    tokens2, index2 = student.forward_features(other, context)
    assert tokens.shape == (2, int(masks.context[0].sum()), 24)
    assert torch.equal(index, index2)
    assert torch.equal(index[0], torch.from_numpy(np.flatnonzero(masks.context[0])))
    torch.testing.assert_close(tokens, tokens2)
    changed, _ = student.forward_features(torch.where(hidden[:, None], video, other + 1), context)
    assert not torch.allclose(tokens, changed)  # and visible pixels do matter


def test_factorized_blocks_attend_along_their_axis():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 5, 8)  # [B, T', S, D]
    y = x.clone()
    y[0, 1, 2] += torch.randn(8)  # time step 1, spatial token 2 (not a constant: LayerNorm)
    space, time = Block(8, 2, "space"), Block(8, 2, "time")
    # space: other time steps untouched, the same step changes
    assert torch.equal(space(x)[:, 0], space(y)[:, 0])
    assert not torch.equal(space(x)[:, 1, 0], space(y)[:, 1, 0])
    # time: other spatial tokens untouched, the same token at other steps changes
    assert torch.equal(time(x)[:, :, 0], time(y)[:, :, 0])
    assert not torch.equal(time(x)[:, 0, 2], time(y)[:, 0, 2])


@pytest.mark.parametrize("experiment", ["st", "vj", "vj2"])
def test_resume_continues_the_same_trajectory_bitwise(tmp_path, experiment):
    path = write_train_caches(tmp_path)
    cfg = cfg_of(path)
    whole = train(cfg, experiment, progress=False)
    run = tmp_path / "runs" / experiment
    reference = losses(run)
    ref_state = torch.load(run / "student.pt", weights_only=True)
    os.rename(run, tmp_path / "first")
    part = train(cfg, experiment, until_step=3, progress=False)
    assert part["step"] == 3 and not part["finished"]
    assert not (run / "student.pt").exists()
    rest = train(cfg, experiment, progress=False)
    assert rest["finished"] and whole["finished"]
    assert losses(run) == reference  # exact floats
    state = torch.load(run / "student.pt", weights_only=True)
    for k, v in ref_state["student"].items():
        assert torch.equal(v, state["student"][k]), k
    if experiment == "vj":  # V-JEPA keeps an EMA copy beside the online student
        assert state["ema"] is not None
        assert any(not torch.equal(state["ema"][k], v) for k, v in state["student"].items())


@pytest.mark.fault
def test_sigkill_mid_training_then_rerun_replays_the_same_trajectory(tmp_path):
    """The training process killed at a random moment after its first checkpoint (as a
    preempted job is), then the same command again: the same losses and weights, bit for bit,
    as an uninterrupted run of the same command."""
    import random
    import time

    path = write_train_caches(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["experiments"]["st"].update(steps=12, checkpoint_every=2)
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "jepa_pipe", "train", "--config", str(path),
           "--experiment", "st", "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same threads, same floats
    run = tmp_path / "runs" / "st"
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    reference = losses(run)
    ref_state = torch.load(run / "student.pt", weights_only=True)
    # the kill lands in the first half of what the uninterrupted run spent after its first
    # checkpoint (a fixed window let a fast machine finish all 12 steps before the kill)
    steps = pq.read_table(run / "metrics.parquet").to_pylist()
    after_first = sum(r["step_s"] + r["data_wait_s"] for r in steps if r["step"] > 2)
    os.rename(run, tmp_path / "uninterrupted")
    # on a shared host the killed run can go faster than the reference did (a CI run once
    # finished all 12 steps inside the window): then it is run again with the kill earlier,
    # down to right after the first checkpoint
    for fraction in (random.Random(0).uniform(0, 0.5), 0.1, 0.0):
        shutil.rmtree(run, ignore_errors=True)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        last = run / "checkpoints" / "last.pt"
        deadline = time.monotonic() + 120
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(fraction * after_first)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (run / "student.pt").exists():
            break
    assert not (run / "student.pt").exists(), "the run finished before the kill"
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    assert losses(run) == reference
    state = torch.load(run / "student.pt", weights_only=True)
    for k, v in ref_state["student"].items():
        assert torch.equal(v, state["student"][k]), k


def test_metrics_and_resolved_config_are_written(tmp_path):
    cfg = cfg_of(write_train_caches(tmp_path))
    train(cfg, "vj2", progress=False)
    run = tmp_path / "runs" / "vj2"
    table = pq.read_table(run / "metrics.parquet")
    assert table.column_names[:7] == [
        "step",
        "epoch",
        "loss",
        "lr",
        "samples_per_s",
        "data_wait_s",
        "step_s",
    ]
    assert table.column("step").to_pylist() == [1, 2, 3, 4, 5, 6]
    assert table.column("clip_frames").to_pylist() == [4, 4, 4, 8, 8, 8]  # the clip grows
    lr = table.column("lr").to_pylist()
    assert lr[0] < lr[1] and lr[-1] < lr[1]  # warmup, then cosine decay
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["experiment"]["loss"] == "mse"  # the V-JEPA 2 default, filled in
    assert resolved["caches"]["teacher"]["token_grid"] == [4, 2, 2]


def test_ema_initial_weight_is_what_the_average_keeps_of_the_init():
    from jepa_pipe.models import Ema

    init, online = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        init.weight.fill_(0.0)
        online.weight.fill_(1.0)
    ema = Ema(init, start=0.9, end=1.0, total_steps=20)
    for step in range(20):
        ema.update(online, step)
    kept = 1.0 - float(ema.module.weight)  # the average of 0 (init) and 1 (every update)
    assert ema.initial_weight() == pytest.approx(kept, rel=1e-6)
    assert 0.1 < kept < 0.5


def test_a_short_run_warns_that_its_ema_is_mostly_the_init(tmp_path, caplog):
    cfg = cfg_of(write_train_caches(tmp_path))
    with caplog.at_level("WARNING"):
        summary = train(cfg, "vj", progress=False)  # V-JEPA's 0.998 start, 6 steps
    assert summary["ema_initial_weight"] > 0.98
    assert "EMA weights are still 99% the initialisation" in caplog.text


def test_target_dimension_mismatch_names_both_values(tmp_path):
    cfg = cfg_of(write_train_caches(tmp_path))
    cfg["experiments"]["st"]["target_dim"] = 384
    with pytest.raises(TrainingError, match=r"expects 384-d targets .* holds 12-d tokens"):
        train(cfg, "st", progress=False)


def test_student_grid_must_match_the_cache(tmp_path):
    cfg = cfg_of(write_train_caches(tmp_path))
    cfg["experiments"]["st"]["student"]["patch_size"] = 8
    with pytest.raises(
        GridMismatch, match=r"student token grid \[4, 4, 4\].*token grid \[4, 2, 2\]"
    ):
        train(cfg, "st", progress=False)


def test_nan_target_stops_with_step_and_tensor_named(tmp_path):
    cfg = cfg_of(write_train_caches(tmp_path, nan_row=0))
    with pytest.raises(TrainingError, match=r"step \d+: targets has 1 NaN/Inf value"):
        train(cfg, "st", progress=False)


@pytest.mark.fault
def test_changed_settings_or_truncated_checkpoint_refuse_to_resume(tmp_path):
    path = write_train_caches(tmp_path)
    cfg = cfg_of(path)
    train(cfg, "st", until_step=2, progress=False)
    cfg["experiments"]["st"]["loss"] = "l1"
    with pytest.raises(TrainingError, match=r"different settings \(loss\)"):
        train(cfg, "st", progress=False)
    import zarr

    teacher = zarr.open_group(str(tmp_path / "cache/ucf101/teacher.zarr"), mode="r+")
    meta = teacher.attrs["jepa_pipe"]
    teacher.attrs["jepa_pipe"] = {**meta, "fingerprint": "rebuilt"}  # as a rebuilt cache
    with pytest.raises(TrainingError, match="trained on other caches"):
        train(cfg_of(path), "st", progress=False)
    teacher.attrs["jepa_pipe"] = meta
    last = tmp_path / "runs/st/checkpoints/last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(TrainingError, match=r"last\.pt cannot be read.*truncated or corrupt"):
        train(cfg_of(path), "st", progress=False)


def test_training_never_imports_a_teacher(tmp_path):
    path = write_train_caches(tmp_path)
    code = (
        "import sys, json\n"
        "from jepa_pipe.cli import main\n"
        f"assert main(['train', '--config', {str(path)!r}, '--experiment', 'st', '--no-progress']) == 0\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'transformers' or m.startswith('jepa_pipe.teachers'))\n"
        "print(json.dumps(bad))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_two_process_gloo_ddp_step(tmp_path):
    path = write_train_caches(tmp_path)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--standalone", "-m", "jepa_pipe", "train", "--config", str(path),
        "--experiment", "st", "--no-progress",
    ]  # fmt: skip
    # its own session, so a hang cannot leave rank processes behind the test
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("two-process DDP training did not finish in 300 s")
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((tmp_path / "runs/st/summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] and summary["finished"]
    assert len(losses(tmp_path / "runs/st")) == 6


def test_context_loss_adds_the_visible_tokens_loss_at_its_weight(tmp_path):
    """context_loss_weight w: loss = masked-token loss + w * loss of a linear head on the
    student's own tokens against the teacher's at the positions the student saw; 0 leaves the
    JEPA objective alone (no head, context_loss null)."""
    import torch.nn.functional as F

    from jepa_pipe.cache.loader import loader
    from jepa_pipe.train.loop import Trainer, normalise

    cfg = cfg_of(write_train_caches(tmp_path))
    cfg["experiments"]["st"]["context_loss_weight"] = 0.5
    trainer = Trainer(cfg, "st")
    batch = next(iter(loader(trainer.data)))
    frames, tokens = batch["frames"], batch["tokens"].float()  # [B, L, D]
    b, d = len(frames), tokens.shape[-1]
    (masks,) = make_masks(cfg["experiments"]["st"]["masking"], trainer.grid, b, 0, 0)
    context = torch.from_numpy(masks.context)
    with torch.no_grad():
        video = normalise(frames, [0.5] * 3, [0.25] * 3)
        (out,) = trainer.model(video, [(context, torch.from_numpy(masks.target))])
    seen = context.reshape(b, -1).nonzero()[:, 1].view(b, -1)
    assert torch.equal(out.context_index, seen)  # the head scores exactly the visible tokens

    def cos_loss(pred, index):
        at = torch.gather(tokens, 1, index[..., None].expand(-1, -1, d))
        return float((1 - F.cosine_similarity(pred, at, dim=-1)).mean())

    masked, visible = cos_loss(out.target, out.target_index), cos_loss(out.context, seen)
    step = trainer.step(frames, batch["tokens"], 0)  # the loss before its optimizer step
    assert step["context_loss"] == pytest.approx(visible, rel=1e-5)
    assert step["loss"] == pytest.approx(masked + 0.5 * visible, rel=1e-5)

    train(cfg_of(tmp_path / "config.yaml"), "st", progress=False)  # weight 0 (the file's)
    run = tmp_path / "runs" / "st"
    assert pq.read_table(run / "metrics.parquet").column("context_loss").null_count == 6
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert not any(k.startswith("context_head") for k in state["model"])


def test_a_run_from_before_a_new_setting_resumes_as_its_default():
    """A checkpoint's experiment predates context_loss_weight: it trained with the default
    (0), so it is the same training as now; a run that sets another weight is not."""
    from jepa_pipe.train.recipe import same_training

    now = {"loss": "cosine", "context_loss_weight": 0.0, "device": "cpu"}
    old = {"loss": "cosine"}
    assert same_training(old, now) == []
    assert same_training(old, {**now, "context_loss_weight": 1.0}) == ["context_loss_weight"]
