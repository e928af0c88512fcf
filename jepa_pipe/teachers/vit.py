"""ViT (e.g. google/vit-base-patch16-224-in21k) on single images: patch tokens without CLS."""

from __future__ import annotations

from typing import ClassVar

import torch

from jepa_pipe.teachers import TeacherError, VisionTeacher, register_teacher


@register_teacher("vit")
class ViTTeacher(VisionTeacher):
    model_class, config_class = "ViTModel", "ViTConfig"
    model_kwargs: ClassVar[dict] = {"add_pooling_layer": False}
    mean = (0.5, 0.5, 0.5)  # the in21k checkpoints' processor normalisation
    std = (0.5, 0.5, 0.5)

    def check_input(self, frames: int, size: int) -> None:
        if frames != 1 or size % self.config.patch_size:
            raise TeacherError(
                f"vit takes single images with size divisible by "
                f"{self.config.patch_size}; got {frames} frames of {size}px"
            )

    def forward_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixels[:, 0], interpolate_pos_encoding=True)
        return out.last_hidden_state[:, 1:]  # drop CLS
