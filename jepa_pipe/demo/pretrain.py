"""Demo video teachers that have seen motion.

The demo's labels and captions depend only on how a shape moves (direction, rotation sense,
speed). A randomly initialised tiny teacher's tokens do not carry that (README, "On the
demo"), so a student distilled from its cache has nothing to learn and the benchmarks cannot
tell a working pipeline from a broken one. Real recipes load pretrained weights; the demo
cannot download any, so it ships tiny checkpoints of the real classes that this module
trained to name the motion of rendered shapes: fresh clips from the demo's renderer, drawn
from their own seed stream, never the demo datasets' clips.

``python -m jepa_pipe tiny-teacher --kind videomae --pretrain-steps 3000 --out DIR`` writes
one (``save_pretrained``, plus ``pretrain.json`` with the settings and the loss curve).
"""

from __future__ import annotations

import json
import math
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from jepa_pipe import get_logger
from jepa_pipe.demo import render
from jepa_pipe.demo.render import MOTIONS, SPEEDS

log = get_logger("demo.pretrain")

STILL = len(MOTIONS) * len(SPEEDS)  # class index of a clip where nothing moves
N_CLASSES = STILL + 1
SOURCE_FRAMES = 32  # rendered frames per clip, as the demo videos (4 s at 8 fps)
# the demo videos' widths (short side 64): the clip is centre-cropped as decode does
WIDTHS = (64, 72, 80, 88)


def motion_clip(
    rng: np.random.Generator, frames: int = 16, frame_step: int = 2, size: int = 64
) -> tuple[np.ndarray, int]:
    """One rendered clip [frames, size, size, 3] uint8 and its class: motion x speed, or
    STILL. A moving shape moves over the whole clip or, as Charades-STA's events do, starts
    and stops inside it; 0-2 still distractors."""
    w = int(rng.choice(WIDTHS))
    shapes, label = [], STILL
    if rng.random() < 0.9:
        m, s = int(rng.integers(len(MOTIONS))), int(rng.integers(len(SPEEDS)))
        start, length = 0, SOURCE_FRAMES
        if rng.random() < 0.5:
            start = int(rng.integers(0, SOURCE_FRAMES - 8))
            length = int(rng.integers(8, SOURCE_FRAMES - start + 1))
        shapes.append(
            render.moving_shape(rng, MOTIONS[m], SPEEDS[s], SOURCE_FRAMES, size, w, start, length)
        )
        label = m * len(SPEEDS) + s
    shapes += [render.still_shape(rng, SOURCE_FRAMES, size, w) for _ in range(rng.integers(0, 3))]
    video = render.render(shapes, SOURCE_FRAMES, size, w, rng)  # [32, size, w, 3]
    left = (w - size) // 2
    first = int(rng.integers(0, SOURCE_FRAMES - (frames - 1) * frame_step))
    idx = first + np.arange(frames) * frame_step
    return video[idx, :, left : left + size], label


