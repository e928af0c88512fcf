"""V-JEPA 2 (e.g. facebook/vjepa2-vitl-fpc64-256): encoder features only.

``VJEPA2Model.forward`` also runs the predictor; ``get_vision_features`` does not.
"""

from __future__ import annotations

import torch

from jepa_pipe.teachers import TeacherError, VisionTeacher, register_teacher


@register_teacher("vjepa2")
class VJEPA2Teacher(VisionTeacher):
    model_class, config_class = "VJEPA2Model", "VJEPA2Config"

    def check_input(self, frames: int, size: int) -> None:
        c = self.config
        if frames % c.tubelet_size or size % c.patch_size:
            raise TeacherError(
                f"vjepa2 needs frames divisible by {c.tubelet_size} and size by "
                f"{c.patch_size}; the clips have {frames} frames of {size}px"
            )

    def forward_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.get_vision_features(pixels)
