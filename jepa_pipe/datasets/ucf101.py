"""UCF-101, official split lists.

Layout:
  ucfTrainTestlist/classInd.txt        "1 ApplyEyeMakeup" (CRLF line endings)
  ucfTrainTestlist/trainlist0{1,2,3}.txt  "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
  ucfTrainTestlist/testlist0{1,2,3}.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
  UCF-101/<Class>/v_<Class>_gXX_cYY.avi   (also accepted: UCF101/, videos/, the root)

Splits: ``train``/``test`` are fold 1; ``train2``, ``test3`` ... name the other folds.
The class comes from the list's folder, matched case-insensitively against classInd (the
official files disagree in case, e.g. HandstandPushups vs v_HandStandPushups); it is never
parsed out of the file name. ``label_id`` is classInd's index minus one.
"""

from __future__ import annotations

import re
from pathlib import Path

from jepa_pipe.datasets import register_dataset
from jepa_pipe.datasets.files import MediaLocator, find_file, read_lines, safe_relpath
from jepa_pipe.datasets.manifest import ClipRecord, ManifestError, SplitRecords

LIST_DIRS = ("ucfTrainTestlist", ".")
VIDEO_DIRS = ("UCF-101", "UCF101", "videos", ".")
SPLITS = tuple(f"{kind}{fold}" for kind in ("train", "test") for fold in ("", "1", "2", "3"))


def load_class_index(root: Path) -> tuple[dict[str, int], list[str], Path]:
    path = find_file(root, [f"{d}/classInd.txt" for d in LIST_DIRS], what="UCF-101 classInd.txt")
    classes: list[str] = []
    for lineno, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ManifestError(f"{path}:{lineno}: expected '<index> <ClassName>', got {line!r}")
        if int(parts[0]) != len(classes) + 1:
            raise ManifestError(f"{path}:{lineno}: index {parts[0]} out of order")
        classes.append(parts[1])
    return {c.lower(): i for i, c in enumerate(classes)}, classes, path


@register_dataset("ucf101", splits=SPLITS)
def read_ucf101(root: Path, split: str) -> SplitRecords:
    """UCF-101 (classInd + train/test lists + avi)."""
    m = re.fullmatch(r"(train|test)([123]?)", split)
    kind, fold = m.group(1), m.group(2) or "1"
    index, classes, class_path = load_class_index(root)
    list_path = find_file(
        root, [f"{d}/{kind}list0{fold}.txt" for d in LIST_DIRS], what=f"UCF-101 {kind}list0{fold}"
    )
    loc = MediaLocator(root, VIDEO_DIRS)
    out = SplitRecords([], classes)
    for lineno, line in read_lines(list_path):
        where = f"{list_path}:{lineno}"
        parts = line.split()
        if len(parts) not in (1, 2) or (kind == "train" and len(parts) != 2):
            expected = "'<Class>/<file>.avi <index>'" if kind == "train" else "'<Class>/<file>.avi'"
            raise ManifestError(f"{where}: expected {expected}, got {line!r}")
        rel = safe_relpath(parts[0], where=where)
        if "/" not in rel:
            raise ManifestError(f"{where}: path {parts[0]!r} has no class folder")
        folder, fname = rel.split("/", 1)
        if folder.lower() not in index:
            raise ManifestError(f"{where}: unknown class {folder!r} (not in {class_path})")
        label_id = index[folder.lower()]
        if len(parts) == 2 and (not parts[1].isdigit() or int(parts[1]) - 1 != label_id):
            raise ManifestError(
                f"{where}: label index {parts[1]!r} disagrees with class folder {folder!r} "
                f"(index {label_id + 1} in {class_path.name})"
            )
        clip_id = Path(fname).stem
        found, exists = loc.find(rel, where=where)
        if not exists:  # folders on disk may differ in case from the list
            found, exists = loc.find(f"{classes[label_id]}/{fname}", where=where)
        if not exists:
            out.missing.append((clip_id, found))
            continue
        out.records.append(ClipRecord(clip_id, found, split, classes[label_id], label_id))
    return out
