"""Video students: a patch embedding, blocks whose attention axes the architecture picks, a
final norm. A new architecture is one ``@register_student`` function returning block axes.

- hybrid (ST-JEPA): ``factorized_depth`` divided space-time blocks (time, then space), then
  joint blocks.
- factorized (V-JEPA 2 card): ``factorized_depth`` spatial blocks, then temporal blocks.
- joint (V-JEPA context encoder): a plain ViT over all kept tokens.

``forward_features(video, context)`` encodes only the tokens a mask leaves visible:
- a context that keeps the same spatial positions at every time step (tube masking) is
  gathered to a dense [B, T', K, D] grid, so factorized blocks stay factorized and cheap;
- any other context: joint blocks drop the hidden tokens (V-JEPA), factorized blocks see a
  learned mask embedding at hidden positions (they need a full grid); hidden positions are
  dropped at the first joint block and at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from jepa_pipe import JepaPipeError
from jepa_pipe.models.layers import Axis, Block, PatchEmbed3d, sincos_3d

StudentArch = Literal["hybrid", "factorized", "joint"]
Grid = tuple[int, int, int]

STUDENTS: dict[str, Callable[[int, int], list[Axis]]] = {}


def register_student(name: str):
    def wrap(fn: Callable[[int, int], list[Axis]]):
        STUDENTS[name] = fn
        return fn

    return wrap


@register_student("hybrid")
def hybrid(depth: int, factorized_depth: int) -> list[Axis]:
    return ["time_space"] * factorized_depth + ["joint"] * (depth - factorized_depth)


@register_student("factorized")
def factorized(depth: int, factorized_depth: int) -> list[Axis]:
    return ["space"] * factorized_depth + ["time"] * (depth - factorized_depth)


@register_student("joint")
def joint(depth: int, factorized_depth: int) -> list[Axis]:
    return ["joint"] * depth


@dataclass(frozen=True)
class StudentConfig:
    arch: StudentArch = "hybrid"
    dim: int = 384
    depth: int = 12
    heads: int = 6
    factorized_depth: int = 8
    patch_size: int = 16
    tubelet_size: int = 2

    @classmethod
    def from_dict(cls, d: dict) -> StudentConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class GridMismatch(JepaPipeError):
    pass


def _index_of(keep: torch.Tensor) -> torch.Tensor:
    """bool [B, N] with equal True counts -> their positions [B, K] in increasing order."""
    counts = keep.sum(1)
    if (counts != counts[0]).any():
        raise ValueError(f"masks keep unequal token counts across the batch: {counts.tolist()}")
    return keep.nonzero()[:, 1].view(len(keep), -1)


class VideoStudent(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        if cfg.arch not in STUDENTS:
            raise ValueError(
                f"unknown student arch {cfg.arch!r}; expected one of {sorted(STUDENTS)}"
            )
        if cfg.arch != "joint" and not 0 <= cfg.factorized_depth <= cfg.depth:
            raise ValueError(f"factorized_depth {cfg.factorized_depth} outside 0..{cfg.depth}")
        self.cfg = cfg
        self.patch = PatchEmbed3d(cfg.dim, cfg.patch_size, cfg.tubelet_size)
        self.axes = STUDENTS[cfg.arch](cfg.depth, cfg.factorized_depth)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, a) for a in self.axes)
        self.mask_token = nn.Parameter(torch.zeros(cfg.dim)) if cfg.arch != "joint" else None
        self.norm = nn.LayerNorm(cfg.dim)

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def describe(self) -> dict:
        return {**asdict(self.cfg), "axes": self.axes}

    def token_grid(self, frames: int, height: int, width: int) -> Grid:
        return self.patch.grid(frames, height, width)

    def check_grid(self, frames: int, height: int, width: int, cache_grid: Grid) -> None:
        mine = self.token_grid(frames, height, width)
        if tuple(mine) != tuple(cache_grid):
            raise GridMismatch(
                f"student token grid {list(mine)} (clips {frames}x{height}x{width}, tubelet "
                f"{self.cfg.tubelet_size}, patch {self.cfg.patch_size}) differs from the teacher "
                f"cache's token grid {list(cache_grid)}: pick patch_size / tubelet_size so "
                "they match"
            )

    def forward_features(
        self, video: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """video [B, 3, T, H, W] normalised; context bool [B, T', H', W'] (True = visible) or
        None for every token. Returns (tokens [B, N, D], index [B, N] raster positions)."""
        x = self.patch(video)  # [B, T', H', W', D]
        b, t, h, w, d = x.shape
        x = x.reshape(b, t, h * w, d) + sincos_3d((t, h, w), d).to(x.device).view(1, t, h * w, d)
        if context is None:
            context = torch.ones(b, t, h, w, dtype=torch.bool, device=x.device)
        if tuple(context.shape[1:]) != (t, h, w):
            raise ValueError(f"mask grid {list(context.shape[1:])} != token grid {[t, h, w]}")
        keep = context.reshape(b, t, h * w)
        if bool((keep == keep[:, :1]).all()):  # same spatial set at every step (tube)
            spatial = _index_of(keep[:, 0])  # [B, K]
            x = torch.gather(x, 2, spatial[:, None, :, None].expand(b, t, -1, d))  # [B, T', K, D]
            for blk in self.blocks:
                x = blk(x)
            index = torch.arange(t, device=x.device).view(1, t, 1) * (h * w) + spatial[:, None]
            return self.norm(x.reshape(b, -1, d)), index.reshape(b, -1)
        index = _index_of(keep.reshape(b, -1))  # [B, N]
        x = x.reshape(b, t * h * w, d)
        grid_layout = self.axes[0] != "joint"
        if grid_layout:  # factorized blocks need the full grid: hidden tokens -> mask embedding
            x = torch.where(
                keep.reshape(b, -1, 1), x, self.mask_token + sincos_3d((t, h, w), d).to(x.device)
            )
            x = x.view(b, t, h * w, d)
        else:
            x = torch.gather(x, 1, index[..., None].expand(-1, -1, d))
        for blk in self.blocks:
            if grid_layout and blk.axis == "joint":  # from here on, visible tokens only
                x = torch.gather(x.reshape(b, -1, d), 1, index[..., None].expand(-1, -1, d))
                grid_layout = False
            x = blk(x)
        if grid_layout:
            x = torch.gather(x.reshape(b, -1, d), 1, index[..., None].expand(-1, -1, d))
        return self.norm(x), index

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, D] -> pooled [B, D] (mean over tokens: the probe feature)."""
        return tokens.mean(1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(video)[0])