def motion_pool(
    seed: int, n: int, frames: int = 16, frame_step: int = 2, size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """n clips [n, frames, size, size, 3] and labels [n], from a stream no demo dataset uses."""
    rng = np.random.default_rng([seed, zlib.crc32(b"demo.pretrain")])
    clips = np.empty((n, frames, size, size, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for i in range(n):
        clips[i], labels[i] = motion_clip(rng, frames, frame_step, size)
    return clips, labels


# Motion index after a horizontal flip, a vertical flip, or playing the clip backwards (a
# mirror reverses the rotation sense): label-aware augmentations that multiply the pool.
_MIRROR_H = np.array([1, 0, 2, 3, 5, 4])
_MIRROR_V = np.array([0, 1, 3, 2, 5, 4])
_REVERSE = np.array([1, 0, 3, 2, 5, 4])


def augment(
    rng: np.random.Generator, clips: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each clip [B, T, H, W, 3] flipped left-right, up-down and/or reversed in time at random,
    its label moved with it."""
    clips, motion, speed = clips.copy(), labels // len(SPEEDS), labels % len(SPEEDS)
    for axis, table in ((3, _MIRROR_H), (2, _MIRROR_V), (1, _REVERSE)):
        pick = rng.random(len(clips)) < 0.5
        clips[pick] = np.flip(clips[pick], axis=axis)
        motion = np.where(pick, table[np.minimum(motion, len(MOTIONS) - 1)], motion)
    moving = labels != STILL
    return clips, np.where(moving, motion * len(SPEEDS) + speed, STILL)


def pretrain_video_teacher(
    kind: str,
    out: str | Path,
    steps: int,
    seed: int = 0,
    image_size: int = 64,
    frames: int = 16,
    pool: int = 6144,
    batch_size: int = 32,
    lr: float = 3e-3,
) -> dict:
    """Train a tiny `kind` (videomae or vjepa2) with a linear head on its mean token to name
    each clip's motion (cross-entropy over N_CLASSES), then ``save_pretrained`` the encoder
    alone (the head is dropped: the cache reads tokens)."""
    if kind not in ("videomae", "vjepa2"):
        raise ValueError(f"motion pretraining is for video teachers; got kind {kind!r}")
    teacher = _trainable_teacher(kind, seed, image_size, frames)
    model = teacher.model
    head = torch.nn.Linear(teacher.config.hidden_size, N_CLASSES)
    t0 = time.perf_counter()
    clips, labels = motion_pool(seed, pool, frames, 2, image_size)
    render_s = time.perf_counter() - t0
    rng = np.random.default_rng([seed, 1])

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.sort(rng.choice(pool, batch_size, replace=False))
        clips_, labels_ = augment(rng, clips[rows], labels[rows])
        return teacher.normalise(clips_), torch.from_numpy(labels_)

    def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
        return (logits.argmax(1) == target).float().mean().item()

    curve = _fit(teacher, head, batch, torch.nn.functional.cross_entropy, accuracy, steps, lr)
    task = (
        f"name the motion of rendered shapes ({N_CLASSES} classes: {len(MOTIONS)} motions x "
        f"{len(SPEEDS)} speeds, and still)"
    )
    settings = {"kind": kind, "steps": steps, "seed": seed, "pool": pool, "batch_size": batch_size,
                "lr": lr, "frames": frames, "image_size": image_size}  # fmt: skip
    return _save(model, out, task, settings, render_s, time.perf_counter() - t0 - render_s, curve)


def _trainable_teacher(kind: str, seed: int, image_size: int, frames: int):
    """A tiny random `kind` of the real class (seeded), inside the teacher wrapper whose own
    normalisation and forward the cache will run: the wrapper is built without a model
    (which it would freeze), then handed the trainable one."""
    import transformers

    from jepa_pipe.teachers import TEACHERS, LoadOptions
    from jepa_pipe.teachers.tiny import teacher_config

    torch.manual_seed(seed)
    config = teacher_config(kind, "tiny", image_size, frames)
    cls = TEACHERS[kind]
    model = getattr(transformers, cls.model_class)(config, **cls.model_kwargs)
    teacher = cls(config, LoadOptions())
    teacher.model = model
    return teacher


def _fit(teacher, head, batch, loss_fn, metric_fn, steps: int, lr: float) -> list[dict]:
    """The pretraining loop both demo teachers share: AdamW, linear warmup then cosine to 10 %
    of ``lr``, gradient clipping; ``batch()`` draws (normalised input, target), ``head`` reads
    the mean token. Returns the curve: loss and ``metric_fn`` every 100 steps."""
    model = teacher.model
    params = [*model.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    warmup = max(1, steps // 20)
    curve, window = [], []
    model.train()
    for step in range(steps):
        if step < warmup:
            step_lr = lr * (step + 1) / warmup
        else:
            t = (step - warmup) / max(1, steps - warmup)
            step_lr = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * t)))
        for group in opt.param_groups:
            group["lr"] = step_lr
        inputs, target = batch()
        logits = head(teacher.forward_tokens(inputs).mean(1))  # [B, classes]
        loss = loss_fn(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        window.append((loss.item(), metric_fn(logits, target)))
        if (step + 1) % 100 == 0 or step + 1 == steps:
            loss_mean, metric = np.mean(window, axis=0)
            name = metric_fn.__name__
            curve.append({"step": step + 1, "loss": round(float(loss_mean), 4),
                          name: round(float(metric), 3)})  # fmt: skip
            log.info("step %d loss %.4f %s %.3f", step + 1, loss_mean, name, metric)
            window = []
    return curve


def _save(model, out, task: str, settings: dict, render_s: float, train_s: float, curve) -> dict:
    """``save_pretrained`` the encoder (the head is dropped: the cache reads tokens) and
    ``pretrain.json`` beside it with the task, settings, timings and curve."""
    out = Path(out)
    model.save_pretrained(out)
    record = {"task": task, **settings, "render_s": round(render_s, 1),
              "train_s": round(train_s, 1), "torch": torch.__version__, "curve": curve}  # fmt: skip
    (out / "pretrain.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


# ----------------------------------------------------------------------- the image teacher
# The demo's COCO captions name the colour and kind of two shapes and how they lie; a random
# ViT's patch tokens hardly tell the kinds apart (probe of the largest object's kind at
# chance), so the demo ships a tiny ViT trained to say which (colour, kind) pairs a rendered
# still holds, from the mean of its patch tokens.
LOOKS = [(c, k) for c in render.COLORS for k in render.KINDS]  # label index of each look


def still_image(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One rendered still [size, size, 3] uint8 (1-3 shapes, a demo-wide frame centre-cropped
    as decode does) and its multi-hot looks [len(LOOKS)]: the shapes whose centre is in it."""
    w = int(rng.choice(WIDTHS))
    shapes = [render.still_shape(rng, 1, size, w) for _ in range(rng.integers(1, 4))]
    image = render.render(shapes, 1, size, w, rng)[0]  # [size, w, 3]
    left = (w - size) // 2
    looks = np.zeros(len(LOOKS), np.float32)
    for s in shapes:
        if left <= s.x[0] < left + size:
            looks[LOOKS.index((s.color, s.kind))] = 1.0
    return image[:, left : left + size], looks


def pretrain_image_teacher(
    out: str | Path,
    steps: int,
    seed: int = 0,
    image_size: int = 64,
    pool: int = 8192,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> dict:
    """Train a tiny ViT with a linear head on its mean patch token to say which looks a still
    holds (binary cross-entropy per look), then ``save_pretrained`` the encoder alone."""
    teacher = _trainable_teacher("vit", seed, image_size, 1)
    model = teacher.model
    head = torch.nn.Linear(teacher.config.hidden_size, len(LOOKS))
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, zlib.crc32(b"demo.pretrain.image")])
    images = np.empty((pool, image_size, image_size, 3), np.uint8)
    looks = np.empty((pool, len(LOOKS)), np.float32)
    for i in range(pool):
        images[i], looks[i] = still_image(rng, image_size)
    render_s = time.perf_counter() - t0

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.sort(rng.choice(pool, batch_size, replace=False))
        stills = images[rows]
        for axis in (1, 2):  # flips keep the looks
            pick = rng.random(batch_size) < 0.5
            stills[pick] = np.flip(stills[pick], axis=axis)
        return teacher.normalise(stills[:, None]), torch.from_numpy(looks[rows])

    def exact_match(logits: torch.Tensor, target: torch.Tensor) -> float:
        return ((logits > 0).float() == target).all(1).float().mean().item()

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    curve = _fit(teacher, head, batch, bce, exact_match, steps, lr)
    task = f"say which of {len(LOOKS)} looks (colour x kind) a rendered still holds"
    settings = {"kind": "vit", "steps": steps, "seed": seed, "pool": pool,
                "batch_size": batch_size, "lr": lr, "image_size": image_size}  # fmt: skip
    return _save(model, out, task, settings, render_s, time.perf_counter() - t0 - render_s, curve)
