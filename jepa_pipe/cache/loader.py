"""Reading caches for training: contiguous blocks, shuffled in memory, resumable mid-epoch.

Scattered single-row reads from zarr are an order of magnitude slower than contiguous ones,
so an epoch visits blocks of whole shards in a seeded random order, groups them into buffers
of ``buffer_blocks`` blocks and shuffles rows inside each buffer. Rows invalid in any store, or
outside the requested rows (a split), are never yielded.

The epoch's batches are planned from (seed, epoch) and the `valid` arrays alone, before any
read, so a resumed run can start at batch k of an epoch without reading batches 0..k-1, and
the order does not depend on how many processes read it:
- DDP rank r of R and DataLoader worker w of W plan over the blocks ``r·W + w`` (mod R·W) of
  the epoch's block order;
- the DataLoader yields worker batches round-robin; with several readers and ``drop_last``,
  each reader's epoch is cut to the shortest reader's batch count, so epochs interleave the
  same way however many epochs one iterator runs (``epochs``), and iterating in the main
  process with ``workers`` > 1 yields exactly what the DataLoader yields.
Each batch carries ``epoch`` and ``index`` (its position in the epoch).

Each batch row is copied once, from the block it lives in (a whole shard file read).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from jepa_pipe.cache.shards import maps_rows, shard_chunks
from jepa_pipe.cache.store import CacheError, open_store, store_meta


@dataclass
class Field:
    """One array to load: `name` in the batch, read from `array` of the store at `store`."""

    name: str
    store: Path
    array: str


def _row_views(chunk_rows: int, chunks: list, row_shape: tuple, dtype) -> list[np.ndarray]:
    """Rows of consecutive chunks (views of a memory-mapped shard file, or of one zarr read)
    as a list, built once per block: a batch then copies ``rows[i]`` with no arithmetic."""
    rows: list[np.ndarray] = []
    for chunk in chunks:
        if chunk is None:  # never written: zarr's fill value
            chunk = np.zeros((chunk_rows, *row_shape), dtype)
        rows.extend(chunk)
    return rows


class _ShardRows:
    """Row views of whole shards by key, read through ``shard_chunks`` (uncompressed shards
    memory-mapped, zstd ones decoded; an unsharded array's chunk through zarr), the ``limit``
    most recently used kept. Every kept mapping counts against the kernel's vm.max_map_count
    (65530 by default), which keeping every shard of a Kinetics-sized store (40k shards of
    16 rows per array) would exceed."""

    def __init__(self, limit: int):
        self.limit = limit
        self.kept: OrderedDict = OrderedDict()  # key -> row views, least recently used first

    def __len__(self) -> int:
        return len(self.kept)

    def get(self, key) -> list[np.ndarray] | None:
        rows = self.kept.get(key)
        if rows is not None:
            self.kept.move_to_end(key)
        return rows

    def rows(self, key, array, shard: int, verify: bool, keep: bool) -> list[np.ndarray]:
        rows = self.get(key)
        if rows is not None:
            return rows
        if array.shards:
            chunk_rows, chunks = shard_chunks(array, shard, verify=verify)
        else:  # not sharded: one zarr read of the chunk
            chunk_rows = array.chunks[0]
            chunks = [array[shard * chunk_rows : (shard + 1) * chunk_rows]]
        rows = _row_views(chunk_rows, chunks, array.shape[1:], array.dtype)
        if keep:
            if len(self.kept) >= self.limit:
                self.kept.popitem(last=False)
            self.kept[key] = rows
        return rows


class CacheBatches(IterableDataset):
    """Batches {field: [B, ...] array, "row": [B]} from row-aligned cache stores."""

    def __init__(
        self,
        fields: Sequence[Field],
        batch_size: int,
        rows: np.ndarray | None = None,
        block_rows: int | None = None,
        buffer_blocks: int = 4,
        seed: int = 0,
        drop_last: bool = True,
        workers: int = 0,
        rank: int = 0,
        world: int = 1,
        max_mapped: int = 4096,
    ):
        self.fields, self.batch_size = list(fields), batch_size
        self.buffer_blocks, self.seed, self.drop_last = buffer_blocks, seed, drop_last
        self.workers, self.rank, self.world = workers, rank, world
        self.epoch, self.start_batch = 0, 0
        self.epochs: int | None = 1  # epochs one iterator runs; None = until the consumer stops
        self._opened: tuple | None = None  # (pid, arrays): zarr handles of this process
        # per process, keyed by (array name, block start): blocks whose checksums were
        # checked, and mapped uncompressed shards kept open across epochs
        self._verified: set = set()
        # at most `max_mapped` shard mappings per process (all fields), least recently used
        # dropped first
        self.max_mapped = max_mapped
        self._mapped = _ShardRows(max_mapped)
        self._keeps_mapped: dict[str, bool] = {}
        self._row_types: dict[str, tuple] = {}  # field -> (row shape, dtype)
        self._shard_rows: dict[str, int | None] = {}  # field -> rows per shard (None: unsharded)
        groups = {f.store: open_store(f.store) for f in self.fields}
        counts = {str(p): store_meta(g)["rows"] for p, g in groups.items()}
        if len(set(counts.values())) != 1:
            raise CacheError(f"stores do not share one row order: rows {counts}")
        n = next(iter(counts.values()))
        valid = np.ones(n, bool)
        for g in groups.values():
            if "valid" in g:
                valid &= g["valid"][:]
        if rows is not None:
            chosen = np.zeros(n, bool)
            chosen[np.asarray(rows)] = True
            valid &= chosen
        self.valid = valid
        shard = store_meta(next(iter(groups.values())))["shard_size"]
        self.block_rows = block_rows or shard
        starts = np.arange(0, n, self.block_rows)
        self.blocks = np.asarray(
            [s for s in starts if valid[s : s + self.block_rows].any()], np.int64
        )

    # -- the plan: row indices only, no reads -------------------------------------------
    def set_epoch(self, epoch: int, start_batch: int = 0, epochs: int | None = 1) -> None:
        """Iterate from batch ``start_batch`` of epoch ``epoch`` (resuming mid-epoch) for
        ``epochs`` epochs (None: endlessly, for a training loop that counts steps)."""
        self.epoch, self.start_batch, self.epochs = epoch, start_batch, epochs

    def _readers(self) -> int:
        return max(1, self.workers)

    def plan(self, epoch: int, worker: int) -> list[np.ndarray]:
        """The row indices of each batch worker ``worker`` yields in ``epoch``."""
        readers = self.world * self._readers()
        me = self.rank * self._readers() + worker
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.blocks))
        mine = self.blocks[order[me::readers]]
        rng = np.random.default_rng([self.seed, epoch, me])
        n = len(self.valid)
        rows = mine[:, None] + np.arange(self.block_rows)  # [blocks, block_rows]
        keep = (rows < n) & self.valid[np.minimum(rows, n - 1)]
        seq = []
        for i in range(0, len(mine), self.buffer_blocks):
            buffer = rows[i : i + self.buffer_blocks][keep[i : i + self.buffer_blocks]]
            seq.append(buffer[rng.permutation(len(buffer))])
        seq = np.concatenate(seq) if seq else np.zeros(0, np.int64)
        full = len(seq) - len(seq) % self.batch_size
        # rows sorted inside a batch: its membership is what is random; reading in row order
        # walks each shard file forwards
        batches = list(np.sort(seq[:full].reshape(-1, self.batch_size), axis=1))
        if not self.drop_last and full < len(seq):
            batches.append(np.sort(seq[full:]))
        return batches

    def epoch_plans(self, epoch: int) -> list[list[np.ndarray]]:
        """Every reader's batches of ``epoch`` (equal counts when several readers drop_last)."""
        plans = [self.plan(epoch, w) for w in range(self._readers())]
        if len(plans) > 1 and self.drop_last:
            k = min(len(p) for p in plans)
            plans = [p[:k] for p in plans]
        return plans

    def batches_in_epoch(self, epoch: int = 0) -> int:
        return sum(len(p) for p in self.epoch_plans(epoch))

    def __len__(self) -> int:
        return self.batches_in_epoch(self.epoch)

    # -- reading --------------------------------------------------------------------------
    def _read(self, name: str, array, start: int, stop: int) -> list[np.ndarray]:
        """A block's row views: one memory-mapped shard file when the block is a whole shard
        (checksums verified on its first read in this process), else a zarr read."""
        kept = self._mapped.get((name, start))  # the hot path: a block read before
        if kept is not None:
            return kept
        rows = self._shard_rows[name]  # zarr's own attributes are slow here
        if rows and start % rows == 0 and stop - start <= rows:
            key = (name, start)
            verify = key not in self._verified
            self._verified.add(key)
            # mapped shards are views of the page cache: keep them for the next epoch
            keep = self._keeps_mapped[name]
            return self._mapped.rows(key, array, start // rows, verify, keep)
        data = array[start:stop]
        return _row_views(len(data), [data], array.shape[1:], array.dtype)

    def _arrays(self) -> dict:
        """The zarr arrays, opened once per process (DataLoader workers open their own)."""
        import zarr

        if self._opened is None or self._opened[0] != os.getpid():
            arrays = {f.name: zarr.open_group(str(f.store), mode="r")[f.array] for f in self.fields}
            self._opened, self._verified = (os.getpid(), arrays), set()
            self._mapped = _ShardRows(self.max_mapped)
            self._keeps_mapped = {name: maps_rows(a) for name, a in arrays.items()}
            self._row_types = {name: (a.shape[1:], a.dtype) for name, a in arrays.items()}
            self._shard_rows = {
                name: a.shards[0] if a.shards else None for name, a in arrays.items()
            }
        return self._opened[1]

    def _epochs(self):
        e = self.epoch
        while self.epochs is None or e < self.epoch + self.epochs:
            yield e
            e += 1

    def _worker_batches(
        self, epoch: int, batches: list[np.ndarray], worker: int, skip: int
    ) -> Iterator[dict[str, np.ndarray]]:
        readers = self._readers()
        batches = batches[skip:]
        if not batches:
            return
        arrays = self._arrays()  # opened in the worker process
        # Per-batch bookkeeping in Python ints and lists: on small rows it is a visible share
        # of a batch's time next to the copies (measured: numpy calls on 8-row index arrays,
        # per-row method calls).
        br, n = self.block_rows, len(self.valid)
        plan = [(rows, rows.tolist()) for rows in batches]
        # blocks read through zarr are dropped once their last row is yielded; mapped shards
        # are looked up again per batch (they stay in self._mapped), so they need no counting
        left: dict[int, int] | None = None
        if not all(self._keeps_mapped.values()):
            left = {}  # block start -> rows still to yield from it
            for _, rl in plan:
                for r in rl:
                    left[r - r % br] = left.get(r - r % br, 0) + 1
        loaded: dict[int, dict[str, list[np.ndarray]]] = {}  # block start -> field -> rows
        for k, (rows, rl) in enumerate(plan, start=skip):
            owners = [r - r % br for r in rl]
            for s in owners:
                if s not in loaded:
                    stop = min(s + br, n)
                    loaded[s] = {name: self._read(name, a, s, stop) for name, a in arrays.items()}
            batch = {}
            for name, (row_shape, dtype) in self._row_types.items():
                out = np.empty((len(rl), *row_shape), dtype)
                for i, (r, s) in enumerate(zip(rl, owners, strict=True)):
                    # the one copy of each row (a Python loop of row copies beats np.take
                    # over a strided view of the shard and np.stack, measured)
                    out[i] = loaded[s][name][r - s]
                batch[name] = out
            batch["row"] = rows.copy()
            batch["epoch"] = np.int64(epoch)
            batch["index"] = np.int64(k * readers + worker)  # position in the epoch
            if left is not None:
                for s in owners:
                    left[s] -= 1
                    if not left[s]:
                        loaded.pop(s, None)
            else:  # holding them here would keep every mapping of the epoch alive
                loaded.clear()
            yield batch

    def _assignment(self, epoch: int, slot: int) -> tuple[int, int]:
        """(reader plan, batches to skip) for DataLoader worker ``slot``. Epochs are cut to
        equal per-reader counts, so global batch g is batch g // W of reader g % W; a resume
        at batch k = q·W + r rotates readers so that slot 0 serves reader r, and the
        DataLoader's round-robin from slot 0 continues the global order exactly."""
        readers = self._readers()
        start = self.start_batch if epoch == self.epoch else 0
        q, r = divmod(start, readers)
        reader = (slot + r) % readers
        return reader, q + (1 if reader < r else 0)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        readers = self._readers()
        if readers > 1 and not self.drop_last and self.start_batch:
            raise ValueError("resuming mid-epoch with several readers needs drop_last=True")
        info = get_worker_info()
        if info is not None and info.num_workers != readers:
            raise RuntimeError(
                f"CacheBatches planned for {readers} workers, runs in {info.num_workers}"
            )
        for epoch in self._epochs():
            plans = self.epoch_plans(epoch)
            slots = [info.id] if info is not None else range(readers)
            its = []
            for slot in slots:
                reader, skip = self._assignment(epoch, slot)
                its.append(self._worker_batches(epoch, plans[reader], reader, skip))
            while its:  # the DataLoader's round-robin (one slot in a worker process)
                for it in list(its):
                    try:
                        yield next(it)
                    except StopIteration:
                        its.remove(it)


class RowReader:
    """Rows of one cache array by index, in any order, without reading the array into memory
    (``reader[rows]`` -> [len(rows), ...], the stored dtype). Uncompressed shards are
    memory-mapped on first use (checksums verified then) and the ``max_mapped`` most recently
    used kept (page cache only; the bound keeps under vm.max_map_count); zstd shards are
    decoded and the last ``keep_compressed`` kept."""

    def __init__(
        self,
        store: str | os.PathLike,
        array: str,
        keep_compressed: int = 8,
        max_mapped: int = 4096,
    ):
        import zarr

        self.store, self.array_name = Path(store), array
        self._array = zarr.open_group(str(store), mode="r")[array]
        self.shape, self.dtype = self._array.shape, self._array.dtype
        self._shard = self._array.shards[0] if self._array.shards else self._array.chunks[0]
        # every shard is verified when it is read (again after an eviction)
        self._blocks = _ShardRows(max_mapped if maps_rows(self._array) else keep_compressed)

    def __len__(self) -> int:
        return self.shape[0]

    def _rows_of(self, shard: int) -> list[np.ndarray]:
        return self._blocks.rows(shard, self._array, shard, verify=True, keep=True)

    def __getitem__(self, rows) -> np.ndarray:
        index = np.asarray(rows, np.int64).reshape(-1).tolist()
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        n, k = self.shape[0], self._shard
        for i, r in enumerate(index):
            if not -n <= r < n:
                raise IndexError(f"row {r} of {self.store}/{self.array_name} ({n} rows)")
            r %= n
            out[i] = self._rows_of(r // k)[r % k]
        return out.reshape(*np.shape(rows), *self.shape[1:])


def loader(dataset: CacheBatches, workers: int | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader that prefetches batches in ``dataset.workers`` processes (batches are built
    by the dataset; numpy arrays become tensors)."""
    if workers is not None:
        dataset.workers = workers
    w = dataset.workers
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=w,
        persistent_workers=False,
        prefetch_factor=2 if w else None,
    )
