"""The cache loader: every valid row once per epoch, aligned fields, seeded order, workers."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from jepa_pipe.cache.loader import CacheBatches, Field, loader
from jepa_pipe.cache.store import CacheError, create_store, mark_complete

N = 50


def store(tmp_path, name, arrays, valid=None):
    group = create_store(
        tmp_path / f"{name}.zarr",
        "teacher",
        {k: (v.shape, str(v.dtype), False) for k, v in arrays.items()},
        shard_size=8,
        provenance={},
    )
    for k, v in arrays.items():
        group[k][:] = v
    mark_complete(tmp_path / f"{name}.zarr", {"valid": 0, "invalid": 0})
    return tmp_path / f"{name}.zarr"


@pytest.fixture
def stores(tmp_path):
    valid = np.ones(N, bool)
    valid[[3, 17, 40]] = False
    frames = store(
        tmp_path,
        "frames",
        {"frames": np.arange(N * 4, dtype=np.uint8).reshape(N, 4), "valid": valid},
    )
    tokens = store(
        tmp_path,
        "teacher",
        {"tokens": np.arange(N, dtype=np.float16)[:, None].repeat(3, 1), "valid": np.ones(N, bool)},
    )
    return [Field("frames", frames, "frames"), Field("tokens", tokens, "tokens")]


def rows_of(batches):
    return np.concatenate([b["row"] for b in batches])


def test_every_valid_selected_row_once_and_fields_aligned(stores):
    split = np.arange(0, N, 2)  # e.g. the train rows
    ds = CacheBatches(stores, batch_size=4, rows=split, seed=0, drop_last=False)
    batches = list(ds)
    rows = rows_of(batches)
    expected = sorted(set(split) - {40})
    assert sorted(rows.tolist()) == expected and len(rows) == len(set(rows))
    for b in batches:
        assert np.array_equal(b["tokens"][:, 0].astype(int), b["row"])
        assert np.array_equal(b["frames"][:, 0].astype(int), (b["row"] * 4) % 256)


def test_order_is_seeded_per_epoch(stores):
    ds = CacheBatches(stores, batch_size=5, seed=3)
    a, b = rows_of(list(ds)), rows_of(list(ds))
    ds.set_epoch(1)
    c = rows_of(list(ds))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(a) == len(ds) * 5 and not np.array_equal(a, np.sort(a))  # shuffled


def test_two_worker_processes_cover_the_epoch_deterministically(stores):
    ds = CacheBatches(stores, batch_size=4, seed=1, drop_last=False)
    one = [b["row"].numpy() for b in loader(ds, workers=2)]
    two = [b["row"].numpy() for b in loader(ds, workers=2)]
    assert all(np.array_equal(x, y) for x, y in zip(one, two, strict=True))
    assert sorted(np.concatenate(one).tolist()) == sorted(set(range(N)) - {3, 17, 40})


def test_misaligned_or_incomplete_stores_are_refused(tmp_path, stores):
    other = store(tmp_path, "short", {"tokens": np.zeros((N - 1, 3), np.float16)})
    with pytest.raises(CacheError, match="do not share one row order"):
        CacheBatches([stores[0], Field("tokens", other, "tokens")], batch_size=4)
    group = zarr.open_group(str(other), mode="r+")
    meta = group.attrs["jepa_pipe"]
    group.attrs["jepa_pipe"] = {**meta, "complete": False}
    with pytest.raises(CacheError, match="incomplete"):
        CacheBatches([Field("tokens", other, "tokens")], batch_size=4)


def test_bench_loader_reports_both_rates(stores):
    from jepa_pipe.bench import bench_loader

    result = bench_loader(stores, batch_size=4, rounds=1)
    assert result["rows"] == 44  # 47 valid rows, whole batches of 4
    assert result["loader_rows_per_s"] > 0 and result["memmap_gather_rows_per_s"] > 0
    assert result["row_copies_over_memmap"] > 0  # uncompressed shards: the copy-only bound


def test_resuming_at_batch_k_yields_the_rest_of_the_epoch(stores):
    for workers in (0, 2):
        ds = CacheBatches(stores, batch_size=4, seed=2, workers=workers)
        whole = [b["row"] for b in ds]
        for k in (0, 1, 5, len(whole)):
            ds.set_epoch(0, start_batch=k)
            rest = [b["row"] for b in ds]
            assert len(rest) == len(whole) - k
            assert all(np.array_equal(a, b) for a, b in zip(rest, whole[k:], strict=True))


def test_worker_processes_yield_what_the_main_process_plans(stores):
    ds = CacheBatches(stores, batch_size=3, seed=4, workers=2)
    here = [(b["row"], int(b["index"])) for b in ds]
    there = [(b["row"].numpy(), int(b["index"])) for b in loader(ds)]
    assert [i for _, i in here] == list(range(len(here)))
    assert len(here) == len(there)
    assert all(np.array_equal(a, b) and i == j for (a, i), (b, j) in zip(here, there, strict=True))
    ds.set_epoch(0, start_batch=3)  # a resume at an odd batch rotates the workers
    resumed = [b["row"].numpy() for b in loader(ds)]
    assert all(np.array_equal(a, b) for a, b in zip(resumed, [r for r, _ in here[3:]], strict=True))


def test_endless_epochs_chain_the_single_epochs(stores):
    ds = CacheBatches(stores, batch_size=4, seed=5)
    epochs = []
    for e in (1, 2):
        ds.set_epoch(e)
        epochs += [(e, b["row"]) for b in ds]
    ds.set_epoch(1, start_batch=0, epochs=None)
    stream = iter(ds)
    for e, rows in epochs:
        b = next(stream)
        assert int(b["epoch"]) == e and np.array_equal(b["row"], rows)


def test_ranks_read_disjoint_rows(stores):
    seen = []
    for rank in (0, 1):
        ds = CacheBatches(stores, batch_size=2, seed=0, rank=rank, world=2, drop_last=False)
        seen.append(set(rows_of(list(ds)).tolist()))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(N)) - {3, 17, 40}


def test_bench_loader_repeat_reads_each_whole_shard_repeat_times(stores):
    from jepa_pipe.bench import _tiled_stores, bench_loader

    result = bench_loader(stores, batch_size=4, rounds=1, repeat=3)
    # 6 whole shards of 8 rows (the 2-row tail is left out) x 3, less 3 invalid rows each
    # time, in whole batches of 4
    assert result["rows_per_epoch"] == (48 - 3) * 3 // 4 * 4
    assert result["loader_over_memmap"] > 0 and result["loader_over_memmap_discard"] > 0
    tiled = _tiled_stores(stores, 3, stores[0].store.parent / "tiled")
    rows = rows_of(CacheBatches(tiled, batch_size=4, drop_last=False))
    assert sorted(rows.tolist()) == [r for r in range(48 * 3) if r % 48 not in (3, 17, 40)]
    for b in CacheBatches(tiled, batch_size=4):  # row r of the copy holds row r % 48's bytes
        assert np.array_equal(b["tokens"][:, 0].astype(int), b["row"] % 48)
        assert np.array_equal(b["frames"][:, 0].astype(int), (b["row"] % 48 * 4) % 256)


@pytest.mark.parametrize("compress", [False, True])
def test_row_reader_gathers_rows_in_any_order_like_numpy(tmp_path, compress):
    from jepa_pipe.cache.loader import RowReader

    data = np.random.default_rng(0).standard_normal((N, 3, 5)).astype(np.float16)
    group = create_store(
        tmp_path / "t.zarr",
        "teacher",
        {"tokens": (data.shape, "float16", compress)},
        shard_size=8,
        provenance={},
    )
    from jepa_pipe.cache.shards import write_shard

    for shard in range(-(-N // 8)):
        write_shard(group["tokens"], shard, data[shard * 8 : shard * 8 + 8])
    reader = RowReader(tmp_path / "t.zarr", "tokens", keep_compressed=2, max_mapped=2)
    assert reader.shape == data.shape and len(reader) == N
    for rows in ([49, 0, 17, 17, 8], np.array([[3, 40], [-1, 9]]), []):
        assert np.array_equal(reader[rows], data[np.asarray(rows, np.int64)])
        assert len(reader._blocks) <= 2  # shards kept, mapped or decoded
    with pytest.raises(IndexError, match=r"row 50 of .*t\.zarr/tokens \(50 rows\)"):
        reader[[50]]


def test_mapped_shards_are_bounded_per_process_and_batches_unchanged(stores):
    import gc
    from pathlib import Path

    def mapped_files() -> int:  # the kernel's count of this process's shard mappings
        gc.collect()
        maps = Path("/proc/self/maps").read_text().splitlines()
        return sum(str(stores[0].store.parent) in line for line in maps)

    bounded = CacheBatches(stores, batch_size=4, seed=3, max_mapped=3)
    bounded.set_epoch(0, epochs=2)
    got = []
    for batch in bounded:  # at every batch, at most 3 shard files stay mapped
        assert len(bounded._mapped) <= 3 and mapped_files() <= 3
        got.append(batch)
    free = CacheBatches(stores, batch_size=4, seed=3)
    free.set_epoch(0, epochs=2)
    want = list(free)
    assert len(free._mapped) == 2 * 7  # 7 shards of each of the 2 stores
    assert len(got) == len(want) > 0
    for a, b in zip(want, got, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in ("row", "frames", "tokens"))


def test_bench_loader_on_synthetic_stores_of_a_given_row_size():
    from jepa_pipe.bench import bench_loader

    synthetic = {"rows": 20, "frames_shape": (2, 4, 4, 3), "tokens_shape": (3, 2), "shard_size": 8}
    result = bench_loader(None, batch_size=4, rounds=2, synthetic=synthetic)
    assert result["rows_per_epoch"] == 20 // 4 * 4 and result["rows"] == 2 * 20 // 4 * 4
    assert result["row_bytes"] == {"frames": 2 * 4 * 4 * 3, "tokens": 3 * 2 * 2}
    assert result["loader_over_memmap"] > 0
