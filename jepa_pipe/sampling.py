"""Which frames a clip holds: a pure, numpy-only function of the video's length and rate,
so frame indices are deterministic and can be recorded per clip."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


class DecodeError(Exception):
    """A file that cannot be decoded: becomes an invalid row with this message as reason."""


@dataclass(frozen=True)
class ClipSampling:
    """Which frames a clip holds. Exactly one of frame_step / fps / duration sets the spacing."""

    frames_per_clip: int = 16
    frame_step: int | None = 4
    fps: float | None = None
    duration: float | None = None
    num_clips: int = 1
    size: int = 224
    # spatial views of every clip: (crop, flip); crop is "center", or "start" / "end" along
    # the long side (left / right of a landscape frame, top / bottom of a portrait one)
    views: tuple[tuple[str, bool], ...] = (("center", False),)

    def __post_init__(self):
        given = [k for k in ("frame_step", "fps", "duration") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of frame_step, fps, duration (got {given})")

    @property
    def num_views(self) -> int:
        """Views per row: every temporal clip in every spatial view, clip-major."""
        return self.num_clips * len(self.views)

    def view(self, v: int) -> dict:
        crop, flip = self.views[v % len(self.views)]
        return {"view": v, "clip": v // len(self.views), "crop": crop, "flip": flip}

    @classmethod
    def from_config(cls, decode: dict) -> ClipSampling:
        keys = ("frames_per_clip", "frame_step", "fps", "duration", "num_clips", "size")
        kw = {k: decode[k] for k in keys if k in decode}
        if "views" in decode:
            kw["views"] = tuple(
                (v.get("crop", "center"), bool(v.get("flip", False))) for v in decode["views"]
            )
        if not any(k in kw for k in ("frame_step", "fps", "duration")):
            kw["frame_step"] = 4
        else:
            kw.setdefault("frame_step", None)
        return cls(**kw)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["views"] = [{"crop": c, "flip": f} for c, f in self.views]
        return d


def clip_indices(
    num_frames: int,
    video_fps: float,
    s: ClipSampling,
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """Frame indices [num_clips, frames_per_clip], a pure function of its arguments.

    Clips are spread evenly over the video (one clip: centred), or over ``window`` (start,
    end in seconds: a trimmed clip or a segment) when given. A clip longer than the video (or
    window) repeats its last frame, as the VideoMAE and V-JEPA loaders do.
    """
    if num_frames < 1:
        raise DecodeError("video has no frames")
    if window is not None:
        rate = max(video_fps, 1e-6)
        first = min(max(int(np.floor(window[0] * rate + 1e-6)), 0), num_frames - 1)
        last = max(min(int(np.ceil(window[1] * rate - 1e-6)), num_frames), first + 1)
        return first + clip_indices(last - first, video_fps, s)
    if s.frame_step is not None:
        step = float(s.frame_step)
    elif s.fps is not None:
        step = max(video_fps, 1e-6) / s.fps
    else:
        step = s.duration * max(video_fps, 1e-6) / s.frames_per_clip
    span = step * (s.frames_per_clip - 1) + 1
    free = max(num_frames - span, 0.0)
    starts = [free * (k + 0.5) / s.num_clips for k in range(s.num_clips)]
    offsets = np.arange(s.frames_per_clip) * step
    idx = np.floor(np.asarray(starts)[:, None] + offsets[None, :] + 0.5).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)
