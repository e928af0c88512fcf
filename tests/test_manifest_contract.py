"""The manifest is the contract between stages: columns, types, order, row numbering."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jepa_pipe.datasets.manifest import (
    COLUMNS,
    MANIFEST_SCHEMA,
    ClipRecord,
    ManifestError,
    manifest_metadata,
    read_manifest,
    to_table,
    write_manifest,
)


def records():
    return [
        ClipRecord("b", "v/b.mp4", "test", "cat", 1, text=["x", "y"]),
        ClipRecord("a", "v/a.mp4", "train", None, -1),
        ClipRecord("c", "v/c.mp4", "train", text=["q"], text_start_s=[1.0], text_end_s=[2.5]),
    ]


def test_design_columns_present_with_types():
    expected = {
        "clip_id": pa.string(),
        "path": pa.string(),
        "split": pa.string(),
        "label": pa.string(),
        "label_id": pa.int64(),
        "start_s": pa.float64(),
        "end_s": pa.float64(),
        "text": pa.list_(pa.string()),
        "row": pa.int64(),
    }
    for name, dtype in expected.items():
        assert MANIFEST_SCHEMA.field(name).type == dtype, name
    assert COLUMNS[-1] == "row"


def test_rows_sorted_by_clip_id_and_numbered():
    table = to_table(records(), dataset="x", splits=["train", "test"], classes=["dog", "cat"])
    assert table.column("clip_id").to_pylist() == ["a", "b", "c"]
    assert table.column("row").to_pylist() == [0, 1, 2]
    assert table.column("label_id").to_pylist() == [-1, 1, -1]
    assert table.column("text").to_pylist() == [[], ["x", "y"], ["q"]]
    assert table.column("text_start_s").to_pylist() == [None, None, [1.0]]
    meta = manifest_metadata(table)
    assert meta["classes"] == ["dog", "cat"] and meta["splits"] == ["train", "test"]


def test_duplicate_clip_id_is_refused_with_both_splits_named():
    recs = [ClipRecord("a", "x", "train"), ClipRecord("a", "y", "test")]
    with pytest.raises(ManifestError, match=r"'a' appears twice.*'train'.*'test'"):
        to_table(recs, dataset="x", splits=["train", "test"], classes=None)


def test_round_trip_and_byte_identical_rewrite(tmp_path):
    table = to_table(records(), dataset="x", splits=["train"], classes=None)
    p1, p2 = write_manifest(table, tmp_path / "a.parquet"), tmp_path / "b.parquet"
    write_manifest(to_table(records()[::-1], dataset="x", splits=["train"], classes=None), p2)
    assert p1.read_bytes() == p2.read_bytes()
    back = read_manifest(p1)
    assert back.to_pylist() == table.to_pylist()
    assert manifest_metadata(back)["dataset"] == "x"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temp file


def test_read_manifest_names_missing_columns(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"clip_id": ["a"]}), tmp_path / "m.parquet")
    with pytest.raises(ManifestError, match=r"lacks columns.*'path'"):
        read_manifest(tmp_path / "m.parquet")
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope.parquet")
