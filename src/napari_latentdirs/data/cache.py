"""The slice cache on disk: one (N, size, size) ``.npy`` array + a slice table + ``index.json``.

Values are in model space [-1, 1] (see :mod:`.preprocess`), stored as float16
by default. ``index.json`` is written last by :func:`~.prepare.prepare`; a cache
without it is incomplete and refuses to open.

Reading: :meth:`SliceCache.read` uses ``os.pread`` on the array file rather
than a memory map. Pages of a memory map that have been touched count towards
the process RSS until the kernel reclaims them, so an epoch over a memmapped
8 GB cache looks like an 8 GB process; ``pread`` goes through the page cache,
which is not charged to the process, and RSS stays flat. :attr:`SliceCache.array`
still offers the read-only memmap for ad-hoc access.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_path, atomic_write_text
from ..utils.folderlock import LOCK_NAME, FolderBusyError, hold_folder
from .preprocess import Preprocessing


class CacheIncompleteError(RuntimeError):
    """The folder is not a complete cache (prepare did not finish, or files are missing)."""


class CacheFolderError(FileExistsError):
    """The cache folder holds files we did not write, or another prepare is writing it."""


#: Written first into every cache folder: the folder is ours (the lock is utils.folderlock's LOCK_NAME).
CACHE_MARKER = ".latentdirs-cache"
CACHE_FORMAT = "napari-latentdirs/cache/1"
#: The cache layout's version, recorded in ``index.json`` and in prepare's per-series settings.
CACHE_VERSION = 1
#: The slice table's columns (``table.csv``), in order.
TABLE_COLUMNS = ("row", "patient_id", "series_uid", "slice_index", "z_mm", "rel_z", "instance_number", "split")
_OUR_NAMES = {"parts", "slices.npy", "table.csv", "index.json", CACHE_MARKER, LOCK_NAME}


def _our_index(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and {"version", "fingerprint", "preprocessing", "shape"} <= set(doc)


def _our_parts(parts: Path) -> bool:
    """An interrupted cache of an older version: a parts/ folder with at least one of our records."""
    for f in sorted(parts.glob("*.json"))[:8]:
        try:
            rec = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and {"series_uid", "source_key", "settings", "status"} <= set(rec):
            return True
    return False


def check_cache_folder(path: str | os.PathLike) -> None:
    """Raise CacheFolderError unless ``path`` is absent, empty, or a cache we wrote.

    Ours: it has our marker, or (caches from before the marker) a valid index.json
    or parts/ with our records, and nothing but our own names besides.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise CacheFolderError(f"cache folder {path} exists and is not a folder")
    entries = sorted(e.name for e in os.scandir(path) if e.name != LOCK_NAME)  # a lock file alone: empty
    if not entries:
        return
    if CACHE_MARKER in entries:
        try:
            marker = json.loads((path / CACHE_MARKER).read_text() or "{}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            marker = {}
        if isinstance(marker, dict) and marker.get("format") == CACHE_FORMAT:
            return
    foreign = [e for e in entries if e not in _OUR_NAMES and not (e.startswith(".") and e.endswith(".tmp"))]
    legacy = (path / "index.json").is_file() and _our_index(path / "index.json") or (path / "parts").is_dir() and _our_parts(path / "parts")
    if legacy and not foreign:
        return
    shown = ", ".join((foreign or entries)[:3]) + (", ..." if len(foreign or entries) > 3 else "")
    raise CacheFolderError(
        f"cache folder {path} is not empty ({len(entries)} entries: {shown}) and was not written by "
        "`latentdirs prepare`; nothing was changed. Choose a new or empty folder"
    )


@contextlib.contextmanager
def claim_cache_folder(path: str | os.PathLike):
    """Check ``path`` (see :func:`check_cache_folder`), mark it ours, and hold its lock
    (``utils.folderlock``: the one lock of every folder a command writes).

    With the lock held, temporary files left by a killed earlier run are removed:
    no other process can be writing them.
    """
    path = Path(path)
    check_cache_folder(path)
    try:
        with hold_folder(path):
            marker = path / CACHE_MARKER
            if not marker.is_file() or marker.stat().st_size == 0:
                atomic_write_text(marker, json.dumps({"format": CACHE_FORMAT}))
            for folder in (path, path / "parts"):
                for tmp in folder.glob(".*.tmp"):
                    if tmp.is_file() and not tmp.is_symlink():
                        tmp.unlink(missing_ok=True)
            yield path
    except FolderBusyError as e:
        raise CacheFolderError(f"cache folder {e}") from None


@dataclass
class SliceTable:
    """One entry per cached slice, in array order."""

    patient_id: np.ndarray
    series_uid: np.ndarray
    slice_index: np.ndarray
    z_mm: np.ndarray
    rel_z: np.ndarray
    instance_number: np.ndarray  # -1 where the file had none
    split: np.ndarray

    def __len__(self) -> int:
        return len(self.split)

    @classmethod
    def read_csv(cls, path: Path) -> SliceTable:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            cols = list(zip(*reader)) or [()] * len(header)
        c = dict(zip(header, cols))
        return cls(
            patient_id=np.asarray(c["patient_id"], dtype=object),
            series_uid=np.asarray(c["series_uid"], dtype=object),
            slice_index=np.asarray(c["slice_index"], dtype=np.int64),
            z_mm=np.asarray(c["z_mm"], dtype=np.float64),
            rel_z=np.asarray(c["rel_z"], dtype=np.float32),
            instance_number=np.asarray([int(v) if v else -1 for v in c["instance_number"]], dtype=np.int64),
            split=np.asarray(c["split"], dtype=object),
        )


def split_patients(patients: list[str], seed: int, test_fraction: float) -> dict[str, str]:
    """Deterministic patient-level split (never by slice)."""
    ordered = sorted(set(patients))
    n = len(ordered)
    n_test = 0
    if test_fraction > 0 and n >= 2:
        n_test = min(n - 1, max(1, round(test_fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    test = {ordered[i] for i in perm[:n_test]}
    return {p: ("test" if p in test else "train") for p in ordered}


class SliceCache:
    """Read access to a prepared cache. ``len(cache)`` slices of ``(size, size)``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        index_path = self.path / "index.json"
        if not index_path.exists():
            raise CacheIncompleteError(f"{self.path} is not a complete slice cache (no index.json: run `latentdirs prepare`)")
        self.index = json.loads(index_path.read_text())
        self.fingerprint: str = self.index["fingerprint"]
        self.preprocessing = Preprocessing.from_dict(self.index["preprocessing"])
        self.size = int(self.index["shape"][1])
        self.dtype = np.dtype(self.index["dtype"])
        self._array_path = self.path / "slices.npy"
        self._offset = self._check_array()
        self._slice_bytes = self.size * self.size * self.dtype.itemsize
        self._table: SliceTable | None = None
        self._fd: int | None = None
        self._fd_pid: int | None = None

    def _check_array(self) -> int:
        try:
            with open(self._array_path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = reader(fh)
                offset = fh.tell()
        except (OSError, ValueError) as e:
            raise CacheIncompleteError(f"{self._array_path}: unreadable slice array ({e})") from e
        if list(shape) != list(self.index["shape"]) or dtype != self.dtype or fortran:
            raise CacheIncompleteError(f"{self._array_path}: array {shape} {dtype} does not match index.json {self.index['shape']} {self.dtype}")
        expected = offset + int(np.prod(shape)) * dtype.itemsize
        if self._array_path.stat().st_size < expected:
            raise CacheIncompleteError(f"{self._array_path}: file is shorter than its header says")
        return offset

    def __len__(self) -> int:
        return int(self.index["n_slices"])

    def __repr__(self) -> str:
        return f"SliceCache({str(self.path)!r}, n={len(self)}, size={self.size}, fingerprint={self.fingerprint!r})"

    def __getstate__(self):
        # DataLoader workers get their own file descriptor.
        state = dict(self.__dict__)
        state["_fd"] = state["_fd_pid"] = None
        return state

    @property
    def table(self) -> SliceTable:
        if self._table is None:
            self._table = SliceTable.read_csv(self.path / "table.csv")
            if len(self._table) != len(self):
                raise CacheIncompleteError(f"table.csv has {len(self._table)} rows, index.json says {len(self)}")
        return self._table

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.index["counts"])

    @property
    def array(self) -> np.memmap:
        """Read-only memmap of all slices (N, size, size); see the module note on RSS."""
        return np.load(self._array_path, mmap_mode="r")

    def indices(self, split: str | None = None) -> np.ndarray:
        """Row numbers of a split ("train"/"test"), or all rows for None."""
        if split is None:
            return np.arange(len(self))
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train', 'test' or None, not {split!r}")
        return np.flatnonzero(self.table.split == split)

    def patients(self, split: str | None = None) -> list[str]:
        if split is None:
            return sorted(self.index["patients"]["train"] + self.index["patients"]["test"])
        return list(self.index["patients"][split])

    def _file(self) -> int:
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self._array_path, os.O_RDONLY)
            self._fd_pid = os.getpid()
        return self._fd

    def read(self, i: int) -> np.ndarray:
        """Slice ``i`` as float32 (size, size) in [-1, 1]."""
        if not 0 <= i < len(self):
            raise IndexError(f"slice {i} out of range for {len(self)} slices")
        data = os.pread(self._file(), self._slice_bytes, self._offset + i * self._slice_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(self.size, self.size).astype(np.float32)

    def read_many(self, rows: Sequence[int]) -> np.ndarray:
        """Slices ``rows`` as float32 (k, size, size); consecutive rows are read in one call."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.size, self.size), dtype=np.float32)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"slice rows out of range for {len(self)} slices")
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        breaks = np.flatnonzero(np.diff(srt) != 1) + 1
        fd = self._file()
        for run in np.split(np.arange(len(srt)), breaks):
            first, k = int(srt[run[0]]), len(run)
            data = os.pread(fd, k * self._slice_bytes, self._offset + first * self._slice_bytes)
            out[order[run]] = np.frombuffer(data, dtype=self.dtype).reshape(k, self.size, self.size)
        return out

    def close(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = self._fd_pid = None

    def __del__(self):
        with contextlib.suppress(OSError, AttributeError):
            self.close()


def build_cache(
    cache_dir: str | os.PathLike,
    slices: np.ndarray | None = None,
    *,
    patient_ids: Sequence[str],
    n: int | None = None,
    size: int = 128,
    rel_z: Sequence[float] | None = None,
    z_mm: Sequence[float] | None = None,
    series_uids: Sequence[str] | None = None,
    seed: int = 0,
    test_fraction: float = 0.1,
    dtype: str = "float16",
) -> SliceCache:
    """A cache from model-space slices already in memory (phantoms, synthetic benchmarks).

    With ``slices=None`` the array is a sparse all-zero file of ``n`` slices
    (no disk space used): for memory benchmarks at full LIDC scale.
    """
    cache_dir = Path(cache_dir)
    with claim_cache_folder(cache_dir):  # never over someone else's table.csv / index.json
        return _build_cache(cache_dir, slices, list(patient_ids), n, size, rel_z, z_mm, series_uids, seed, test_fraction, dtype)


def _build_cache(
    cache_dir: Path,
    slices: np.ndarray | None,
    patient_ids: list[str],
    n: int | None,
    size: int,
    rel_z: Sequence[float] | None,
    z_mm: Sequence[float] | None,
    series_uids: Sequence[str] | None,
    seed: int,
    test_fraction: float,
    dtype: str,
) -> SliceCache:
    if slices is not None:
        slices = np.asarray(slices)
        if slices.ndim != 3 or slices.shape[1] != slices.shape[2]:
            raise ValueError(f"slices must be (N, size, size), got {slices.shape}")
        n, size = slices.shape[0], slices.shape[1]
        if np.nanmin(slices) < -1 or np.nanmax(slices) > 1:
            raise ValueError("slices must be in model space [-1, 1]")
    if n is None or len(patient_ids) != n:
        raise ValueError("patient_ids must give one patient per slice")
    series_uids = list(series_uids) if series_uids is not None else [f"series-{p}" for p in patient_ids]
    rel = np.zeros(n) if rel_z is None else np.asarray(rel_z, dtype=np.float64)
    zs = rel * 300.0 if z_mm is None else np.asarray(z_mm, dtype=np.float64)
    split = split_patients(list(patient_ids), seed, test_fraction)
    index_path = cache_dir / "index.json"
    index_path.unlink(missing_ok=True)

    digest = hashlib.sha256()
    with atomic_path(cache_dir / "slices.npy") as tmp:
        if slices is None:
            with open(tmp, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": (n, size, size)})
                fh.truncate(fh.tell() + n * size * size * np.dtype(dtype).itemsize)
            digest.update(f"sparse zeros {n} {size} {dtype}".encode())
        else:
            data = slices.astype(dtype)
            digest.update(data.tobytes())
            with open(tmp, "wb") as fh:
                np.save(fh, data)
    lines = [",".join(TABLE_COLUMNS)]
    counters: dict[str, int] = {}
    for i in range(n):
        s = series_uids[i]
        k = counters.get(s, 0)
        counters[s] = k + 1
        lines.append(f"{i},{patient_ids[i]},{s},{k},{float(zs[i])!r},{float(rel[i])!r},,{split[patient_ids[i]]}")
    table = "\n".join(lines) + "\n"
    atomic_write_text(cache_dir / "table.csv", table)
    digest.update(table.encode())
    counts = {sp: int(sum(1 for p in patient_ids if split[p] == sp)) for sp in ("train", "test")}
    prep = Preprocessing(size=size)
    index = {
        "version": CACHE_VERSION,
        "fingerprint": digest.hexdigest()[:16],
        "n_slices": int(n),
        "shape": [int(n), int(size), int(size)],
        "dtype": str(np.dtype(dtype)),
        "value_range": [-1.0, 1.0],
        "preprocessing": prep.to_dict(),
        "config": {"seed": seed, "test_fraction": test_fraction, "source": "build_cache"},
        "counts": counts,
        "patients": {sp: sorted(p for p, v in split.items() if v == sp) for sp in ("train", "test")},
        "series": [],
        "skipped": [],
    }
    atomic_write_text(index_path, json.dumps(index, indent=1))
    return SliceCache(cache_dir)
