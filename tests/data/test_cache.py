"""SliceCache reading: exact values, incomplete caches refused, bounded memory when streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from napari_latentdirs.data.cache import CacheIncompleteError, SliceCache, build_cache
from napari_latentdirs.data.dataset import SliceDataset


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_build_cache_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, 16, 16)).astype(np.float32)
    patients = [f"P{i // 5}" for i in range(40)]
    cache = build_cache(tmp_path, x, patient_ids=patients, rel_z=np.tile(np.linspace(0, 1, 5), 8), test_fraction=0.25, dtype="float32")
    np.testing.assert_array_equal(cache.read_many(np.arange(40)), x)
    rows = [7, 3, 4, 5, 39, 0, 3]  # unsorted, with repeats and runs
    np.testing.assert_array_equal(cache.read_many(rows), x[rows])
    np.testing.assert_array_equal(cache.array[5], x[5])
    ds = SliceDataset(cache, "test")
    assert len(ds) == 10 and set(ds.patient_id) == set(cache.patients("test"))
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch.shape == (4, 1, 16, 16)
    torch.testing.assert_close(batch[:, 0], torch.from_numpy(x[ds.rows[:4]]))
    with pytest.raises(ValueError, match="model space"):
        build_cache(tmp_path / "bad", x * 3, patient_ids=patients)
    with pytest.raises(IndexError):
        cache.read(40)


def test_incomplete_cache_refused(tmp_path):
    x = np.zeros((4, 8, 8), np.float32)
    build_cache(tmp_path, x, patient_ids=["a", "a", "b", "b"])
    (tmp_path / "index.json").rename(tmp_path / "index.bak")
    with pytest.raises(CacheIncompleteError, match="no index.json"):
        SliceCache(tmp_path)
    (tmp_path / "index.bak").rename(tmp_path / "index.json")
    with open(tmp_path / "slices.npy", "r+b") as fh:
        fh.truncate(200)  # an array cut short
    with pytest.raises(CacheIncompleteError, match="shorter than its header"):
        SliceCache(tmp_path)


def test_streaming_keeps_rss_flat_where_a_memmap_would_not(tmp_path):
    """Read ~390 MB of cache through the Dataset; RSS must not grow with it.

    The same cache read through the memmap does grow RSS by roughly the bytes
    touched, which is why the Dataset uses pread (so this test has teeth).
    """
    n, size = 12_000, 128  # 393 MB of float16, a sparse file: no disk space used
    cache = build_cache(tmp_path, None, n=n, size=size, patient_ids=[f"P{i // 100}" for i in range(n)], test_fraction=0.0)
    ds = SliceDataset(cache, "train")
    assert len(ds) == n
    loader = DataLoader(ds, batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(0))
    seen, peak, warm = 0, 0, None
    for k, batch in enumerate(loader):
        seen += batch.shape[0]
        if k == 20:  # after warm-up (~15 batches): batch buffers and allocator pools exist
            warm = rss_bytes()
        peak = max(peak, rss_bytes())
    assert seen == n
    growth = peak - warm
    # ~210 MB streamed after warm-up; the footprint stays that of a few batches.
    assert growth < 40 * 2**20, f"RSS grew by {growth / 2**20:.0f} MB while streaming"

    arr = cache.array
    before = rss_bytes()
    total = 0.0
    for i in range(0, n, 500):
        total += float(arr[i : i + 500].sum(dtype=np.float32))
    mm_growth = rss_bytes() - before
    del arr
    assert total == 0.0
    assert mm_growth > 150 * 2**20, f"memmap reading grew RSS by only {mm_growth / 2**20:.0f} MB"
