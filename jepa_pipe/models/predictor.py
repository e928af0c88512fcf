"""The JEPA predictor: a narrow transformer that sees the student's visible tokens and a mask
token at every position to predict, and maps the predictions to the teacher's dimension."""

from __future__ import annotations

import torch
from torch import nn

from jepa_pipe.models.layers import Block, sincos_3d

Grid = tuple[int, int, int]


class Predictor(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, dim: int = 384, depth: int = 4, heads: int = 6):
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, "joint") for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim)
        self.dim = dim

    def forward(
        self,
        tokens: torch.Tensor,
        context_index: torch.Tensor,
        target_index: torch.Tensor,
        grid: Grid,
    ) -> torch.Tensor:
        """tokens [B, Nc, in_dim] at raster positions context_index [B, Nc]; target_index
        [B, Nt] -> predictions [B, Nt, out_dim]."""
        pos = sincos_3d(tuple(grid), self.dim).to(tokens.device)  # [L, dim]
        context = self.embed(tokens) + pos[context_index]
        queries = self.mask_token + pos[target_index]
        x = torch.cat([context, queries], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x[:, context.shape[1] :]))
