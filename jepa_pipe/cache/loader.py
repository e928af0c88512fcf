"""Reading caches for training: contiguous blocks, shuffled in memory.

Scattered single-row reads from zarr are an order of magnitude slower than contiguous
ones, so an epoch visits blocks of whole shards in a seeded random order, keeps a buffer of
several blocks in memory, and shuffles rows inside it. Rows that are invalid in any store,
or outside the requested rows (a split), are never yielded. With DataLoader workers, worker
w reads blocks w, w + n, ... of the epoch's order, and the DataLoader interleaves workers in
turn, so the batch order is a pure function of (seed, epoch, workers).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from jepa_pipe.cache.shards import read_shard
from jepa_pipe.cache.store import CacheError, open_store, store_meta


@dataclass
class Field:
    """One array to load: `name` in the batch, read from `array` of the store at `store`."""

    name: str
    store: Path
    array: str


class CacheBatches(IterableDataset):
    """Batches {field: [B, ...] array, "row": [B]} from row-aligned cache stores."""

    def __init__(self, fields: Sequence[Field], batch_size: int, rows: np.ndarray | None = None,
                 block_rows: int | None = None, buffer_blocks: int = 4, seed: int = 0,
                 drop_last: bool = True):
        self.fields, self.batch_size = list(fields), batch_size
        self.buffer_blocks, self.seed, self.drop_last = buffer_blocks, seed, drop_last
        self.epoch = 0
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
        self.blocks = [s for s in starts if valid[s:s + self.block_rows].any()]

    def __len__(self) -> int:
        n = int(self.valid.sum())
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _read(array, sl: slice) -> np.ndarray:
        """A block: one shard file read when the block is a whole shard, else through zarr."""
        rows = array.shards[0] if array.shards else None
        if rows and sl.start % rows == 0 and sl.stop - sl.start <= rows:
            return read_shard(array, sl.start // rows)[: sl.stop - sl.start]
        return array[sl]

    def _arrays(self):
        import zarr

        return {f.name: zarr.open_group(str(f.store), mode="r")[f.array] for f in self.fields}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch, worker])
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.blocks))
        mine = [self.blocks[i] for i in order[worker::workers]]
        arrays = self._arrays()  # opened in the worker process
        pending: dict[str, list] = {}
        for i in range(0, len(mine), self.buffer_blocks):
            buffer = {name: [] for name in [*arrays, "row"]}
            for start in mine[i:i + self.buffer_blocks]:
                sl = slice(start, min(start + self.block_rows, len(self.valid)))
                keep = self.valid[sl]
                for name, array in arrays.items():
                    buffer[name].append(self._read(array, sl)[keep])  # contiguous
                buffer["row"].append(np.arange(sl.start, sl.stop)[keep])
            merged = {k: np.concatenate(v) for k, v in buffer.items()}
            perm = rng.permutation(len(merged["row"]))
            for k, v in merged.items():
                pending.setdefault(k, []).append(v[perm])
            yield from self._drain(pending, final=False)
        yield from self._drain(pending, final=True)

    def _drain(self, pending: dict[str, list], final: bool) -> Iterator[dict[str, np.ndarray]]:
        if not pending:
            return
        joined = {k: np.concatenate(v) for k, v in pending.items()}
        n = len(joined["row"])
        full = n - n % self.batch_size
        for s in range(0, full, self.batch_size):
            yield {k: v[s:s + self.batch_size] for k, v in joined.items()}
        rest = {k: v[full:] for k, v in joined.items()}
        pending.clear()
        if final:
            if not self.drop_last and len(rest["row"]):
                yield rest
        else:
            for k, v in rest.items():
                pending[k] = [v]


def loader(dataset: CacheBatches, workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader that prefetches batches in `workers` processes (batches are built by the
    dataset; numpy arrays become tensors)."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                       persistent_workers=False,
                                       prefetch_factor=2 if workers else None)
