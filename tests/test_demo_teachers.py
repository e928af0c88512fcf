"""The demo's shipped teachers: trained by `jepa_pipe.demo.pretrain` on rendered clips and
stills that no demo dataset holds, loadable by name, and carrying what the demo's labels and
captions use (the VideoMAE: motion; the ViT: the colour and kind of shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jepa_pipe.demo import pretrain
from jepa_pipe.teachers import TeacherError, load_teacher, resolve_weights

# weights -> (kind, input clips [N, T, H, W, 3], tokens per clip, the loss a constant guess
# gets: ln(13) for the VideoMAE's 13 classes, about 0.39 per look for the ViT's 15 looks)
SHIPPED = {
    "demo:videomae-motion": ("videomae", (2, 16, 64, 64, 3), 8 * 4 * 4, 2.56),
    "demo:vit-shapes": ("vit", (2, 1, 64, 64, 3), 4 * 4, 0.39),
}


def centroid_accuracy(teacher, clips: np.ndarray, labels: np.ndarray) -> float:
    """A nearest-centroid rule on the teacher's pooled tokens of clips [N, T, H, W, 3], fitted
    on the even rows, scored on the odd ones."""
    pooled = np.concatenate(
        [teacher.encode(clips[i : i + 16])[1] for i in range(0, len(clips), 16)]
    )
    fit, test = np.arange(len(clips)) % 2 == 0, np.arange(len(clips)) % 2 == 1
    centroids = np.stack([pooled[fit & (labels == k)].mean(0) for k in range(labels.max() + 1)])
    guess = np.argmin(((pooled[test, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return float((guess == labels[test]).mean())


def test_pretraining_clips_are_seeded_and_labelled_by_their_motion():
    clips, labels = pretrain.motion_pool(seed=0, n=24)
    again, labels_again = pretrain.motion_pool(seed=0, n=24)
    assert clips.shape == (24, 16, 64, 64, 3) and clips.dtype == np.uint8
    assert np.array_equal(clips, again) and np.array_equal(labels, labels_again)
    assert not np.array_equal(pretrain.motion_pool(seed=1, n=24)[0], clips)
    assert set(labels) <= set(range(pretrain.N_CLASSES))
    # a still clip has no change between frames; every other one has some
    change = np.abs(np.diff(clips.astype(np.int16), axis=1)).reshape(24, -1).max(1)
    assert (labels == pretrain.STILL).any() and (labels != pretrain.STILL).any()
    assert np.all(change[labels == pretrain.STILL] == 0)
    assert np.all(change[labels != pretrain.STILL] > 0)


def test_pretraining_writes_a_checkpoint_the_teacher_loads(tmp_path):
    # a 4-clip pool and 2 steps: the loop and the saved encoder, not what it learns
    record = pretrain.pretrain_video_teacher(
        "vjepa2", tmp_path / "t", steps=2, pool=4, batch_size=2, frames=8
    )
    assert record["steps"] == 2 and len(record["curve"]) == 1
    assert json.loads((tmp_path / "t/pretrain.json").read_text())["kind"] == "vjepa2"
    teacher = load_teacher("vjepa2", str(tmp_path / "t"))
    tokens, pooled = teacher.encode(np.zeros((1, 8, 64, 64, 3), np.uint8))
    assert tokens.shape == (1, 4 * 4 * 4, 64) and pooled.shape == (1, 64)
    with pytest.raises(ValueError, match="video teachers"):
        pretrain.pretrain_video_teacher("vit", tmp_path / "v", steps=1)


@pytest.mark.parametrize("weights", sorted(SHIPPED))
def test_shipped_teachers_load_and_record_how_they_were_made(weights):
    kind, clips, length, chance_loss = SHIPPED[weights]
    path = resolve_weights(weights)
    record = json.loads((Path(path) / "pretrain.json").read_text())
    assert record["kind"] == kind and record["steps"] >= 1000
    # trained: the last logged loss is far below a constant guess's
    assert record["curve"][-1]["loss"] < 0.6 * chance_loss, record["curve"][-1]
    teacher = load_teacher(kind, path)
    tokens, _ = teacher.encode(np.zeros(clips, np.uint8))
    assert tokens.shape == (2, length, 64)


def test_image_pretraining_stills_are_seeded_and_say_what_they_hold(tmp_path):
    rng = np.random.default_rng(3)
    image, looks = pretrain.still_image(rng)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert looks.shape == (len(pretrain.LOOKS),) and 1 <= looks.sum() <= 3
    again, _ = pretrain.still_image(np.random.default_rng(3))
    assert np.array_equal(image, again)
    # a 2-step run: the loop and the saved encoder, not what it learns
    record = pretrain.pretrain_image_teacher(tmp_path / "v", steps=2, pool=4, batch_size=2)
    assert record["kind"] == "vit" and len(record["curve"]) == 1
    tokens, pooled = load_teacher("vit", str(tmp_path / "v")).encode(image[None, None])
    assert tokens.shape == (1, 16, 64) and pooled.shape == (1, 64)


def test_shipped_vit_tells_shape_kinds_apart_better_than_a_random_one(tmp_path):
    """Held-out stills of one shape each (their own seed): a nearest-centroid rule on the
    mean-pooled tokens names the kind (circle, square, triangle), fitted on half, scored on
    the other half. Colour is easy for any ViT; the kind is what a random one misses."""
    from jepa_pipe.demo import render
    from jepa_pipe.teachers.tiny import write_tiny_teacher

    rng = np.random.default_rng(11)
    images, kinds = [], []
    for _ in range(150):
        shape = render.still_shape(rng, 1, 64, 80)
        images.append(render.render([shape], 1, 64, 80, rng)[0][:, 8:72])  # centre crop
        kinds.append(render.KINDS.index(shape.kind))
    images, kinds = np.stack(images)[:, None], np.asarray(kinds)  # [N, 1, 64, 64, 3]

    trained = centroid_accuracy(
        load_teacher("vit", resolve_weights("demo:vit-shapes")), images, kinds
    )
    random = load_teacher("vit", str(write_tiny_teacher("vit", tmp_path / "r")))
    random = centroid_accuracy(random, images, kinds)
    assert trained > random + 0.1 and trained > 0.45, (trained, random)


def test_unknown_demo_teacher_names_the_shipped_ones():
    with pytest.raises(TeacherError, match="videomae-motion"):
        resolve_weights("demo:no-such-teacher")


def test_shipped_videomae_tells_motions_apart_better_than_a_random_one(tmp_path):
    """Held-out rendered clips (another seed than the checkpoint's): a nearest-centroid rule on
    mean-pooled tokens, fitted on half, scored on the other half."""
    from jepa_pipe.teachers.tiny import write_tiny_teacher

    clips, labels = pretrain.motion_pool(seed=7, n=96)
    motion = np.where(labels == pretrain.STILL, -1, labels // 2)  # 6 motions, speed ignored
    keep = motion >= 0
    clips, motion = clips[keep], motion[keep]

    trained = load_teacher("videomae", resolve_weights("demo:videomae-motion"))
    trained = centroid_accuracy(trained, clips, motion)
    random = load_teacher("videomae", str(write_tiny_teacher("videomae", tmp_path / "r")))
    random = centroid_accuracy(random, clips, motion)
    assert trained > random + 0.25 and trained > 0.5, (trained, random)


@pytest.mark.parametrize("motion", ["right", "down"])
def test_augmented_clips_keep_labels_true_to_their_motion(motion):
    """A bright square moving right (or down): after random flips and time reversal, the
    label names the direction the square now moves."""
    from jepa_pipe.demo.render import MOTIONS

    clips = np.zeros((64, 8, 16, 16, 3), np.uint8)
    for t in range(8):
        lo = 2 + t
        if motion == "right":
            clips[:, t, 6:10, lo : lo + 4] = 255
        else:
            clips[:, t, lo : lo + 4, 6:10] = 255
    labels = np.full(64, MOTIONS.index(motion) * 2 + 1)  # fast
    out, out_labels = pretrain.augment(np.random.default_rng(0), clips, labels)
    assert len(set(out_labels)) == 2  # both directions drawn
    for clip, label in zip(out, out_labels, strict=True):
        first, last = (np.nonzero(clip[t, ..., 0]) for t in (0, -1))  # (rows, columns)
        dy, dx = (last[i].mean() - first[i].mean() for i in (0, 1))
        seen = {(1, 0): "right", (-1, 0): "left", (0, 1): "down", (0, -1): "up"}[
            (int(np.sign(dx)), int(np.sign(dy)))
        ]
        assert label == MOTIONS.index(seen) * 2 + 1, (seen, label)
