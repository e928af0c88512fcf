"""Dataset readers: each turns a dataset's official annotation files into manifest records.

Adding a dataset is one module with a function decorated by ``@register_dataset``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from jepa_pipe import get_logger
from jepa_pipe.datasets.manifest import ManifestError, SplitRecords, merge_classes, to_table

log = get_logger("datasets")

Reader = Callable[[Path, str], SplitRecords]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    splits: tuple[str, ...]
    read: Reader
    doc: str


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, splits: Sequence[str]) -> Callable[[Reader], Reader]:
    def deco(fn: Reader) -> Reader:
        DATASETS[name] = DatasetSpec(name, tuple(splits), fn, (fn.__doc__ or "").strip())
        return fn

    return deco


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ManifestError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


@dataclass
class ManifestReport:
    dataset: str
    rows: int
    per_split: dict[str, int]
    missing: int
    missing_first: list[str]


def build_manifest(
    dataset: str, root: str | Path, splits: Sequence[str]
) -> tuple[pa.Table, ManifestReport]:
    """Read the given splits of one dataset into a single manifest table (all splits share
    one cache, so rows are numbered across splits)."""
    spec = get_dataset(dataset)
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{dataset}: data root {root} is not a directory")
    if not splits:
        raise ManifestError(f"{dataset}: no split given; expected some of {list(spec.splits)}")
    records, class_lists, missing, per_split = [], [], [], {}
    for split in splits:
        if split not in spec.splits:
            raise ManifestError(
                f"{dataset}: unknown split {split!r}; expected one of {list(spec.splits)}"
            )
        got = spec.read(root, split)
        records.extend(got.records)
        class_lists.append(got.classes)
        missing.extend(got.missing)
        per_split[split] = len(got.records)
    if missing:
        first = [cid for cid, _ in missing[:5]]
        log.warning(
            "%s: %d annotated clip(s) have no media file under %s and are left out "
            "(first: %s; e.g. expected %s)",
            dataset,
            len(missing),
            root,
            ", ".join(first),
            missing[0][1],
        )
    table = to_table(records, dataset=dataset, splits=splits, classes=merge_classes(class_lists))
    report = ManifestReport(
        dataset, table.num_rows, per_split, len(missing), [cid for cid, _ in missing[:5]]
    )
    return table, report


# Register the readers (import for side effect).
from jepa_pipe.datasets import (  # noqa: E402
    charades_sta,  # noqa: F401
    coco,  # noqa: F401
    msrvtt,  # noqa: F401
    msvd,  # noqa: F401
    ssv2,  # noqa: F401
    ucf101,  # noqa: F401
)
