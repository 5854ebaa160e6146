"""PyTorch Dataset streaming slices from a :class:`~.cache.SliceCache`.

Items are ``(1, size, size)`` float32 tensors in model space **[-1, 1]**
(``x = 2 * (clip(HU, hu_min, hu_max) - hu_min) / (hu_max - hu_min) - 1`` with the
cache's recorded window, by default [-1000, 2000]; the generators' tanh range). Nothing is loaded up front: each item is one ``pread`` of the cache
file, so process memory stays flat however large the cache is (see
``benchmarks/bench_prepare.py --rss`` for the 246,016-slice figure).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import SliceCache


class SliceDataset(Dataset):
    """Slices of one split ("train", "test" or None for all), split by patient at prepare time."""

    def __init__(self, cache: SliceCache | str | os.PathLike, split: str | None = "train") -> None:
        self.cache = cache if isinstance(cache, SliceCache) else SliceCache(cache)
        self.split = split
        self.rows = self.cache.indices(split)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.cache.read(int(self.rows[i])))[None]

    def __getitems__(self, idx: list[int]) -> list[torch.Tensor]:
        # DataLoader's batched fetch: one pread per run of consecutive rows.
        batch = torch.from_numpy(self.cache.read_many(self.rows[np.asarray(idx, dtype=np.int64)]))
        return list(batch[:, None])

    @property
    def rel_z(self) -> np.ndarray:
        """Relative z position within the scan per item: the free weak label for z-level."""
        return self.cache.table.rel_z[self.rows]

    @property
    def patient_id(self) -> np.ndarray:
        return self.cache.table.patient_id[self.rows]

    @property
    def fingerprint(self) -> str:
        return self.cache.fingerprint
