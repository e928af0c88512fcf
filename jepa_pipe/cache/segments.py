"""Segment tables: a segmented dataset (Charades-STA) caches every video as fixed-length
clips at a fixed stride over its whole length, one cache row per segment.

  manifests/{dataset}.segments.parquet   manifest columns (clip_id "<video>@<start>", path,
                                          split, start_s, end_s, row) + video_row, duration_s

The frames and teacher stores of the dataset share this table's row order (the cache pass
samples each row inside its [start_s, end_s]); text stores keep the video manifest's rows.
A video whose length cannot be read still gets one segment, which then fails to decode and
becomes an invalid row with its reason, like any other bad file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jepa_pipe import JepaPipeError, get_logger
from jepa_pipe.datasets.manifest import (
    MANIFEST_SCHEMA,
    METADATA_KEY,
    manifest_metadata,
    read_manifest,
    write_manifest,
)

log = get_logger("segments")

SEGMENTS_SCHEMA = MANIFEST_SCHEMA.append(pa.field("video_row", pa.int64(), nullable=False))
SEGMENTS_SCHEMA = SEGMENTS_SCHEMA.append(pa.field("duration_s", pa.float64()))


def segments_path(manifests_root: str | os.PathLike, dataset: str) -> Path:
    return Path(manifests_root) / f"{dataset}.segments.parquet"


def segment_starts(duration_s: float, length_s: float, stride_s: float) -> np.ndarray:
    """Start times (s) of the segments covering a video: every multiple of the stride whose
    segment fits, plus one ending at the video's end when the stride leaves a tail; a video
    shorter than one segment gets a single segment at 0."""
    if length_s <= 0 or stride_s <= 0:
        raise ValueError(f"segment length {length_s} and stride {stride_s} must be > 0")
    if duration_s <= length_s:
        return np.zeros(1)
    last = duration_s - length_s
    starts = np.arange(0.0, last + 1e-9, stride_s)
    if last - starts[-1] > 1e-6:  # cover the tail too
        starts = np.append(starts, last)
    return np.round(starts, 6)


def segment_settings(cfg: dict, dataset: str) -> tuple[float, float]:
    """A segmented dataset's (segment length, stride) in seconds from its decode settings."""
    decode = cfg["datasets"][dataset].get("decode", {})
    if "segment_seconds" not in decode:
        raise JepaPipeError(f"datasets.{dataset}.decode has no segment_seconds: not segmented")
    length = decode["segment_seconds"]
    return length, decode.get("segment_stride", length)


def video_windows(
    duration_s: float, length_s: float, stride_s: float
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A video's segment starts and their (start, end) windows, as the segment table cuts."""
    starts = segment_starts(duration_s, length_s, stride_s)
    return starts, [(float(s), float(s) + length_s) for s in starts]


def segment_table(
    videos: pa.Table, durations: list[float | None], length_s: float, stride_s: float
) -> pa.Table:
    """The segments of every video of a manifest (video row order, then time)."""
    cols = {name: [] for name in SEGMENTS_SCHEMA.names}
    rows = zip(
        videos.column("row").to_pylist(),
        videos.column("clip_id").to_pylist(),
        videos.column("path").to_pylist(),
        videos.column("split").to_pylist(),
        durations,
        strict=True,
    )
    for video_row, clip_id, path, split, duration in rows:
        starts = segment_starts(duration or 0.0, length_s, stride_s)
        for start in starts:
            cols["clip_id"].append(f"{clip_id}@{start:010.3f}")  # sorts as (video, time)
            cols["path"].append(path)
            cols["split"].append(split)
            cols["label"].append(None)
            cols["label_id"].append(-1)
            cols["start_s"].append(float(start))
            cols["end_s"].append(float(start) + length_s)
            cols["text"].append([])
            cols["text_start_s"].append(None)
            cols["text_end_s"].append(None)
            cols["row"].append(len(cols["row"]))
            cols["video_row"].append(video_row)
            cols["duration_s"].append(duration)
    return pa.Table.from_pydict(cols, schema=SEGMENTS_SCHEMA)


def build_segments(plan, length_s: float, stride_s: float) -> dict:
    """Probe every video's length (killable worker processes), write the segment table."""
    from jepa_pipe.cache.store import file_sha256
    from jepa_pipe.video import DecodePool, probe_video

    videos = read_manifest(plan.manifest)
    paths = [str(plan.root / p) for p in videos.column("path").to_pylist()]
    durations: list[float | None] = [None] * len(paths)
    failures = {}
    with DecodePool(plan.sampling, plan.workers, plan.timeout_s, decoder=probe_video) as pool:
        for row, result, error in pool.imap_unordered(enumerate(paths)):
            if result is None:
                failures[videos.column("clip_id")[row].as_py()] = error
            else:
                durations[row] = result["duration_s"]
    table = segment_table(videos, durations, length_s, stride_s)
    meta = {
        **manifest_metadata(videos),
        "segments": {
            "length_s": length_s,
            "stride_s": stride_s,
            "videos_manifest_sha256": file_sha256(plan.manifest),
            "unreadable_videos": failures,
        },
    }
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True)})
    write_manifest(table, plan.segments)
    for clip_id, reason in failures.items():
        log.warning("%s: %s: length unknown (%s); one segment kept", plan.dataset, clip_id, reason)
    return {
        "dataset": plan.dataset,
        "videos": videos.num_rows,
        "segments": table.num_rows,
        "unreadable_videos": len(failures),
        "out": str(plan.segments),
    }


def read_segments(path: str | os.PathLike) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise JepaPipeError(
            f"segment table {path} does not exist (run `python -m jepa_pipe segments`)"
        )
    table = pq.read_table(path)
    missing = [c for c in SEGMENTS_SCHEMA.names if c not in table.column_names]
    if missing:
        raise JepaPipeError(f"segment table {path} lacks columns {missing}")
    return table


def video_segments(table: pa.Table) -> dict[int, np.ndarray]:
    """video_row -> the cache rows of its segments, in time order."""
    video_row = table.column("video_row").to_numpy()
    order = np.argsort(video_row, kind="stable")
    cuts = np.flatnonzero(np.diff(video_row[order])) + 1
    return {int(video_row[g[0]]): g for g in np.split(order, cuts) if len(g)}


def covering(starts: np.ndarray, length_s: float, window: tuple[float, float]) -> np.ndarray:
    """Indices of the segments whose centre lies in `window` (at least the nearest one), the
    segments a predictor reads for that window."""
    centres = starts + length_s / 2
    inside = np.flatnonzero((centres >= window[0] - 1e-6) & (centres <= window[1] + 1e-6))
    if len(inside) == 0:
        inside = np.array([int(np.argmin(np.abs(centres - (window[0] + window[1]) / 2)))])
    return inside


def max_segments(window_s: float, stride_s: float) -> int:
    """The most segment centres a window of `window_s` seconds can hold."""
    return math.floor(window_s / stride_s + 1e-6) + 1
