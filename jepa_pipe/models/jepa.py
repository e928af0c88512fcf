"""Student + predictor, trained against cached teacher tokens."""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
from torch import nn

from jepa_pipe.models.predictor import Predictor
from jepa_pipe.models.students import StudentConfig, VideoStudent, _index_of


class Predictions(NamedTuple):
    """One mask configuration's outputs: the predictor's at the hidden positions and, with a
    context head, the student's own tokens mapped to the teacher's space at the visible ones."""

    target: torch.Tensor  # [B, Nt, D_teacher]
    target_index: torch.Tensor  # [B, Nt] raster positions
    context: torch.Tensor | None  # [B, Nc, D_teacher], None without a context head
    context_index: torch.Tensor  # [B, Nc]


class JepaModel(nn.Module):
    def __init__(
        self, student: StudentConfig, target_dim: int, predictor: dict, context_head: bool = False
    ):
        super().__init__()
        self.student = VideoStudent(student)
        self.predictor = Predictor(
            student.dim,
            target_dim,
            dim=predictor.get("dim", 384),
            depth=predictor.get("depth", 4),
            heads=predictor.get("heads", 6),
        )
        # a linear map from the student's tokens to the teacher's, for a loss on the tokens it
        # saw (experiment key context_loss_weight): linear, so what it scores is in the tokens
        self.context_head = nn.Linear(student.dim, target_dim) if context_head else None

    def forward(
        self, video: torch.Tensor, masks: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> list[Predictions]:
        """video [B, 3, T, H, W]; masks: (context, target) bool [B, T', H', W'] pairs, one per
        mask configuration. Returns one Predictions per pair. One forward call for all pairs,
        so DDP sees one forward per step."""
        out = []
        for context, target in masks:
            tokens, context_index = self.student.forward_features(video, context)
            grid = tuple(target.shape[1:])
            target_index = _index_of(target.reshape(len(target), -1))
            predicted = self.predictor(tokens, context_index, target_index, grid)
            seen = self.context_head(tokens) if self.context_head is not None else None
            out.append(Predictions(predicted, target_index, seen, context_index))
        return out


class Ema:
    """An exponential moving average of a module's parameters (V-JEPA: momentum rising
    linearly from ``start`` to ``end`` over training). Buffers are copied."""

    def __init__(self, module: nn.Module, start: float, end: float, total_steps: int):
        self.module = copy.deepcopy(module).requires_grad_(False).eval()
        self.start, self.end, self.total = start, end, max(1, total_steps)

    def momentum(self, step: int) -> float:
        return self.start + (self.end - self.start) * min(step, self.total) / self.total

    def initial_weight(self) -> float:
        """The weight the average still gives the initial parameters after the whole run,
        the product of every update's momentum: near 1 means the EMA is the initialisation
        (V-JEPA's 0.998 start suits long runs, not a 150-step one: 0.86 there)."""
        return math.exp(math.fsum(math.log(self.momentum(s)) for s in range(self.total)))

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> float:
        m = self.momentum(step)
        for ema_p, p in zip(self.module.parameters(), module.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1 - m)
        for ema_b, b in zip(self.module.buffers(), module.buffers(), strict=True):
            ema_b.copy_(b)
        return m
