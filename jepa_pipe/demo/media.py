"""Encoding demo media in the codecs the real datasets ship with (PyAV / Pillow)."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

from jepa_pipe import JepaPipeError

# decord bundles its own FFmpeg; once it is loaded first, PyAV's libvpx-vp9 encoder fails to
# open (EINVAL). Importing PyAV before decord avoids the clash.
if "decord" in sys.modules and "av" not in sys.modules:
    raise JepaPipeError(
        "jepa_pipe.demo.media must be imported before decord (decord's bundled FFmpeg breaks "
        "PyAV's VP9 encoder); import av or jepa_pipe.demo.media first"
    )
import av
import numpy as np
from PIL import Image

# extension -> (encoder, codec tag, encoder options). SSv2 ships VP9 webm, UCF-101 and MSVD
# XviD avi, MSR-VTT and Charades H.264 mp4.
CODECS: dict[str, tuple[str, str | None, dict[str, str]]] = {
    ".webm": (
        "libvpx-vp9",
        None,
        {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "0"},
    ),
    # x264 starts its own threads whatever the codec context's thread_count says; under load
    # they made 15-23 of 90 demo files differ between runs. One thread = the same bytes.
    ".mp4": (
        "libx264",
        None,
        {
            "preset": "veryfast",
            "crf": "23",
            "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0",
        },
    ),
    ".avi": ("mpeg4", "XVID", {"qscale": "3"}),
}


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """frames [T, H, W, 3] uint8 (H, W even). Single-threaded and bit-exact so a seed gives the
    same bytes on every run."""
    codec, tag, options = CODECS[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    _, h, w, _ = frames.shape
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        if tag:
            stream.codec_tag = tag
        stream.options = {**options, "flags": "+bitexact"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=90)
