"""Writing one whole zarr v3 shard in one file operation.

zarr-python 3.1 writes about 100 MB/s through its sharding codec (fixed cost per inner
chunk), which made writing the cache slower than decoding and inference together. For the
layouts this package creates (inner chunks spanning every axis but the first, codecs
``bytes [-> zstd] -> crc32c``, index at the end with ``bytes -> crc32c``), the shard file is
encoded here with numcodecs' Zstd (as zarr) and CRC-32C (zarr uses google-crc32c; the
``crc32c`` package computes the same checksum without holding the GIL) and written
atomically; tests check that the bytes equal zarr's own. Every read goes through zarr, and
any other layout falls back to zarr's writer.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import crc32c
import numcodecs
import numpy as np
import zarr
from zarr.storage import LocalStore

EMPTY = np.iinfo(np.uint64).max


def _crc(data) -> bytes:
    """CRC-32C of any contiguous buffer, as zarr's crc32c codec stores it. The crc32c
    package reads numpy arrays in place and releases the GIL on large buffers, so the
    writer and loader threads checksum while inference and decoding go on."""
    return np.uint32(crc32c.crc32c(data)).astype("<u4").tobytes()


def _layout(array: zarr.Array) -> dict | None:
    """The parameters of a layout this module can encode, or None."""
    meta = array.metadata.to_dict()
    codecs = meta.get("codecs", [])
    if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
        return None
    cfg = codecs[0]["configuration"]
    inner = list(cfg["chunk_shape"])
    names = [c["name"] for c in cfg["codecs"]]
    index_names = [c["name"] for c in cfg["index_codecs"]]
    if (
        cfg.get("index_location", "end") != "end"
        or index_names != ["bytes", "crc32c"]
        or names not in (["bytes", "crc32c"], ["bytes", "zstd", "crc32c"])
        or inner[1:] != list(array.shape[1:])
        or meta["fill_value"] not in (0, False)
        or not isinstance(array.store, LocalStore)
        or meta["chunk_key_encoding"]["configuration"].get("separator", "/") != "/"
    ):
        return None
    zstd = next((c["configuration"] for c in cfg["codecs"] if c["name"] == "zstd"), None)
    return {
        "shard_rows": meta["chunk_grid"]["configuration"]["chunk_shape"][0],
        "chunk_rows": inner[0],
        "zstd": numcodecs.Zstd(level=zstd["level"], checksum=zstd.get("checksum", False))
        if zstd
        else None,
    }


def _shard_file(array: zarr.Array, shard: int) -> Path:
    """The file of shard `shard` (default chunk keys, '/' separator: see _layout)."""
    key = "/".join(["c", str(shard)] + ["0"] * (array.ndim - 1))
    return Path(array.store.root) / array.path / key


def _stored_dtype(array: zarr.Array) -> np.dtype:
    """The `bytes` codec stores little-endian."""
    return array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype


def _all_fill(chunk: np.ndarray) -> bool:
    """``not chunk.any()`` (every value equals the fill value 0), answered from the first
    values for almost every real chunk: a full pass over float16 costs ~3 ms per 4 MB row,
    which the writer thread would spend holding the GIL."""
    flat = chunk.reshape(-1)
    return not (flat[:1024].any() or flat.any())


def write_shard(array: zarr.Array, shard: int, data: np.ndarray) -> None:
    """Write rows [shard * shard_rows, ...) of `array` (the whole shard) from `data`."""
    layout = _layout(array)
    start = shard * (layout["shard_rows"] if layout else array.shards[0])
    if layout is None:
        array[start : start + len(data)] = data
        return
    rows, chunk_rows, n = layout["shard_rows"], layout["chunk_rows"], array.shape[0]
    stop = min(n, start + rows)
    if len(data) != stop - start:
        raise ValueError(
            f"shard {shard} of {array.path} holds {stop - start} rows, got {len(data)}"
        )
    dtype = _stored_dtype(array)
    data = np.ascontiguousarray(data, dtype=dtype)
    index = np.full((rows // chunk_rows, 2), EMPTY, dtype="<u8")
    parts, offset = [], 0
    for i in range(rows // chunk_rows):
        r0 = i * chunk_rows
        if start + r0 >= n:
            break  # beyond the end of the array
        chunk = data[r0 : r0 + chunk_rows]
        if _all_fill(chunk):
            continue  # zarr does not store a chunk equal to the fill value
        if len(chunk) < chunk_rows:  # an edge chunk is stored padded with the fill value
            pad = np.zeros((chunk_rows - len(chunk), *chunk.shape[1:]), dtype)
            chunk = np.concatenate([chunk, pad])
        # uncompressed: the array itself is checksummed and written, no bytes copy
        raw = chunk if layout["zstd"] is None else layout["zstd"].encode(chunk)
        size = memoryview(raw).nbytes + 4
        index[i] = (offset, size)
        offset += size
        parts += [raw, _crc(raw)]
    path = _shard_file(array, shard)
    if not parts:  # an all-empty shard is not stored
        path.unlink(missing_ok=True)
        return
    idx = index.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        for part in parts:
            f.write(part)
        f.write(idx + _crc(idx))
    os.replace(tmp, path)  # a killed job never leaves a torn shard


class ShardReadError(ValueError):
    """A shard whose checksums do not match: names the file and the chunk."""


def maps_rows(array: zarr.Array) -> bool:
    """True when shard_chunks returns views of the file (uncompressed layout): such a
    mapping can be kept open across epochs at no memory cost beyond the page cache."""
    layout = _layout(array)
    return layout is not None and layout["zstd"] is None


def compressed(array: zarr.Array) -> bool:
    """True when the array's chunks are zstd-compressed in a layout this module reads."""
    layout = _layout(array)
    return layout is not None and layout["zstd"] is not None


