"""Something-Something v2.

Layout (both official releases are accepted):
  labels/labels.json | something-something-v2-labels.json   {"Moving something up": "87", ...}
  labels/train.json, labels/validation.json, labels/test.json (or the long names)
      train/validation: [{"id", "label", "template", "placeholders"}], test: [{"id"}]
  20bn-something-something-v2/<id>.webm   (also accepted: videos/, the root)

The class is the template with its brackets removed, looked up in the labels json
(``label`` holds the filled-in placeholders and is kept as the clip's caption).
"""

from __future__ import annotations

from pathlib import Path

from jepa_pipe.datasets import register_dataset
from jepa_pipe.datasets.files import MediaLocator, find_file, read_json
from jepa_pipe.datasets.manifest import ClipRecord, ManifestError, SplitRecords

VIDEO_DIRS = ("20bn-something-something-v2", "videos", ".")


def _annotation(root: Path, stem: str) -> Path:
    names = [f"labels/{stem}.json", f"{stem}.json"]
    names += [f"labels/something-something-v2-{stem}.json", f"something-something-v2-{stem}.json"]
    return find_file(root, names, what=f"SSv2 {stem} json")


def load_classes(root: Path) -> tuple[dict[str, int], list[str], Path]:
    path = _annotation(root, "labels")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected an object mapping label name to id")
    ids: dict[str, int] = {}
    for name, idx in raw.items():
        try:
            ids[name] = int(idx)
        except (TypeError, ValueError):
            raise ManifestError(f"{path}: label {name!r} has non-integer id {idx!r}") from None
    if sorted(ids.values()) != list(range(len(ids))):
        raise ManifestError(f"{path}: label ids are not 0..{len(ids) - 1} without gaps")
    classes = sorted(ids, key=ids.__getitem__)
    return ids, classes, path


@register_dataset("ssv2", splits=("train", "validation", "test"))
def read_ssv2(root: Path, split: str) -> SplitRecords:
    """Something-Something v2 (labels json + split json + webm)."""
    ids, classes, labels_path = load_classes(root)
    split_path = _annotation(root, split)
    entries = read_json(split_path)
    if not isinstance(entries, list):
        raise ManifestError(f"{split_path}: expected a JSON list of clips")
    loc = MediaLocator(root, VIDEO_DIRS)
    out = SplitRecords([], classes)
    for i, e in enumerate(entries):
        where = f"{split_path} entry {i}"
        if not isinstance(e, dict) or "id" not in e:
            raise ManifestError(f"{where}: expected an object with an 'id'")
        vid = str(e["id"]).strip()
        where = f"{where} (id {vid})"
        template = e.get("template")
        label = None
        if template is not None:
            label = str(template).replace("[", "").replace("]", "")
            if label not in ids:
                raise ManifestError(
                    f"{where}: unknown label {label!r} (template {template!r}) "
                    f"is not in {labels_path}"
                )
        elif split != "test":
            raise ManifestError(f"{where}: no 'template' in a {split} entry")
        rel, exists = loc.find(f"{vid}.webm", where=where)
        if not exists:
            out.missing.append((vid, rel))
            continue
        text = [str(e["label"])] if e.get("label") else []
        out.records.append(
            ClipRecord(vid, rel, split, label, ids[label] if label else -1, text=text)
        )
    return out
