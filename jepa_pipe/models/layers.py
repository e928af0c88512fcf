"""Transformer pieces the students and predictors share: patch embedding, fixed 3D sin-cos
positions, and one pre-norm block whose attention runs over time, space or both.

Token layout inside a student is ``[B, T', S, D]`` (S = spatial tokens per time step, all
H'·W' of them or the K kept by a tube mask); a block reshapes it for the axis it attends over.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Axis = Literal["joint", "space", "time", "time_space"]


def sincos_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """[N] positions -> [N, dim] (dim even) fixed sin-cos features."""
    freqs = torch.exp(-math.log(10000.0) * torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = pos.double()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


@functools.lru_cache(maxsize=32)
def sincos_3d(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Positions of a (T', H', W') grid in raster order -> [T'·H'·W', dim].

    Fixed rather than learned, so a student trained on 8-frame clips runs on 16-frame clips
    (the V-JEPA 2 clip-length schedule) without interpolating a table. Cached and shared by
    every module (read-only: callers add it out of place)."""
    t, h, w = grid
    part = 2 * (dim // 6)
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    emb = torch.cat([sincos_1d(a.flatten(), part) for a in (tt, hh, ww)], dim=1)  # [L, 3·part]
    return F.pad(emb, (0, dim - emb.shape[1]))


class PatchEmbed3d(nn.Module):
    """[B, 3, T, H, W] -> [B, T', H', W', D] with a tubelet × patch × patch convolution."""

    def __init__(self, dim: int, patch_size: int, tubelet_size: int, channels: int = 3):
        super().__init__()
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(channels, dim, kernel_size=kernel, stride=kernel)

    def grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        return (frames // self.tubelet_size, height // self.patch_size, width // self.patch_size)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.proj(video).permute(0, 2, 3, 4, 1)  # [B, T', H', W', D]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, N, D]; key_valid bool [B, N] (False = padding no query attends to)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if key_valid is None else key_valid[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, heads, N, D/h]
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block. ``axis`` picks what attends to what in a [B, T', S, D]
    layout: joint (all tokens), space (within a time step), time (along time, per spatial
    token), time_space (TimeSformer's divided attention: time, then space, one MLP)."""

    def __init__(self, dim: int, heads: int, axis: Axis = "joint", mlp_ratio: float = 4.0):
        super().__init__()
        self.axis = axis
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        if axis == "time_space":
            self.norm_t, self.attn_t = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    @staticmethod
    def _over_time(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        b, t, s, d = x.shape
        y = attn(x.transpose(1, 2).reshape(b * s, t, d))
        return y.view(b, s, t, d).transpose(1, 2)

    @staticmethod
    def _over_space(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        b, t, s, d = x.shape
        return attn(x.reshape(b * t, s, d)).view(b, t, s, d)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() == 3:  # [B, N, D]: a plain sequence (predictors, dropped-token joint blocks)
            if self.axis != "joint":
                raise ValueError(f"a {self.axis} block needs a [B, T', S, D] token layout")
            x = x + self.attn(self.norm1(x), key_valid)
        elif self.axis == "joint":
            b, t, s, d = x.shape
            x = x + self.attn(self.norm1(x).reshape(b, t * s, d)).view(b, t, s, d)
        elif self.axis == "space":
            x = x + self._over_space(self.attn, self.norm1(x))
        elif self.axis == "time":
            x = x + self._over_time(self.attn, self.norm1(x))
        else:  # time_space
            x = x + self._over_time(self.attn_t, self.norm_t(x))
            x = x + self._over_space(self.attn, self.norm1(x))
        return x + self.mlp(self.norm2(x))
