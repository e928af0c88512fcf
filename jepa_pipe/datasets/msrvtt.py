"""MSR-VTT with the 1k-A split (JSFusion test set, 9k training videos).

Layout (files at the root or under msrvtt_data/):
  MSRVTT_data.json            {"videos": [{"video_id": "video0", ...}],
                               "sentences": [{"video_id": "video0", "caption": ..., "sen_id": 0}]}
  MSRVTT_train.9k.csv         column video_id
  MSRVTT_JSFUSION_test.csv    columns key, vid_key, video_id, sentence (one query per video)
  videos/all/<video_id>.mp4   (also accepted: MSRVTT_Videos/, videos/, TrainValVideo/,
                               TestVideo/, the root)

``train``: every caption of the 9k videos; ``test``: the JSFusion query of each 1k-A video.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from jepa_pipe.datasets import register_dataset
from jepa_pipe.datasets.files import MediaLocator, find_file, read_json
from jepa_pipe.datasets.manifest import ClipRecord, ManifestError, SplitRecords

ANN_DIRS = (".", "msrvtt_data", "annotation")
VIDEO_DIRS = ("videos/all", "MSRVTT_Videos", "videos", "TrainValVideo", "TestVideo", ".")
CSV_BY_SPLIT = {"train": "MSRVTT_train.9k.csv", "test": "MSRVTT_JSFUSION_test.csv"}
COLUMNS_BY_SPLIT = {"train": ("video_id",), "test": ("video_id", "sentence")}


def _find(root: Path, name: str) -> Path:
    return find_file(root, [f"{d}/{name}" for d in ANN_DIRS], what=f"MSR-VTT {name}")


def load_captions(root: Path) -> tuple[dict[str, list[str]], Path]:
    path = _find(root, "MSRVTT_data.json")
    data = read_json(path)
    if not isinstance(data, dict) or "videos" not in data or "sentences" not in data:
        raise ManifestError(f"{path}: expected an object with 'videos' and 'sentences'")
    captions: dict[str, list[tuple[int, str]]] = defaultdict(list)
    known = set()
    for i, v in enumerate(data["videos"]):
        if not isinstance(v, dict) or "video_id" not in v:
            raise ManifestError(f"{path}: videos[{i}] has no 'video_id'")
        known.add(str(v["video_id"]))
    for i, s in enumerate(data["sentences"]):
        if not isinstance(s, dict) or "video_id" not in s or "caption" not in s:
            raise ManifestError(f"{path}: sentences[{i}] needs 'video_id' and 'caption'")
        vid = str(s["video_id"])
        if vid not in known:
            raise ManifestError(f"{path}: sentences[{i}] names unknown video {vid!r}")
        captions[vid].append((int(s.get("sen_id", i)), str(s["caption"]).strip()))
    ordered = {vid: [c for _, c in sorted(captions.get(vid, []))] for vid in known}
    return ordered, path


def read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; header is {header}")
        rows = []
        for row in reader:
            if any(row.get(c) in (None, "") for c in required):
                raise ManifestError(f"{path}:{reader.line_num}: empty or missing {list(required)}")
            rows.append((reader.line_num, row))
    return rows


@register_dataset("msrvtt", splits=("train", "test"))
def read_msrvtt(root: Path, split: str) -> SplitRecords:
    """MSR-VTT 1k-A (data json + 9k train csv + JSFusion test csv + mp4)."""
    csv_path = _find(root, CSV_BY_SPLIT[split])
    rows = read_csv(csv_path, COLUMNS_BY_SPLIT[split])
    captions, data_path = load_captions(root) if split == "train" else ({}, None)
    loc = MediaLocator(root, VIDEO_DIRS)
    out = SplitRecords([])
    for lineno, row in rows:
        where = f"{csv_path}:{lineno}"
        vid = row["video_id"].strip()
        if split == "train":
            if vid not in captions:
                raise ManifestError(f"{where}: unknown video {vid!r} (not in {data_path})")
            text = captions[vid]
        else:
            text = [row["sentence"].strip()]
        rel, exists = loc.find(f"{vid}.mp4", where=where)
        if not exists:
            out.missing.append((vid, rel))
            continue
        out.records.append(ClipRecord(vid, rel, split, text=text))
    return out
