"""Text-video retrieval from cached features: a light alignment head (linear or a small MLP on
the video side, linear on the text side) trained with symmetric InfoNCE on the train split,
then text-to-video and video-to-text ranks on the test split (``retrieval_metrics``).

Batches hold distinct videos with one of their captions drawn at random, so no batch pairs a
caption with another copy of its own video as a negative (the CLIP4Clip sampling).

The head is trained ``repeats`` times (seeds ``seed``, ``seed + 1``, ...) and every metric is
the mean over those runs, with its standard deviation and each run kept: on a small test split
one head's seed moves R@1 by about as much as the features do (on the demo, 8 head seeds over
the same student features gave MSVD t2v R@1 at 3.3-6.5x chance and MSR-VTT at 3-12x), so a
single head would report its luck."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jepa_pipe.eval.metrics import over_runs, retrieval_metrics
from jepa_pipe.losses import info_nce


@dataclass(frozen=True)
class HeadConfig:
    kind: Literal["linear", "mlp"] = "linear"
    dim: int = 256
    steps: int = 400
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05
    seed: int = 0
    repeats: int = 5  # heads trained (seeds seed .. seed + repeats - 1); metrics are their mean

    @classmethod
    def from_dict(cls, d: dict | None) -> HeadConfig:
        return cls(**{k: v for k, v in (d or {}).items() if k in cls.__dataclass_fields__})


class AlignmentHead(nn.Module):
    """Maps video features [N, Dv] and text embeddings [M, Dt] into one unit-norm space."""

    def __init__(
        self, video_mean: torch.Tensor, video_std: torch.Tensor, text_dim: int, cfg: HeadConfig
    ):
        super().__init__()
        video_dim = len(video_mean)
        # video features come from many sources (random students included) at any scale:
        # standardise with the training split's statistics
        self.register_buffer("video_mean", video_mean)
        self.register_buffer("video_std", video_std)
        if cfg.kind == "mlp":
            self.video = nn.Sequential(
                nn.Linear(video_dim, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim)
            )
        else:
            self.video = nn.Linear(video_dim, cfg.dim)
        self.text = nn.Linear(text_dim, cfg.dim)

    def encode_video(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.video((x - self.video_mean) / self.video_std), dim=-1)

    def encode_text(self, t: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(t), dim=-1)


def _captions_of(text_video: np.ndarray, n_videos: int) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(n_videos)]
    for t, v in enumerate(text_video.tolist()):
        out[v].append(t)
    return out


def train_head(
    video: np.ndarray, text: np.ndarray, text_video: np.ndarray, cfg: HeadConfig
) -> tuple[AlignmentHead, list[float]]:
    """video [N, Dv], text [M, Dt], text_video [M] (each text's video index) -> head, losses."""
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    v = torch.as_tensor(video, dtype=torch.float32)
    t = torch.as_tensor(text, dtype=torch.float32)
    head = AlignmentHead(v.mean(0), v.std(0).clamp_min(1e-6), t.shape[1], cfg)
    captions = _captions_of(np.asarray(text_video), len(v))
    videos = torch.tensor([i for i, c in enumerate(captions) if c])  # [Nc]
    counts = torch.tensor([len(captions[i]) for i in videos.tolist()])
    # each video's captions, flattened: video k's are flat[offset[k] : offset[k] + counts[k]]
    flat = torch.tensor([x for i in videos.tolist() for x in captions[i]])
    offset = torch.cumsum(counts, 0) - counts
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch = min(cfg.batch_size, len(videos))
    losses = []
    for _ in range(cfg.steps):
        pick = torch.randperm(len(videos), generator=g)[:batch]  # distinct videos
        which = (torch.rand(batch, generator=g) * counts[pick]).long()  # one caption each
        caption = flat[offset[pick] + which]
        loss = info_nce(
            head.encode_video(v[videos[pick]]), head.encode_text(t[caption]), cfg.temperature
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return head.eval(), losses


@torch.no_grad()
def evaluate_head(
    head: AlignmentHead, video: np.ndarray, text: np.ndarray, text_video: np.ndarray
) -> dict[str, dict[str, float]]:
    """Text-to-video (each caption a query; its video is correct) and video-to-text (each
    video a query; any of its captions is correct) on the test split."""
    v = head.encode_video(torch.as_tensor(video, dtype=torch.float32))
    t = head.encode_text(torch.as_tensor(text, dtype=torch.float32))
    sim = (t @ v.T).numpy()  # [M, N]
    captions = _captions_of(np.asarray(text_video), len(v))
    if any(not c for c in captions):
        raise ValueError("every test video needs at least one caption for video-to-text")
    return {
        "t2v": retrieval_metrics(sim, [int(x) for x in text_video]),
        "v2t": retrieval_metrics(sim.T, captions),
    }


def retrieval(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    cfg: HeadConfig,
) -> dict:
    """Train on (video, text, text_video) of the train split, score the test split, once per
    head seed; t2v / v2t are the means over the runs, t2v_sd / v2t_sd their spread."""
    if cfg.repeats < 1:
        raise ValueError(f"retrieval_head.repeats must be at least 1, got {cfg.repeats}")
    runs = []
    for seed in range(cfg.seed, cfg.seed + cfg.repeats):
        head, losses = train_head(*train, replace(cfg, seed=seed))
        scores = evaluate_head(head, *test)
        runs.append({"seed": seed, **scores, "loss_first": losses[0], "loss_last": losses[-1]})
    out: dict = {"head": asdict(cfg)}
    for d in ("t2v", "v2t"):
        out[d] = over_runs([r[d] for r in runs], lambda v: float(v.mean()))
        out[f"{d}_sd"] = over_runs([r[d] for r in runs], lambda v: float(v.std()))
    losses = [{k: r[k] for k in ("loss_first", "loss_last")} for r in runs]
    return out | over_runs(losses, lambda v: float(v.mean())) | {"runs": runs}
