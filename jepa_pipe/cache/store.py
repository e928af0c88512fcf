"""The cache schema, in one place.

A store is a zarr v3 group whose arrays share the manifest's row order:

  frames store   frames  uint8   [N, T, H, W, 3]   centre-cropped clips (T = 1 for images)
                 indices int64   [N, T]            decoded frame indices per clip
                 valid   bool    [N]
  teacher store  tokens  float16 [N, L, D]         L = T'·H'·W' patch tokens, no CLS
                 pooled  float16 [N, D]
                 valid   bool    [N]
  text store     text    float16 [M, D]            sentence embeddings
                 text_row int64  [M]               manifest row of each text
                 (tokens float16 [M, Lt, D], token_valid bool [M, Lt] for token-level teachers)

Row arrays are sharded along N: one shard (``shard_size`` rows) is written by exactly one job,
in one aligned write, because zarr loses rows when two processes write into one shard. A
chunk holds one whole row (small per-row arrays: the shard's rows) and ends its codec chain
with crc32c, so a flipped byte fails the read with the chunk named. Provenance lives in the
group attribute ``jepa_pipe`` with a ``fingerprint`` over it; ``complete`` is set only by
finalize after it verified every shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from jepa_pipe import JepaPipeError

SCHEMA_VERSION = 1
ATTR = "jepa_pipe"
StoreKind = Literal["frames", "teacher", "text"]


class CacheError(JepaPipeError):
    """A cache that is incomplete, corrupt, or not what the consumer expects."""


def fingerprint(provenance: dict) -> str:
    blob = json.dumps(provenance, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import numcodecs
    import torch

    versions = {
        "zarr": zarr.__version__,
        "numcodecs": numcodecs.__version__,
        "torch": torch.__version__.split("+")[0],
        "numpy": np.__version__,
    }
    try:
        import transformers

        versions["transformers"] = transformers.__version__
    except ImportError:
        pass
    return versions


# Arrays of at most this many bytes per row are chunked by shard, not by row: zarr-python 3
# pays ~1 ms per chunk written, which dominated writing `valid` and `pooled`.
SMALL_ROW_BYTES = 4096


def _row_array(
    group: zarr.Group,
    name: str,
    shape: tuple[int, ...],
    dtype: str,
    shard_size: int,
    compress: bool,
) -> zarr.Array:
    n = shape[0]
    rows = max(1, min(shard_size, n))
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    chunks = (rows if row_bytes <= SMALL_ROW_BYTES else 1, *shape[1:])
    shards = (rows, *shape[1:])
    compressors = [ZstdCodec(level=3), Crc32cCodec()] if compress else [Crc32cCodec()]
    return group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        shards=shards,
        compressors=compressors,
        fill_value=0,
    )


def create_store(
    path: str | os.PathLike,
    kind: StoreKind,
    arrays: dict[str, tuple],
    *,
    shard_size: int,
    provenance: dict,
) -> zarr.Group:
    """Create the group and its arrays (metadata only) with provenance; complete = False.

    ``arrays`` maps name -> (shape, dtype, compress). Called once per store, by one job.
    """
    group = zarr.open_group(str(path), mode="w")
    for name, (shape, dtype, compress) in arrays.items():
        _row_array(group, name, tuple(shape), dtype, shard_size, compress)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "shard_size": shard_size,
        "rows": int(next(iter(arrays.values()))[0][0]),
        **provenance,
    }
    meta["fingerprint"] = fingerprint(meta)
    meta["complete"] = False
    group.attrs[ATTR] = meta
    return group


def store_path(cache_root: str | os.PathLike, dataset: str, name: str) -> Path:
    """Where store ``name`` (frames, a teacher, ``<store>.v<v>``) of ``dataset`` lives."""
    return Path(cache_root) / dataset / f"{name}.zarr"


def store_meta(group: zarr.Group) -> dict:
    meta = group.attrs.asdict().get(ATTR)
    if meta is None:
        raise CacheError(f"{group.store} is not a jepa_pipe cache (no '{ATTR}' attributes)")
    return meta


def num_shards(rows: int, shard_size: int) -> int:
    return max(1, -(-rows // shard_size))


def shard_rows(shard: int, rows: int, shard_size: int) -> range:
    return range(shard * shard_size, min(rows, (shard + 1) * shard_size))


def shards_of_part(part: int, parts: int, rows: int, shard_size: int) -> list[int]:
    """Part j of n owns shards j, j+n, j+2n, ...: each shard has exactly one writer."""
    return list(range(part, num_shards(rows, shard_size), parts))


Expect = dict[str, Any]


def open_store(
    path: str | os.PathLike, expect: Expect | None = None, require_complete: bool = True
) -> zarr.Group:
    """Open a store read-only after checking that it is complete and matches ``expect``
    (any provenance key: teacher, token_grid, dim, fingerprint, frames_per_clip, size, ...)."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise CacheError(f"cache {path} does not exist (build it with `snakemake cache`)")
    group = zarr.open_group(str(path), mode="r")
    meta = store_meta(group)
    if require_complete and not meta.get("complete"):
        raise CacheError(
            f"cache {path} is incomplete: its finalize step has not verified it "
            "(rerun `snakemake cache`; finished shards are kept)"
        )
    for key, want in (expect or {}).items():
        have = meta.get(key)
        if isinstance(have, list) and isinstance(want, tuple):
            want = list(want)
        if have != want:
            raise CacheError(f"cache {path}: {key} is {have!r}, expected {want!r}")
    return group


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def progress_dir(store_path: Path) -> Path:
    """Per-shard done markers live beside the store (never inside a zarr shard)."""
    return store_path.parent / ".progress" / store_path.name


