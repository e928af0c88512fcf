"""MSVD (YouTube2Text) in the widely used list + pickle release.

Layout (files at the root or under msvd_data/):
  train_list.txt, val_list.txt, test_list.txt   one video id per line ("-4wsuPCjDBc_5_15")
  raw-captions.pkl     {video_id: [["a", "man", "is", "singing"], ...]} (token lists or strings)
  YouTubeClips/<video_id>.avi   (also accepted: videos/, the root)

Every caption of a video is kept (test: every caption is a query). The pickle is read with
a loader that accepts plain containers and strings only, so it cannot run code.
"""

from __future__ import annotations

from pathlib import Path

from jepa_pipe.datasets import register_dataset
from jepa_pipe.datasets.files import (
    MediaLocator,
    find_file,
    read_lines,
    read_plain_pickle,
)
from jepa_pipe.datasets.manifest import ClipRecord, ManifestError, SplitRecords

ANN_DIRS = (".", "msvd_data")
VIDEO_DIRS = ("YouTubeClips", "videos", ".")


def load_captions(root: Path) -> tuple[dict[str, list[str]], Path]:
    path = find_file(root, [f"{d}/raw-captions.pkl" for d in ANN_DIRS], what="MSVD raw-captions")
    raw = read_plain_pickle(path)
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a dict of video id -> captions")
    captions: dict[str, list[str]] = {}
    for vid, caps in raw.items():
        if not isinstance(vid, str) or not isinstance(caps, list | tuple):
            raise ManifestError(f"{path}: entry {vid!r} is not 'str -> list of captions'")
        texts = []
        for cap in caps:
            if isinstance(cap, str):
                texts.append(cap.strip())
            elif isinstance(cap, list | tuple) and all(isinstance(t, str) for t in cap):
                texts.append(" ".join(cap))
            else:
                raise ManifestError(f"{path}: caption of {vid!r} is neither a string nor tokens")
        captions[vid] = texts
    return captions, path


@register_dataset("msvd", splits=("train", "val", "test"))
def read_msvd(root: Path, split: str) -> SplitRecords:
    """MSVD (id lists + raw-captions.pkl + avi)."""
    list_path = find_file(root, [f"{d}/{split}_list.txt" for d in ANN_DIRS], what=f"MSVD {split}")
    captions, cap_path = load_captions(root)
    loc = MediaLocator(root, VIDEO_DIRS)
    out = SplitRecords([])
    for lineno, line in read_lines(list_path):
        where = f"{list_path}:{lineno}"
        if len(line.split()) != 1:
            raise ManifestError(f"{where}: expected one video id per line, got {line!r}")
        if line not in captions:
            raise ManifestError(f"{where}: unknown video {line!r} (no captions in {cap_path})")
        rel, exists = loc.find(f"{line}.avi", where=where)
        if not exists:
            out.missing.append((line, rel))
            continue
        out.records.append(ClipRecord(line, rel, split, text=captions[line]))
    return out
