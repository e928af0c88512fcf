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

__all__ = ["ClipSampling", "DecodeError", "DecodePool", "clip_indices", "decode_clip"]


def resize_center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """[T, H, W, 3] uint8 -> [T, size, size, 3] uint8: short side to `size` (bilinear,
    antialiased), then the centre square."""
    _, h, w, _ = frames.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2).float()
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[:, :, top : top + size, left : left + size]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _decord_frames(path: str, s: ClipSampling) -> tuple[np.ndarray, np.ndarray, float, int]:
    import decord

    vr = decord.VideoReader(path, num_threads=1)
    n, fps = len(vr), float(vr.get_avg_fps())
    idx = clip_indices(n, fps, s)
    frames = vr.get_batch(idx.reshape(-1).tolist()).asnumpy()
    return frames, idx, fps, n


def _pyav_frames(path: str, s: ClipSampling) -> tuple[np.ndarray, np.ndarray, float, int]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
    if not decoded:
        raise DecodeError("no video frames decoded")
    idx = clip_indices(len(decoded), fps, s)
    return np.stack([decoded[i] for i in idx.reshape(-1)]), idx, fps, len(decoded)


def decode_clip(path: str, s: ClipSampling, backend: Backend = "auto") -> dict:
    """Decode the sampled clips of one file: frames [K, T, S, S, 3] uint8, indices [K, T]."""
    if not os.path.isfile(path):
        raise DecodeError(f"file not found: {path}")
    if os.path.getsize(path) == 0:
        raise DecodeError("zero-byte file")
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return decode_image(path, s.size)
    errors = []
    for name, fn in (("decord", _decord_frames), ("pyav", _pyav_frames)):
        if backend not in ("auto", name):
            continue
        try:
            frames, idx, fps, n = fn(path, s)
            k, t = idx.shape
            out = resize_center_crop(frames, s.size).reshape(k, t, s.size, s.size, 3)
            return {"frames": out, "indices": idx, "fps": fps, "num_frames": n, "backend": name}
        except Exception as e:  # any decoder failure becomes a reason, never a crash
            errors.append(f"{name}: {type(e).__name__}: {str(e).strip()[:200]}")
    raise DecodeError("; ".join(errors) or f"no backend {backend!r}")


def decode_image(path: str, size: int) -> dict:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise DecodeError(f"image: {e}") from None
    out = resize_center_crop(rgb[None], size)[None]  # [1, 1, S, S, 3]
    return {
        "frames": out,
        "indices": np.zeros((1, 1), np.int64),
        "fps": 0.0,
        "num_frames": 1,
        "backend": "pillow",
    }


# ------------------------------------------------------------------------------ worker pool
def _worker(conn: Connection, sampling: ClipSampling, backend: Backend, decoder) -> None:
    import decord  # noqa: F401  (imported before the first deadline starts)

    torch.set_num_threads(1)
    conn.send("ready")
    while True:
        task = conn.recv()
        if task is None:
            return
        key, path = task
        try:
            conn.send((key, decoder(path, sampling, backend), None))
        except DecodeError as e:
            conn.send((key, None, str(e)))
        except Exception as e:
            conn.send((key, None, f"{type(e).__name__}: {e}"))


class DecodePool:
    """Decode files in worker processes; a worker that misses its deadline is killed and
    replaced, and its file is reported as failed. Results come back as they finish."""

    def __init__(
        self,
        sampling: ClipSampling,
        workers: int = 1,
        timeout_s: float = 60.0,
        backend: Backend = "auto",
        decoder=decode_clip,
    ):
        # `decoder` must be a module-level function (it is sent to the workers by name)
        self.sampling, self.backend, self.timeout_s = sampling, backend, timeout_s
        self.decoder = decoder
        self.ctx = mp.get_context("forkserver")
        # workers fork from a server that has already imported the decoders: a replacement
        # for a killed worker starts in milliseconds
        self.ctx.set_forkserver_preload(["jepa_pipe.video"])
        self.workers = [self._start() for _ in range(max(1, workers))]

    STARTUP_TIMEOUT_S = 300.0

    def _start(self):
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
        return [proc, parent, None, 0.0]  # process, pipe, current task, deadline

    def imap_unordered(self, tasks: Iterable[tuple[object, str]]) -> Iterator[tuple]:
        """Yield (key, result | None, error | None) for every (key, path)."""
        pending = iter(tasks)
        busy = 0
        exhausted = False
        while True:
            for w in self.workers:
                if w[2] is None and not exhausted:
                    task = next(pending, None)
                    if task is None:
                        exhausted = True
                        break
                    w[1].send(task)
                    w[2], w[3] = task, time.monotonic() + self.timeout_s
                    busy += 1
            if busy == 0:
                return
            now = time.monotonic()
            soonest = min(w[3] for w in self.workers if w[2] is not None)
            ready = wait(
                [w[1] for w in self.workers if w[2] is not None], timeout=max(0.0, soonest - now)
            )
            for w in self.workers:
                if w[2] is None:
                    continue
                if w[1] in ready:
                    try:
                        key, result, error = w[1].recv()
                    except (EOFError, OSError):  # the worker died (e.g. a decoder crash)
                        key, result = w[2][0], None
                        error = f"decoder process died (exit code {w[0].exitcode})"
                        self._replace(w)
                    w[2] = None
                    busy -= 1
                    yield key, result, error
                elif time.monotonic() >= w[3]:
                    key = w[2][0]
                    self._replace(w)
                    busy -= 1
                    yield key, None, f"decode timed out after {self.timeout_s:g} s"

    def _replace(self, w) -> None:
        w[0].kill()
        w[0].join()
        w[1].close()
        w[0], w[1], w[2], w[3] = self._start()

    def close(self) -> None:
        for w in self.workers:
            with contextlib.suppress(OSError):
                w[1].send(None)
            w[0].join(timeout=5)
            if w[0].is_alive():
                w[0].kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