def shard_marker(store_path: Path, shard: int) -> Path:
    return progress_dir(store_path) / f"shard-{shard:05d}.json"


def verify_store(path: str | os.PathLike) -> dict:
    """Read every shard (crc32c-checked), check done markers, row validity and finite values.
    Returns the summary; raises CacheError naming the first bad shard."""
    path = Path(path)
    group = zarr.open_group(str(path), mode="r")
    meta = store_meta(group)
    rows, size = meta["rows"], meta["shard_size"]
    row_arrays = [name for name, _ in group.arrays()]
    failures: list[dict] = []
    valid_total, norm_sum, norm_count = 0, 0.0, 0
    decoded_with: dict[str, int] = {}  # rows per decoder (PyAV = decord could not read it)
    for shard in range(num_shards(rows, size)):
        marker = shard_marker(path, shard)
        if meta["kind"] != "text" and not marker.is_file():
            raise CacheError(
                f"cache {path}: shard {shard} was never finished "
                f"(no {marker.name}); rerun the cache part that owns it"
            )
        rng = shard_rows(shard, rows, size)
        sl = slice(rng.start, rng.stop)
        try:
            data = {name: group[name][sl] for name in row_arrays}
        except Exception as e:  # checksum or codec failure: name the shard
            raise CacheError(
                f"cache {path}: shard {shard} (rows {sl.start}-{sl.stop - 1}) is corrupt: {e}"
            ) from None
        if "valid" in data:
            valid = data["valid"]
            done = json.loads(marker.read_text())
            if int(valid.sum()) != done["valid"]:
                raise CacheError(
                    f"cache {path}: shard {shard} has {int(valid.sum())} valid rows, "
                    f"its marker says {done['valid']}"
                )
            failures += done["failures"]
            for backend, count in done.get("decoded_with", {}).items():
                decoded_with[backend] = decoded_with.get(backend, 0) + count
            valid_total += int(valid.sum())
        else:
            valid = np.ones(sl.stop - sl.start, bool)
            valid_total += len(valid)
        for name in ("tokens", "pooled", "text"):
            if name in data:
                x = data[name].astype(np.float32)
                if not np.isfinite(x).all():
                    bad = sl.start + int(
                        np.nonzero(~np.isfinite(x).reshape(len(x), -1).all(1))[0][0]
                    )
                    raise CacheError(
                        f"cache {path}: non-finite {name} in row {bad} (shard {shard})"
                    )
        main = next((n for n in ("tokens", "text", "frames") if n in data), None)
        if main is not None and main != "frames" and valid.any():
            x = data[main][valid].astype(np.float32)
            norms = np.linalg.norm(x, axis=-1)
            norm_sum, norm_count = norm_sum + float(norms.sum()), norm_count + norms.size
    stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    summary = {
        "store": str(path),
        "kind": meta["kind"],
        "rows": rows,
        "valid": valid_total,
        "invalid": rows - valid_total,
        "failures": failures,
        "bytes": stored,
        "bytes_per_row": stored / max(rows, 1),
        "mean_token_norm": norm_sum / norm_count if norm_count else None,
        "fingerprint": meta["fingerprint"],
    }
    if decoded_with:
        summary["decoded_with"] = decoded_with
    if "tokens" in row_arrays and meta["kind"] == "teacher":
        length, dim = group["tokens"].shape[1:]
        # invalid rows are all-zero chunks, which zarr does not store: count stored rows
        summary["tokens_bytes_per_row"] = _array_bytes(path / "tokens") / max(valid_total, 1)
        summary["token_bytes_ideal"] = length * dim * 2
    return summary


def _array_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name != "zarr.json")


def mark_complete(path: str | os.PathLike, summary: dict) -> None:
    """The success marker: set by finalize after verify_store passed, and only there."""
    group = zarr.open_group(str(path), mode="r+")
    meta = store_meta(group)
    meta["complete"] = True
    meta["summary"] = {k: summary[k] for k in ("valid", "invalid")}
    group.attrs[ATTR] = meta
