"""Losses between predicted and cached target tokens, in one place.

Token losses take predictions and targets [B, N, D] for the N predicted (masked) tokens of
each sample (counts are equal across the batch, see jepa_pipe.masking) and average over
tokens. ``target_layernorm`` normalises each target token over D first (V-JEPA).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LossKind = Literal["cosine", "l1", "mse", "infonce"]


def token_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    kind: LossKind = "cosine",
    target_layernorm: bool = False,
) -> torch.Tensor:
    """pred, target [B, N, D] -> scalar. cosine: mean of 1 - cos; l1 / mse: mean over
    elements (V-JEPA's L1, V-JEPA 2's MSE)."""
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
        )
    target = target.detach().to(pred.dtype)
    if target_layernorm:
        target = F.layer_norm(target, target.shape[-1:])
    if kind == "cosine":
        return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
    if kind == "l1":
        return (pred - target).abs().mean()
    if kind == "mse":
        return (pred - target).pow(2).mean()
    raise ValueError(f"unknown token loss {kind!r}; expected cosine, l1 or mse")


def info_nce_scores(logits: torch.Tensor) -> torch.Tensor:
    """Bidirectional InfoNCE over a score matrix [B, K] (K >= B) whose positives are the
    diagonal (i, i): the mean of the row cross-entropy (each row i over all K columns) and
    the column cross-entropy (each of the first B columns over the B rows). Columns past B
    are extra negatives for the rows only (e.g. hard negative windows)."""
    b = logits.shape[0]
    if logits.shape[1] < b:
        raise ValueError(f"score matrix {tuple(logits.shape)} has fewer columns than rows")
    labels = torch.arange(b, device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits[:, :b].T, labels)) / 2


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Bidirectional InfoNCE between paired rows of a and b [B, D] (row i of a matches row i
    of b): the mean of the a->b and b->a cross-entropies over cosine similarities / T."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return info_nce_scores(a @ b.T / temperature)  # [B, B]
