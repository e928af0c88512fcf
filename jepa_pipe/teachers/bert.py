"""BERT (e.g. google-bert/bert-base-uncased): token-level text features for the image VL-JEPA
predictor, padded to a fixed length with a validity mask, plus their masked mean."""

from __future__ import annotations

from typing import ClassVar

from jepa_pipe.teachers import TextTeacher, register_teacher


@register_teacher("bert")
class BertTeacher(TextTeacher):
    model_class = "BertModel"
    model_kwargs: ClassVar[dict] = {"add_pooling_layer": False}
    token_level = True
    default_max_length = 32