def shard_chunks(array: zarr.Array, shard: int, verify: bool = True) -> tuple[int, list]:
    """Shard `shard` of `array` as (chunk_rows, chunks): each chunk an array of chunk_rows
    rows (the last may be cut at the array's end) or None where never written (fill value).

    The file is memory-mapped: uncompressed chunks are read-only views of the page cache (the
    training loader copies each row once, from here into its batch), zstd chunks are decoded.
    Checksums are verified unless ``verify`` is False."""
    layout = _layout(array)
    if layout is None:
        rows = array.shards[0]
        return rows, [array[shard * rows : (shard + 1) * rows]]
    rows, chunk_rows, n = layout["shard_rows"], layout["chunk_rows"], array.shape[0]
    start, stop = shard * rows, min(n, (shard + 1) * rows)
    n_chunks = -(-(stop - start) // chunk_rows)
    path = _shard_file(array, shard)
    if not path.is_file():
        return chunk_rows, [None] * n_chunks
    with open(path, "rb") as f:
        blob = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)
    total = rows // chunk_rows
    index_bytes = blob[-(16 * total + 4) :]
    if _crc(index_bytes[:-4]) != index_bytes[-4:].tobytes():
        raise ShardReadError(f"{path}: shard index checksum does not match")
    index = np.frombuffer(index_bytes[:-4].tobytes(), dtype="<u8").reshape(total, 2)
    dtype = _stored_dtype(array)
    chunks = []
    for i in range(n_chunks):
        offset, size = index[i]
        if offset == EMPTY:
            chunks.append(None)
            continue
        raw = blob[int(offset) : int(offset + size)]
        if verify and _crc(raw[:-4]) != raw[-4:].tobytes():
            raise ShardReadError(f"{path}: chunk {i} checksum does not match")
        data = raw[:-4] if layout["zstd"] is None else layout["zstd"].decode(raw[:-4])
        chunk = np.frombuffer(data, dtype=dtype).reshape(chunk_rows, *array.shape[1:])
        chunks.append(chunk[: min(chunk_rows, stop - start - i * chunk_rows)])
    return chunk_rows, chunks


def read_shard(array: zarr.Array, shard: int) -> np.ndarray:
    """Rows [shard * shard_rows, ...) of `array` as one array, checksums verified; the
    inverse of write_shard (any other layout is read through zarr)."""
    chunk_rows, chunks = shard_chunks(array, shard)
    rows = array.shards[0]
    start, stop = shard * rows, min(array.shape[0], (shard + 1) * rows)
    out = np.zeros((stop - start, *array.shape[1:]), _stored_dtype(array))
    for i, chunk in enumerate(chunks):
        if chunk is not None:
            out[i * chunk_rows : i * chunk_rows + len(chunk)] = chunk
    return out
