"""MS COCO captions (2014 or 2017 release).

Layout:
  annotations/captions_{split}.json   {"images": [{"id", "file_name"}],
                                       "annotations": [{"image_id", "caption"}]}
  annotations/instances_{split}.json  optional: gives each image a label, the category of its
                                      largest object (categories ordered by COCO id)
  {split}/<file_name>.jpg             (also accepted: images/{split}/, images/, the root)

Splits: ``train2017``, ``val2017``, ``train2014``, ``val2014``; ``train`` / ``val`` mean 2017.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from jepa_pipe.datasets import register_dataset
from jepa_pipe.datasets.files import MediaLocator, find_file, read_json
from jepa_pipe.datasets.manifest import ClipRecord, ManifestError, SplitRecords

SPLITS = ("train", "val", "train2017", "val2017", "train2014", "val2014")


def _release(split: str) -> str:
    return f"{split}2017" if split in ("train", "val") else split


def load_labels(path: Path) -> tuple[dict[int, str], list[str]]:
    data = read_json(path)
    if not isinstance(data, dict) or "categories" not in data or "annotations" not in data:
        raise ManifestError(f"{path}: expected an object with 'categories' and 'annotations'")
    cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
    names = dict(cats)
    best: dict[int, tuple[float, int]] = {}
    for i, a in enumerate(data["annotations"]):
        cid = int(a.get("category_id", -1))
        if cid not in names:
            raise ManifestError(f"{path}: annotations[{i}] has unknown category_id {cid}")
        img, area = int(a["image_id"]), float(a.get("area", 0.0))
        if img not in best or area > best[img][0]:
            best[img] = (area, cid)
    return {img: names[cid] for img, (_, cid) in best.items()}, [n for _, n in cats]


@register_dataset("coco", splits=SPLITS)
def read_coco(root: Path, split: str) -> SplitRecords:
    """MS COCO captions (captions json, optional instances json, jpg)."""
    release = _release(split)
    cap_path = find_file(
        root, [f"annotations/captions_{release}.json"], what=f"COCO captions_{release}.json"
    )
    data = read_json(cap_path)
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ManifestError(f"{cap_path}: expected an object with 'images' and 'annotations'")
    images: dict[int, str] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise ManifestError(f"{cap_path}: images[{i}] needs 'id' and 'file_name'")
        images[int(im["id"])] = str(im["file_name"])
    captions: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict) or "image_id" not in a or "caption" not in a:
            raise ManifestError(f"{cap_path}: annotations[{i}] needs 'image_id' and 'caption'")
        img = int(a["image_id"])
        if img not in images:
            raise ManifestError(f"{cap_path}: annotations[{i}] names unknown image_id {img}")
        captions[img].append((int(a.get("id", i)), str(a["caption"]).strip()))
    inst = root / "annotations" / f"instances_{release}.json"
    labels, classes = load_labels(inst) if inst.is_file() else ({}, None)
    index = {c: i for i, c in enumerate(classes or [])}
    loc = MediaLocator(root, (release, f"images/{release}", "images", "."))
    out = SplitRecords([], classes)
    for img, fname in images.items():
        clip_id = Path(fname).stem
        rel, exists = loc.find(fname, where=f"{cap_path} (image {img})")
        if not exists:
            out.missing.append((clip_id, rel))
            continue
        label = labels.get(img)
        text = [c for _, c in sorted(captions.get(img, []))]
        out.records.append(
            ClipRecord(clip_id, rel, split, label, index[label] if label else -1, text=text)
        )
    return out
