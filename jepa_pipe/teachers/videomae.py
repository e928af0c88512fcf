"""VideoMAE (e.g. MCG-NJU/videomae-huge-finetuned-kinetics): last hidden state, no CLS.

The default VideoMAEModel has no final LayerNorm (``use_mean_pooling`` moves it into the
classifier head), so tokens are the raw last layer; pooled is their mean (recorded).
"""

from __future__ import annotations

import torch

from jepa_pipe.teachers import TeacherError, VisionTeacher, register_teacher


@register_teacher("videomae")
class VideoMAETeacher(VisionTeacher):
    model_class, config_class = "VideoMAEModel", "VideoMAEConfig"

    def __init__(self, config, opts, model=None, tokenizer=None):
        super().__init__(config, opts, model, tokenizer)
        if self.model is not None:
            # a plain tensor attribute, not a buffer: .to() leaves it on the CPU and every
            # forward copies it to the device (blocking; not allowed inside a CUDA graph)
            emb = self.model.embeddings
            emb.position_embeddings = emb.position_embeddings.to(opts.device)

    def check_input(self, frames: int, size: int) -> None:
        c = self.config
        # fixed sinusoidal positions: the clip must match the checkpoint exactly
        if frames != c.num_frames or size != c.image_size:
            raise TeacherError(
                f"videomae expects {c.num_frames} frames of {c.image_size}px, "
                f"the clips have {frames} frames of {size}px"
            )

    def forward_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).last_hidden_state
