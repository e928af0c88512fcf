"""The manifest contract: one parquet table per dataset, rows sorted by ``clip_id``.

Every cache of a dataset shares the manifest's row order (``row``), so this module is
the single place that defines the columns and writes or reads a manifest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jepa_pipe import JepaPipeError

SCHEMA_VERSION = 1
METADATA_KEY = b"jepa_pipe"

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        # relative to the dataset root, POSIX separators
        pa.field("path", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        # 0-based class index, -1 when the split has no labels (e.g. SSv2 test)
        pa.field("label_id", pa.int64(), nullable=False),
        # trimmed clips; null means the whole file
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        # captions or queries, possibly empty
        pa.field("text", pa.list_(pa.string()), nullable=False),
        # per-text moments (Charades-STA), aligned with `text`; null where texts have no moment
        pa.field("text_start_s", pa.list_(pa.float64())),
        pa.field("text_end_s", pa.list_(pa.float64())),
        # the row of this clip in every cache of the dataset
        pa.field("row", pa.int64(), nullable=False),
    ]
)
COLUMNS: tuple[str, ...] = tuple(MANIFEST_SCHEMA.names)


class ManifestError(JepaPipeError):
    """An annotation or manifest that cannot be read as documented."""


@dataclass
class ClipRecord:
    """One clip (or image) of a dataset split, as a reader found it in the annotations."""

    clip_id: str
    path: str
    split: str
    label: str | None = None
    label_id: int = -1
    start_s: float | None = None
    end_s: float | None = None
    text: list[str] = field(default_factory=list)
    text_start_s: list[float] | None = None
    text_end_s: list[float] | None = None


@dataclass
class SplitRecords:
    """What a dataset reader returns for one split."""

    records: list[ClipRecord]
    classes: list[str] | None = None
    # annotations whose media file is absent: (clip_id, expected relative path)
    missing: list[tuple[str, str]] = field(default_factory=list)


def to_table(
    records: Sequence[ClipRecord], *, dataset: str, splits: Sequence[str], classes: list[str] | None
) -> pa.Table:
    """Sort by clip_id, number the rows and attach the provenance metadata."""
    ordered = sorted(records, key=lambda r: r.clip_id)
    seen: dict[str, str] = {}
    for r in ordered:
        if r.clip_id in seen:
            raise ManifestError(
                f"{dataset}: clip_id {r.clip_id!r} appears twice "
                f"(splits {seen[r.clip_id]!r} and {r.split!r}); cache rows must be unique"
            )
        seen[r.clip_id] = r.split
    columns = {name: [] for name in COLUMNS}
    for row, r in enumerate(ordered):
        for name in COLUMNS[:-1]:
            columns[name].append(getattr(r, name))
        columns["row"].append(row)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "splits": list(splits),
        "classes": classes,
    }
    schema = MANIFEST_SCHEMA.with_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return pa.Table.from_pydict(columns, schema=schema)


def write_manifest(table: pa.Table, out: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename) so an interrupted job leaves no half manifest."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, out)
    return out


def manifest_path(manifests_root: str | os.PathLike, dataset: str) -> Path:
    """One manifest per dataset, holding every split."""
    return Path(manifests_root) / f"{dataset}.parquet"


def read_manifest(path: str | os.PathLike) -> pa.Table:
    """Read a manifest and check it against the contract."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    table = pq.read_table(path)
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise ManifestError(f"manifest {path} lacks columns {missing}; expected {list(COLUMNS)}")
    return table.select(list(COLUMNS)).replace_schema_metadata(table.schema.metadata)


def manifest_metadata(table: pa.Table) -> dict:
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ManifestError("manifest has no jepa_pipe metadata (not written by jepa_pipe?)")
    return json.loads(raw)


def merge_classes(per_split: Iterable[list[str] | None]) -> list[str] | None:
    """All splits of a dataset share one class list (readers derive it from the same file)."""
    result: list[str] | None = None
    for classes in per_split:
        if classes is None:
            continue
        if result is not None and classes != result:
            raise ManifestError("splits disagree on the class list")
        result = classes
    return result
