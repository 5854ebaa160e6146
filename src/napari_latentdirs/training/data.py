"""Training data sources for the engines.

An engine takes a ``torch.utils.data.Dataset`` whose items are (1, 128, 128)
float32 tensors in model space [-1, 1], with an optional ``fingerprint``
attribute recorded in checkpoints. Sources: the slice cache written by
``latentdirs prepare`` (``data.cache.SliceCache`` + ``data.dataset.SliceDataset``),
in-memory phantom slices, or any array via :class:`TensorSlices`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


class TensorSlices(Dataset):
    """(N, H, W) or (N, 1, H, W) model-space slices held in memory."""

    def __init__(self, x: np.ndarray | torch.Tensor, fingerprint: str | None = None, name: str = "array") -> None:
        t = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if t.ndim == 3:
            t = t[:, None]
        if t.ndim != 4 or t.shape[1] != 1:
            raise ValueError(f"expected (N, H, W) or (N, 1, H, W) slices, got {tuple(t.shape)}")
        if t.numel() and (t.min() < -1.0001 or t.max() > 1.0001):
            raise ValueError("slices must be in model space [-1, 1] (see data.preprocess)")
        self.x = t.contiguous()
        self.fingerprint = fingerprint or f"{name}:sha256:{hashlib.sha256(self.x.numpy().tobytes()).hexdigest()}"

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def synthetic_ellipses(n: int, seed: int, size: int = 128) -> np.ndarray:
    """Simple body-like ellipses with a few varying factors (tests, fallback demo)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    out = np.full((n, size, size), -1.0, dtype=np.float32)
    for i in range(n):
        a, b = rng.uniform(0.55, 0.85), rng.uniform(0.35, 0.6)
        cy, th = rng.uniform(-0.1, 0.1), rng.uniform(-0.15, 0.15)
        c, s = np.cos(th), np.sin(th)
        u, v = c * xx + s * (yy - cy), -s * xx + c * (yy - cy)
        body = (u / a) ** 2 + (v / b) ** 2 < 1
        lungs = ((np.abs(u) - 0.45 * a) / (0.3 * a)) ** 2 + (v / (0.6 * b)) ** 2 < 1
        img = np.where(body, -0.3, -1.0)
        img = np.where(body & lungs, -0.85, img)
        out[i] = img + rng.normal(0, 0.01, img.shape) * body
    return np.clip(out, -1, 1)


def phantom_slices(n: int, seed: int) -> TensorSlices:
    """In-memory phantom slices (``phantom.sample_slices``)."""
    from ..phantom import sample_slices  # the phantom package's fast in-memory sampler

    x, _factors = sample_slices(n, seed)
    return TensorSlices(x, name=f"phantom(n={n},seed={seed})")


def open_cache(path: str | Path) -> tuple[Dataset, Dataset | None]:
    """Train and test splits of a slice cache written by ``latentdirs prepare``."""
    from ..data.cache import SliceCache
    from ..data.dataset import SliceDataset

    cache = SliceCache(path)
    train = SliceDataset(cache, split="train")
    try:
        test = SliceDataset(cache, split="test")
        if len(test) == 0:
            test = None
    except (KeyError, ValueError):
        test = None
    return train, test


def fingerprint_of(data: Dataset) -> str:
    for obj in (data, getattr(data, "cache", None)):
        fp = getattr(obj, "fingerprint", None)
        if fp:
            return str(fp)
    return "unknown"
