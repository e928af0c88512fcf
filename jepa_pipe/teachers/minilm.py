"""all-MiniLM-L6-v2 sentence embeddings: mean pooling over non-padding tokens, then L2
normalisation (the sentence-transformers convention for this model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jepa_pipe.teachers import TextTeacher, register_teacher


@register_teacher("minilm")
class MiniLMTeacher(TextTeacher):
    model_class = "AutoModel"
    default_max_length = 256

    def finish_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(pooled, dim=-1)

    def provenance(self) -> dict:
        return {**super().provenance(), "normalise": "l2"}
