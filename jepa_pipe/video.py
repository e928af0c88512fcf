"""Decoding: deterministic clip sampling, short-side resize + centre crop, decord with a PyAV
fallback, and a pool of worker processes that are killed when a decode hangs.

decord (0.6.0, unmaintained) can hang inside ``get_batch`` holding the GIL, so every decode
runs in a worker process with a per-clip deadline; readers are opened inside the worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Literal

import av  # before decord: decord's bundled FFmpeg breaks PyAV's encoders otherwise
import numpy as np
import torch
import torch.nn.functional as F

from jepa_pipe.sampling import ClipSampling, DecodeError, clip_indices

Backend = Literal["auto", "decord", "pyav"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

__all__ = [
    "ClipSampling",
    "DecodeError",
    "DecodePool",
    "clip_indices",
    "decode_clip",
    "probe_video",
]


def resize_short_side(frames: np.ndarray, size: int) -> np.ndarray:
    """[T, H, W, 3] uint8 -> short side at `size` (bilinear, antialiased), aspect kept. Stays
    in uint8 (PyTorch's channels-last uint8 kernel): a float round trip cost more than
    decoding on small clips."""
    _, h, w, _ = frames.shape
    nh, nw = scaled_hw(h, w, size)
    if (nh, nw) == (h, w):
        return frames
    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    return x.permute(0, 2, 3, 1).numpy()  # uint8 in, uint8 out


def crop_box(h: int, w: int, size: int, crop: str) -> tuple[int, int]:
    """(top, left) of a size x size crop: centred, or at the start / end of the long side."""
    top, left = (h - size) // 2, (w - size) // 2
    if crop == "center":
        return top, left
    if crop not in ("start", "end"):
        raise ValueError(f"unknown crop {crop!r}; expected center, start or end")
    if w >= h:
        return top, 0 if crop == "start" else w - size
    return (0 if crop == "start" else h - size), left


def crop_view(frames: np.ndarray, size: int, crop: str, flip: bool) -> tuple[np.ndarray, list]:
    """A view of resized frames [T, H, W, 3]: ([T, size, size, 3], [top, left, H, W])."""
    _, h, w, _ = frames.shape
    top, left = crop_box(h, w, size, crop)
    out = frames[:, top : top + size, left : left + size]
    if flip:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out), [top, left, h, w]


def resize_center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """[T, H, W, 3] uint8 -> [T, size, size, 3] uint8: short side to `size`, centre square."""
    return crop_view(resize_short_side(frames, size), size, "center", False)[0]


def _views(resized: np.ndarray, idx: np.ndarray, s: ClipSampling) -> dict:
    """Every clip in every spatial view, clip-major: frames [V, T, S, S, 3], indices [V, T],
    boxes [V, 4] (top, left, resized height, resized width)."""
    frames, indices, boxes = [], [], []
    for k in range(len(resized)):
        for crop, flip in s.views:
            view, box = crop_view(resized[k], s.size, crop, flip)
            frames.append(view)
            indices.append(idx[k])
            boxes.append(box)
    return {
        "frames": np.stack(frames),
        "indices": np.stack(indices),
        "boxes": np.asarray(boxes, np.int64),
    }


def scaled_hw(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) with the short side at `size`, aspect kept."""
    scale = size / min(h, w)
    return max(size, round(h * scale)), max(size, round(w * scale))


Window = tuple[float, float] | None  # (start, end) seconds of a trimmed clip or segment


def _decord_frames(
    path: str, s: ClipSampling, windows: list[Window]
) -> tuple[list[np.ndarray], list[np.ndarray], float, int]:
    import decord

    # Full-size decode, then resize here: decord's own width/height scaling was measured
    # faster but breaks when readers of different sizes share a process (size-mismatch
    # check failure) and differs from the PyAV path by up to 21 levels.
    vr = decord.VideoReader(path, num_threads=1)
    n, fps = len(vr), float(vr.get_avg_fps())
    idx = [clip_indices(n, fps, s, w) for w in windows]
    # one read of every frame any window samples (overlapping segments share frames)
    wanted = np.unique(np.concatenate([i.reshape(-1) for i in idx]))
    frames = vr.get_batch(wanted.tolist()).asnumpy()
    return [frames[np.searchsorted(wanted, i.reshape(-1))] for i in idx], idx, fps, n


def _pyav_frames(
    path: str, s: ClipSampling, windows: list[Window]
) -> tuple[list[np.ndarray], list[np.ndarray], float, int]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        # the frame count is known only after decoding; keep the decoded (YUV) frames and
        # convert to RGB only those the sampler picks
        decoded = list(container.decode(stream))
        fps = float(stream.average_rate or stream.guessed_rate or 25)
    if not decoded:
        raise DecodeError("no video frames decoded")
    idx = [clip_indices(len(decoded), fps, s, w) for w in windows]
    wanted = np.unique(np.concatenate([i.reshape(-1) for i in idx]))
    picked = {i: decoded[i].to_ndarray(format="rgb24") for i in wanted.tolist()}
    frames = [np.stack([picked[i] for i in ix.reshape(-1).tolist()]) for ix in idx]
    return frames, idx, fps, len(decoded)


def decode_clip(
    path: str, s: ClipSampling, backend: Backend = "auto", window: Window = None
) -> dict:
    """Decode the sampled views of one file (of its ``window`` in seconds, when given):
    frames [V, T, S, S, 3] uint8, indices [V, T], crop boxes [V, 4]; V = num_clips x spatial
    views (clip-major)."""
    return decode_clips(path, s, [window], backend)[0]


def decode_clips(
    path: str, s: ClipSampling, windows: list[Window], backend: Backend = "auto"
) -> list[dict]:
    """``decode_clip`` for several windows of one file, opened and decoded once (each frame
    that any window samples is read once): one result per window, equal to decode_clip's."""
    if not os.path.isfile(path):
        raise DecodeError(f"file not found: {path}")
    if os.path.getsize(path) == 0:
        raise DecodeError("zero-byte file")
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return [decode_image(path, s) for _ in windows]
    errors = []
    for name, fn in (("decord", _decord_frames), ("pyav", _pyav_frames)):
        if backend not in ("auto", name):
            continue
        try:
            frames, idx, fps, n = fn(path, s, windows)
            out = []
            for clip, ix in zip(frames, idx, strict=True):
                resized = resize_short_side(clip, s.size)  # [K*T, H', W', 3]
                resized = resized.reshape(*ix.shape, *resized.shape[1:])  # [K, T, H', W', 3]
                out.append({**_views(resized, ix, s), "fps": fps, "num_frames": n, "backend": name})
            return out
        except Exception as e:  # any decoder failure becomes a reason, never a crash
            errors.append(f"{name}: {type(e).__name__}: {str(e).strip()[:200]}")
    raise DecodeError("; ".join(errors) or f"no backend {backend!r}")


def probe_video(path: str, s: ClipSampling | None = None, backend: Backend = "auto") -> dict:
    """Frame count, rate and duration of a video without decoding its pixels where the
    container knows them (a DecodePool decoder: ``s`` is unused)."""
    if not os.path.isfile(path):
        raise DecodeError(f"file not found: {path}")
    if os.path.getsize(path) == 0:
        raise DecodeError("zero-byte file")
    errors = []
    if backend in ("auto", "decord"):
        try:
            import decord

            vr = decord.VideoReader(path, num_threads=1)
            n, fps = len(vr), float(vr.get_avg_fps())
            if n > 0 and fps > 0:
                return {"num_frames": n, "fps": fps, "duration_s": n / fps}
            errors.append(f"decord: {n} frames at {fps} fps")
        except Exception as e:
            errors.append(f"decord: {type(e).__name__}: {str(e).strip()[:200]}")
    if backend in ("auto", "pyav"):
        try:
            with av.open(path) as container:
                stream = container.streams.video[0]
                fps = float(stream.average_rate or stream.guessed_rate or 25)
                n = stream.frames or sum(1 for _ in container.decode(stream))
            if n > 0:
                return {"num_frames": int(n), "fps": fps, "duration_s": n / fps}
            errors.append("pyav: no video frames")
        except Exception as e:
            errors.append(f"pyav: {type(e).__name__}: {str(e).strip()[:200]}")
    raise DecodeError("; ".join(errors) or f"no backend {backend!r}")


def decode_image(path: str, s: ClipSampling) -> dict:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise DecodeError(f"image: {e}") from None
    resized = resize_short_side(rgb[None], s.size)[None]  # [1, 1, H', W', 3]
    views = _views(resized, np.zeros((1, 1), np.int64), s)
    return {**views, "fps": 0.0, "num_frames": 1, "backend": "pillow"}


# ------------------------------------------------------------------------------ worker pool
def _worker(conn: Connection, sampling: ClipSampling, backend: Backend, decoder) -> None:
    import decord  # noqa: F401  (imported before the first deadline starts)

    torch.set_num_threads(1)
    conn.send("ready")
    while True:
        task = conn.recv()
        if task is None:
            return
        key, path, *window = task  # (key, path) or (key, path, (start_s, end_s))
        try:
            result = decoder(path, sampling, backend, *window)
            conn.send((key, result, None))
        except DecodeError as e:
            conn.send((key, None, str(e)))
        except Exception as e:
            conn.send((key, None, f"{type(e).__name__}: {e}"))


class DecodePool:
    """Decode files in worker processes; a worker that misses its deadline is killed and
    replaced, and its file is reported as failed. Results come back as they finish.

    Each worker holds up to ``depth`` tasks, so it never idles waiting for the parent
    (whose feeding thread competes for the GIL with teacher inference). The deadline
    applies to the task at the head of a worker's queue, from when it started.
    """

    STARTUP_TIMEOUT_S = 300.0

    def __init__(
        self,
        sampling: ClipSampling,
        workers: int = 1,
        timeout_s: float = 60.0,
        backend: Backend = "auto",
        decoder=decode_clip,
        depth: int = 2,
    ):
        # `decoder` must be a module-level function (it is sent to the workers by name)
        self.sampling, self.backend, self.timeout_s = sampling, backend, timeout_s
        self.decoder, self.depth = decoder, depth
        self.ctx = mp.get_context("forkserver")
        # workers fork from a server that has already imported the decoders: a replacement
        # for a killed worker starts in milliseconds
        self.ctx.set_forkserver_preload(["jepa_pipe.video"])
        self.workers = [self._start() for _ in range(max(1, workers))]

    def _start(self) -> dict:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=_worker, daemon=True, args=(child, self.sampling, self.backend, self.decoder)
        )
        proc.start()
        child.close()
        # a deadline counts decoding only, not the worker's imports
        if not parent.poll(self.STARTUP_TIMEOUT_S) or parent.recv() != "ready":
            proc.kill()
            raise RuntimeError("a decode worker did not start")
        return {"proc": proc, "conn": parent, "tasks": [], "deadline": 0.0}

    def imap_unordered(self, tasks: Iterable[tuple[object, str]]) -> Iterator[tuple]:
        """Yield (key, result | None, error | None) for every (key, path) or
        (key, path, window)."""
        source = iter(tasks)
        retry: list[tuple[object, str]] = []  # queued behind a task whose worker was killed
        while True:
            for w in self.workers:
                while len(w["tasks"]) < self.depth:
                    task = retry.pop(0) if retry else next(source, None)
                    if task is None:
                        break
                    if not w["tasks"]:
                        w["deadline"] = time.monotonic() + self.timeout_s
                    w["conn"].send(task)
                    w["tasks"].append(task)
            busy = [w for w in self.workers if w["tasks"]]
            if not busy:
                return
            soonest = min(w["deadline"] for w in busy)
            ready = wait([w["conn"] for w in busy], timeout=max(0.0, soonest - time.monotonic()))
            for w in busy:
                if w["conn"] in ready:
                    try:
                        key, result, error = w["conn"].recv()
                    except (EOFError, OSError):  # the worker died (e.g. a decoder crash)
                        key, result = w["tasks"][0][0], None
                        error = f"decoder process died (exit code {w['proc'].exitcode})"
                        retry += self._replace(w)
                    else:
                        w["tasks"].pop(0)
                        w["deadline"] = time.monotonic() + self.timeout_s
                    yield key, result, error
                elif time.monotonic() >= w["deadline"]:
                    key = w["tasks"][0][0]
                    retry += self._replace(w)
                    yield key, None, f"decode timed out after {self.timeout_s:g} s"

    def _replace(self, w: dict) -> list[tuple[object, str]]:
        """Kill and restart a worker; return the tasks it held behind its head task."""
        w["proc"].kill()
        w["proc"].join()
        w["conn"].close()
        queued = w["tasks"][1:]
        w.update(self._start())
        return queued

    def close(self) -> None:
        for w in self.workers:
            with contextlib.suppress(OSError):
                w["conn"].send(None)
            w["proc"].join(timeout=5)
            if w["proc"].is_alive():
                w["proc"].kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
