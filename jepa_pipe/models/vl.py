"""VL-JEPA predictors, trained from caches only (no encoder is constructed here).

- ``MomentPredictor`` (video, Charades-STA): the cached features of a window's segments and a
  query embedding -> a predicted embedding in the text teacher's space (MiniLM).
- ``CausalLMPredictor``: the same contract through a causal language model (e.g. Qwen2.5-0.5B)
  fine-tuned with LoRA (peft); segments, query and a prediction slot enter as input embeddings.
- ``PatchPredictor`` (image, COCO): visible patch tokens, the caption's tokens and mask tokens
  -> the masked patches' latents (the image teacher's space).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from jepa_pipe.models.layers import Block, sincos_1d, sincos_3d

PredictorKind = Literal["transformer", "causal_lm"]


class MomentPredictor(nn.Module):
    """[PRED] [QUERY] seg_1 ... seg_S -> the [PRED] output mapped to the text dimension."""

    def __init__(
        self,
        video_dim: int,
        text_dim: int,
        dim: int = 384,
        depth: int = 4,
        heads: int = 6,
    ):
        super().__init__()
        self.dim = dim
        # caches of different teachers (and random tiny ones) differ in scale: normalise first
        self.video_in = nn.Sequential(nn.LayerNorm(video_dim), nn.Linear(video_dim, dim))
        self.query_in = nn.Linear(text_dim, dim)
        self.pred_token = nn.Parameter(torch.zeros(dim))
        self.kind = nn.Parameter(torch.zeros(3, dim))  # pred, query, segment
        nn.init.trunc_normal_(self.pred_token, std=0.02)
        nn.init.trunc_normal_(self.kind, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, "joint") for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, text_dim)

    def forward(
        self, segments: torch.Tensor, valid: torch.Tensor, query: torch.Tensor
    ) -> torch.Tensor:
        """segments [B, S, Dv] (a window, left-aligned), valid bool [B, S], query [B, Dt]
        -> [B, Dt]."""
        b, s, _ = segments.shape
        pos = sincos_1d(torch.arange(s), self.dim).to(segments)  # position inside the window
        video = self.video_in(segments) + pos + self.kind[2]  # [B, S, dim]
        pred = (self.pred_token + self.kind[0]).expand(b, 1, self.dim)
        q = (self.query_in(query) + self.kind[1])[:, None]
        x = torch.cat([pred, q, video], dim=1)  # [B, 2 + S, dim]
        key_valid = torch.cat([valid.new_ones(b, 2), valid], dim=1)
        for blk in self.blocks:
            x = blk(x, key_valid)
        return self.head(self.norm(x[:, 0]))


class CausalLMPredictor(nn.Module):
    """seg_1 ... seg_S [QUERY] [PRED] as input embeddings of a causal LM with LoRA adapters;
    the last position (which attends to everything) is mapped to the text dimension."""

    def __init__(
        self,
        video_dim: int,
        text_dim: int,
        model: str,
        lora_rank: int = 16,
        lora_alpha: int = 32,
        target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
    ):
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel

        from jepa_pipe.teachers import resolve_weights

        base = AutoModel.from_pretrained(str(resolve_weights(model)), local_files_only=True)
        hidden = base.config.hidden_size
        lora = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, target_modules=list(target_modules))
        self.lm = get_peft_model(base, lora)  # base weights frozen, adapters trainable
        self.video_in = nn.Sequential(nn.LayerNorm(video_dim), nn.Linear(video_dim, hidden))
        self.query_in = nn.Linear(text_dim, hidden)
        self.pred_token = nn.Parameter(torch.zeros(hidden))
        nn.init.trunc_normal_(self.pred_token, std=0.02)
        self.head = nn.Linear(hidden, text_dim)

    def forward(
        self, segments: torch.Tensor, valid: torch.Tensor, query: torch.Tensor
    ) -> torch.Tensor:
        b = segments.shape[0]
        x = torch.cat(
            [
                self.video_in(segments),
                self.query_in(query)[:, None],
                self.pred_token.expand(b, 1, -1),
            ],
            dim=1,
        )  # [B, S + 2, hidden]
        mask = torch.cat([valid, valid.new_ones(b, 2)], dim=1).long()
        hidden = self.lm(inputs_embeds=x, attention_mask=mask).last_hidden_state
        return self.head(hidden[:, -1])


def build_moment_predictor(video_dim: int, text_dim: int, cfg: dict) -> nn.Module:
    kind = cfg.get("kind", "transformer")
    if kind == "transformer":
        return MomentPredictor(
            video_dim, text_dim, cfg.get("dim", 384), cfg.get("depth", 4), cfg.get("heads", 6)
        )
    if kind == "causal_lm":
        if "model" not in cfg:
            raise ValueError("predictor kind causal_lm needs `model` (a local path or hub id)")
        return CausalLMPredictor(
            video_dim,
            text_dim,
            cfg["model"],
            cfg.get("lora_rank", 16),
            cfg.get("lora_alpha", 32),
            tuple(cfg.get("lora_targets", ("q_proj", "v_proj"))),
        )
    raise ValueError(f"unknown predictor kind {kind!r}; expected transformer or causal_lm")


class PatchPredictor(nn.Module):
    """Visible patch tokens + (optionally) the caption's tokens + a mask token at every
    masked position -> predicted latents of the masked patches, in the patch teacher's
    dimension. Positions: fixed sin-cos over the (H', W') patch grid."""

    def __init__(
        self,
        patch_dim: int,
        text_dim: int,
        grid: tuple[int, int],
        dim: int = 384,
        depth: int = 6,
        heads: int = 6,
        text_conditioning: bool = True,
    ):
        super().__init__()
        self.dim, self.grid, self.text_conditioning = dim, tuple(grid), text_conditioning
        self.patch_in = nn.Sequential(nn.LayerNorm(patch_dim), nn.Linear(patch_dim, dim))
        self.text_in = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, dim))
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.kind = nn.Parameter(torch.zeros(3, dim))  # patch, text, mask
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.kind, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, "joint") for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, patch_dim)

    def _encode(self, x, text, text_valid):
        b = x.shape[0]
        key_valid = x.new_ones(b, x.shape[1], dtype=torch.bool)
        n_text = 0
        if self.text_conditioning and text is not None:
            t = self.text_in(text) + self.kind[1]  # [B, Lt, dim]
            n_text = t.shape[1]
            x = torch.cat([t, x], dim=1)
            key_valid = torch.cat([text_valid, key_valid], dim=1)
        for blk in self.blocks:
            x = blk(x, key_valid)
        return self.norm(x[:, n_text:])

    def forward(
        self,
        patches: torch.Tensor,
        context_index: torch.Tensor,
        target_index: torch.Tensor,
        text: torch.Tensor | None = None,
        text_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """patches [B, L, Dp] (all of them; only context_index [B, Nc] are read), target_index
        [B, Nt], text [B, Lt, Dt] with text_valid bool [B, Lt] -> [B, Nt, Dp]."""
        pos = sincos_3d((1, *self.grid), self.dim).to(patches)  # [L, dim]
        seen = torch.gather(patches, 1, context_index[..., None].expand(-1, -1, patches.shape[2]))
        context = self.patch_in(seen) + pos[context_index] + self.kind[0]
        queries = self.mask_token + pos[target_index] + self.kind[2]
        out = self._encode(torch.cat([context, queries], dim=1), text, text_valid)
        return self.head(out[:, context.shape[1] :])

    @torch.no_grad()
    def features(
        self,
        patches: torch.Tensor,
        text: torch.Tensor | None = None,
        text_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every patch visible -> mean of the predictor's outputs [B, dim] (probe features)."""
        pos = sincos_3d((1, *self.grid), self.dim).to(patches)
        x = self.patch_in(patches) + pos + self.kind[0]
        return self._encode(x, text, text_valid).mean(1)


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters a predictor trains, and its buffers: a LoRA predictor's frozen base
    LM is not copied into every checkpoint (it is reloaded from its own path)."""
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    names |= {n for n, _ in module.named_buffers()}
    return {k: v for k, v in module.state_dict().items() if k in names}


def load_trainable_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    lost = sorted(set(missing) & trainable)
    if lost or unexpected:
        raise ValueError(
            f"checkpoint does not fit the predictor: missing {lost[:5]}, "
            f"unexpected {list(unexpected)[:5]}"
        )
