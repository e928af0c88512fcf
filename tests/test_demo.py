"""The demo datasets: official formats that the readers accept, decodable media, labels that
depend on motion only, and the same bytes for the same seed."""

from __future__ import annotations

import hashlib
from collections import Counter

import decord
import numpy as np
import pytest
from PIL import Image

from jepa_pipe.datasets import build_manifest
from jepa_pipe.demo import render
from jepa_pipe.demo.datasets import DEMO_WRITERS, FRAMES, write_demo

SPLITS = {
    "ssv2": ["train", "validation", "test"],
    "ucf101": ["train", "test"],
    "msrvtt": ["train", "test"],
    "msvd": ["train", "val", "test"],
    "charades_sta": ["train", "test"],
    "coco": ["train", "val"],
}


def tree_digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_all_six_formats_are_written():
    assert set(DEMO_WRITERS) == set(SPLITS)


@pytest.mark.parametrize("dataset", sorted(SPLITS))
def test_demo_manifests_build_with_every_file_present(demo_root, dataset):
    table, report = build_manifest(dataset, demo_root / dataset, SPLITS[dataset])
    assert report.missing == 0 and table.num_rows > 0
    assert all(n > 0 for n in report.per_split.values())


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for seed, name in ((0, "a"), (0, "b"), (1, "c")):
        write_demo(tmp_path / name, seed=seed, datasets=["ucf101", "msvd", "coco"])
    a, b, c = (tree_digest(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() != c.keys() or a != c


def test_ucf101_layout_and_crlf(demo_root):
    lists = demo_root / "ucf101/ucfTrainTestlist"
    assert (lists / "classInd.txt").read_bytes().endswith(b"\r\n")
    assert b"\r\n" in (lists / "trainlist01.txt").read_bytes()
    # the case quirk of the official lists is reproduced
    assert b"SpinCounterClockwise" in (lists / "classInd.txt").read_bytes()
    assert b"SpinCounterclockwise/" in (lists / "testlist01.txt").read_bytes()


@pytest.mark.parametrize(
    "dataset,pattern",
    [
        ("ssv2", "20bn-something-something-v2/*.webm"),
        ("ucf101", "UCF-101/*/*.avi"),
        ("msrvtt", "videos/all/*.mp4"),
        ("msvd", "YouTubeClips/*.avi"),
        ("charades_sta", "Charades_v1_480/*.mp4"),
    ],
)
def test_videos_decode_with_decord(demo_root, dataset, pattern):
    path = sorted((demo_root / dataset).glob(pattern))[0]
    reader = decord.VideoReader(str(path))
    batch = reader.get_batch(list(range(0, len(reader), 4))).asnumpy()
    assert batch.dtype == np.uint8 and batch.shape[-1] == 3 and batch.shape[1] == 64
    assert len(reader) >= FRAMES and batch.std() > 5  # not blank


def test_charades_videos_hold_several_events(demo_root):
    table, _ = build_manifest("charades_sta", demo_root / "charades_sta", ["train"])
    row = table.to_pylist()[0]
    assert len(row["text"]) >= 3
    reader = decord.VideoReader(str(demo_root / "charades_sta" / row["path"]))
    duration = len(reader) / reader.get_avg_fps()
    assert duration >= 20 and max(row["text_end_s"]) <= duration


def test_coco_images_are_jpeg(demo_root):
    path = sorted((demo_root / "coco/train2017").glob("*.jpg"))[0]
    assert Image.open(path).format == "JPEG"


def test_labels_balanced_and_captions_mention_motion_only(demo_root):
    table, _ = build_manifest("ucf101", demo_root / "ucf101", ["train"])
    counts = Counter(table.column("label").to_pylist())
    assert len(counts) == 6 and len(set(counts.values())) == 1
    table, _ = build_manifest("msrvtt", demo_root / "msrvtt", ["train"])
    for caps in table.column("text").to_pylist():
        for cap in caps:
            words = set(cap.split())
            assert not words & set(render.COLORS) and not words & set(render.KINDS), cap


def test_one_frame_does_not_tell_the_direction():
    """Left- and right-moving clips have the same distribution of single-frame positions:
    the mean x of the moving shape over the clip is the same for both directions."""
    means = {}
    for motion in ("left", "right"):
        xs = []
        for i in range(400):
            s = render.moving_shape(np.random.default_rng([7, i]), motion, "slow", 32, 64, 80)
            xs.append(s.x.mean())
        means[motion] = np.mean(xs)
    assert abs(means["left"] - means["right"]) < 1.5  # pixels, on an 80-pixel-wide frame


def test_motion_is_what_the_label_says():
    rng = np.random.default_rng(0)
    for motion, axis, sign in (
        ("left", "x", -1),
        ("right", "x", 1),
        ("up", "y", -1),
        ("down", "y", 1),
    ):
        s = render.moving_shape(rng, motion, "fast", 32, 64, 80)
        track = getattr(s, axis)
        assert np.sign(track[-1] - track[0]) == sign
    cw = render.moving_shape(rng, "clockwise", "slow", 32, 64, 80)
    ccw = render.moving_shape(rng, "counterclockwise", "slow", 32, 64, 80)
    assert cw.angle[-1] > cw.angle[0] and ccw.angle[-1] < ccw.angle[0]
