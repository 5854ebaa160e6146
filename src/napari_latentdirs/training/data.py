"""Training data sources for the engines.

An engine takes a ``torch.utils.data.Dataset`` whose items are (1, 128, 128)
float32 tensors in model space [-1, 1], with an optional ``fingerprint``
attribute recorded in checkpoints. Sources: the slice cache written by
``latentdirs prepare`` (``data.cache.SliceCache`` + ``data.dataset.SliceDataset``),
in-memory phantom slices, any array via :class:`TensorSlices`, or a ``.npy``
file memory-mapped by :class:`NpySlices`.

Arrays from outside (``.npy``, in-memory) are checked when opened: finite,
in [-1, 1], (N, H, W) or (N, 1, H, W). A slice cache is not rescanned here:
``prepare`` writes only finite values, and the engines stop with the bad
items named if a non-finite loss ever appears.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.preprocess import DEFAULT, Preprocessing

RANGE_TOLERANCE = 1e-4  # float16 storage rounds 1.0 to 1.0 exactly; allow a little slack anyway
CHUNK_BYTES = 8 << 20  # checks and hashes read the data in pieces this big


class BadSlicesError(ValueError):
    """Training slices that cannot be used (shape, dtype, range, NaN/inf); the message names the source."""


def _check_block(block: np.ndarray, first: int, what: str) -> None:
    """Refuse non-finite or out-of-range values in rows ``first..`` of ``block`` (float32)."""
    flat = block.reshape(block.shape[0], -1)
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
        i = first + int(np.argmin(finite))
        raise BadSlicesError(f"{what}: slice {i} has non-finite pixels (NaN or inf); training data must be finite "
                             "model-space values in [-1, 1]")
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    bad = (lo < -1 - RANGE_TOLERANCE) | (hi > 1 + RANGE_TOLERANCE)
    if bad.any():
        i = int(np.argmax(bad))
        raise BadSlicesError(f"{what}: slice {first + i} has values in [{lo[i]:.4g}, {hi[i]:.4g}]; slices must be in "
                             "model space [-1, 1] (see data.preprocess)")


class TensorSlices(Dataset):
    """(N, H, W) or (N, 1, H, W) model-space slices held in memory."""

    def __init__(self, x: np.ndarray | torch.Tensor, fingerprint: str | None = None, name: str = "array") -> None:
        t = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if t.ndim == 3:
            t = t[:, None]
        if t.ndim != 4 or t.shape[1] != 1:
            raise BadSlicesError(f"{name}: expected (N, H, W) or (N, 1, H, W) slices, got {tuple(t.shape)}")
        self.x = t.contiguous()
        if self.x.numel():
            _check_block(self.x.numpy(), 0, name)
        self.fingerprint = fingerprint or f"{name}:sha256:{hashlib.sha256(self.x.numpy().tobytes()).hexdigest()}"

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


class NpySlices(Dataset):
    """A ``.npy`` of (N, H, W) or (N, 1, H, W) model-space slices, memory-mapped.

    Nothing is loaded whole: every rank of a DDP run maps the same file (the
    page cache holds it once), and the opening check and the fingerprint read
    it in chunks with ``pread``. The fingerprint equals :class:`TensorSlices`'
    for the same array and name, so runs started from either resume with the other.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        what = f"--data {self.path}"
        try:
            arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:  # object arrays need pickle; refused
            raise BadSlicesError(f"{what}: not a numeric .npy array ({exc})") from exc
        except OSError as exc:
            raise BadSlicesError(f"{what}: cannot read it as a .npy file ({exc})") from exc
        if not isinstance(arr, np.memmap) or arr.dtype.kind != "f":
            raise BadSlicesError(f"{what}: expected floating-point slices, found dtype {arr.dtype}")
        arr = _squeeze_channel(arr)
        if arr.ndim != 3:
            raise BadSlicesError(f"{what}: expected (N, H, W) or (N, 1, H, W) slices, got shape {tuple(arr.shape)}")
        self.shape = tuple(int(s) for s in arr.shape)
        self.dtype = arr.dtype
        self._contiguous = bool(arr.flags.c_contiguous)
        self._offset = int(getattr(arr, "offset", 0))
        self._mm: np.ndarray | None = arr
        h = hashlib.sha256()
        for first, block in self._blocks():
            _check_block(block, first, what)
            h.update(block)  # the buffer itself: no copy
        self.fingerprint = f"{self.path.name}:sha256:{h.hexdigest()}"

    def _blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 C-order rows) in chunks, read with pread (RSS stays flat)."""
        n, hgt, wid = self.shape
        row = hgt * wid * self.dtype.itemsize
        per = max(1, CHUNK_BYTES // max(row, 1))
        if not self._contiguous:  # Fortran order: no contiguous rows to pread
            for a in range(0, n, per):
                yield a, np.ascontiguousarray(self._array()[a : a + per], dtype=np.float32)
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for a in range(0, n, per):
                k = min(per, n - a)
                raw = os.pread(fd, k * row, self._offset + a * row)
                if len(raw) != k * row:
                    raise BadSlicesError(f"--data {self.path}: the file is shorter than its header says")
                yield a, np.asarray(np.frombuffer(raw, dtype=self.dtype).reshape(k, hgt, wid), dtype=np.float32)
        finally:
            os.close(fd)

    def _array(self) -> np.ndarray:
        if self._mm is None:
            self._mm = _squeeze_channel(np.load(self.path, mmap_mode="r", allow_pickle=False))
        return self._mm

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mm"] = None  # DataLoader workers map the file themselves (a memmap pickles as a full copy)
        return state

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self._array()[i], dtype=np.float32))[None]

    def __getitems__(self, idx: list[int]) -> list[torch.Tensor]:
        block = np.array(self._array()[np.asarray(idx, dtype=np.int64)], dtype=np.float32)
        return list(torch.from_numpy(block)[:, None])


def _squeeze_channel(arr: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) -> (N, H, W) as a view (never a copy of the mapped file)."""
    return arr[:, 0] if arr.ndim == 4 and arr.shape[1] == 1 else arr


def check_slices(data: Dataset, image_size: int, channels: int, what: str) -> None:
    """Refuse data whose slices do not have the model's size, before any step runs."""
    if len(data) == 0:
        raise BadSlicesError(f"{what}: no slices")
    item = torch.as_tensor(data[0])
    shape = tuple(item.shape)
    if item.ndim == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[0] != channels or shape[1:] != (image_size, image_size):
        got = "x".join(str(s) for s in shape[1:]) if len(shape) == 3 else str(tuple(item.shape))
        raise BadSlicesError(
            f"{what}: the slices are {got} with {shape[0] if len(shape) == 3 else '?'} channel(s), but the model is "
            f"built for {channels}-channel {image_size}x{image_size} images; prepare the data at --size {image_size} "
            f"(or set model.image_size to the data's size)")


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


def preprocessing_of_data(data: Dataset) -> Preprocessing:
    """The preprocessing (HU window) of training data: a slice cache's recorded one (also
    through a dataset over it, or any source with a ``preprocessing``), else the
    default -- fresh phantom slices are made with it, and plain arrays are taken as such."""
    for obj in (data, getattr(data, "cache", None)):
        prep = getattr(obj, "preprocessing", None)
        if isinstance(prep, Preprocessing):
            return prep
        if isinstance(prep, dict):
            return Preprocessing.from_dict(prep)
    return DEFAULT


def fingerprint_of(data: Dataset) -> str:
    for obj in (data, getattr(data, "cache", None)):
        fp = getattr(obj, "fingerprint", None)
        if fp:
            return str(fp)
    return "unknown"
