"""Charades-STA moment annotations over Charades videos.

Layout:
  charades_sta_train.txt, charades_sta_test.txt (root, annotations/ or Charades/)
      "3MSZA 24.3 30.4##person turn a light on."
  Charades_v1_480/<video_id>.mp4   (also accepted: Charades_v1/, videos/, the root)

One row per video (the video is decoded and cached once); its queries are ``text`` in file
order, with their moments in ``text_start_s`` / ``text_end_s``.
"""

from __future__ import annotations

from pathlib import Path

from jepa_pipe.datasets import register_dataset
from jepa_pipe.datasets.files import MediaLocator, find_file, read_lines
from jepa_pipe.datasets.manifest import ClipRecord, ManifestError, SplitRecords

ANN_DIRS = (".", "annotations", "Charades")
VIDEO_DIRS = ("Charades_v1_480", "Charades_v1", "videos", ".")


def parse_line(line: str, where: str) -> tuple[str, float, float, str]:
    head, sep, sentence = line.partition("##")
    parts = head.split()
    if not sep or len(parts) != 3 or not sentence.strip():
        raise ManifestError(f"{where}: expected '<video> <start> <end>##<sentence>', got {line!r}")
    try:
        start, end = float(parts[1]), float(parts[2])
    except ValueError:
        raise ManifestError(f"{where}: start/end are not numbers in {line!r}") from None
    if not (0 <= start < end):
        raise ManifestError(f"{where}: moment [{start}, {end}] is not 0 <= start < end")
    return parts[0], start, end, sentence.strip()


@register_dataset("charades_sta", splits=("train", "test"))
def read_charades_sta(root: Path, split: str) -> SplitRecords:
    """Charades-STA (sta txt + mp4)."""
    ann = find_file(
        root, [f"{d}/charades_sta_{split}.txt" for d in ANN_DIRS], what=f"Charades-STA {split}"
    )
    by_video: dict[str, ClipRecord] = {}
    for lineno, line in read_lines(ann):
        vid, start, end, sentence = parse_line(line, f"{ann}:{lineno}")
        rec = by_video.get(vid)
        if rec is None:
            rec = by_video[vid] = ClipRecord(vid, "", split, text_start_s=[], text_end_s=[])
        rec.text.append(sentence)
        rec.text_start_s.append(start)
        rec.text_end_s.append(end)
    loc = MediaLocator(root, VIDEO_DIRS)
    out = SplitRecords([])
    for vid, rec in by_video.items():
        rel, exists = loc.find(f"{vid}.mp4", where=f"{ann} (video {vid})")
        if not exists:
            out.missing.append((vid, rel))
            continue
        rec.path = rel
        out.records.append(rec)
    return out
