"""``prepare``: a DICOM tree (LIDC-IDRI or any CT folder) -> the training slice cache.

Layout of ``cache_dir``::

    parts/<series UID>.npy    model-space slices of one series (float16 by default)
    parts/<series UID>.json   its slice table and source key; written LAST = "series done"
    parts/<series UID>.skip.json   a series left out, with the reason
    slices.npy                all slices, (N, size, size), one memmap-able array
    table.csv                 row, patient_id, series_uid, slice_index, z_mm, rel_z, instance_number, split
    index.json                fingerprint, counts, settings; written LAST = "cache complete"

Every file is written atomically (temp + rename). A series counts as done only
when its ``.json`` exists and matches its source files and the preprocessing,
so an interrupted run leaves at worst orphan temp files or a part without its
json, both redone (the temp files removed) by the next run. ``index.json`` is
removed before the final arrays are rewritten, so a reader never pairs a new
array with an old index.

A series' identity (its ``source_key``) covers each file's name, size,
modification time and first 16 KiB (every header attribute of an ordinary CT
file), so an edited file -- even one edited in place at the same size --
redoes its series. The cache folder must be new, empty or one of ours
(:func:`~.cache.claim_cache_folder`: a marker file, and the folder lock of
``utils.folderlock`` that keeps two writers apart); a folder with anything else in it is refused. A root
without any usable CT slice is an error, not an empty "complete" cache.
Worker processes die with their parent (``PR_SET_PDEATHSIG`` on Linux, and a
parent-pid watchdog everywhere), so a killed prepare leaves no orphans.

The split is by patient: patients are sorted, shuffled by ``seed`` and the first
``round(test_fraction * n)`` (at least one when there are two or more) go to
"test". Slices are ordered by (patient, series, slice index).
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import hashlib
import io
import json
import logging
import multiprocessing as mp
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..utils.atomic import _fsync_dir, atomic_path, atomic_write_text
from ..utils.processes import completed
from .cache import (
    CACHE_VERSION,
    TABLE_COLUMNS,
    check_cache_folder,
    claim_cache_folder,
    split_patients,
)
from .preprocess import HU_MAX, HU_MIN, Preprocessing

log = logging.getLogger(__name__)

#: Bytes of each file that enter its series' identity (the whole header of an ordinary CT file;
#: discovery reads the same bytes, so they are usually in the page cache already).
HEADER_BYTES = 16384


@dataclass(frozen=True)
class PrepareConfig:
    size: int = 128
    hu_min: float = HU_MIN  # the HU window (recorded in index.json as "preprocessing")
    hu_max: float = HU_MAX
    dtype: str = "float16"
    seed: int = 0
    test_fraction: float = 0.1
    min_slices: int = 2  # single-slice series are skipped (with the reason)
    chunk: int = 16  # slices preprocessed at once in a worker (bounds worker memory)

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(hu_min=self.hu_min, hu_max=self.hu_max, size=self.size)

    def part_settings(self) -> dict:
        """What a part depends on (besides its files): changing any of these redoes it."""
        return {"version": CACHE_VERSION, "size": self.size, "hu_min": self.hu_min, "hu_max": self.hu_max, "dtype": self.dtype, "min_slices": self.min_slices}


class NoUsableSlicesError(ValueError):
    """The root holds no CT series, or none of its series could be read: nothing to cache."""


@dataclass
class PrepareResult:
    cache_dir: Path
    n_slices: int
    n_series: int
    n_patients: int
    processed: int  # series read in this run
    reused: int  # series already done by an earlier run
    skipped: list[dict] = field(default_factory=list)
    fingerprint: str = ""


def _part_name(series_uid: str) -> str:
    # UIDs are digits and dots; anything else (non-conformant files) is hashed to stay a safe name.
    if series_uid and all(c.isdigit() or c == "." for c in series_uid) and len(series_uid) <= 64:
        return series_uid
    return "x" + hashlib.sha1(series_uid.encode()).hexdigest()


def source_key(paths: list[Path]) -> str:
    """Identity of a series' input files: name, size, mtime and the header bytes of each.

    Names and sizes alone let a same-size edit (a changed RescaleIntercept) reuse the
    stale part; the header bytes catch an edit even when the mtime was put back.
    """
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        with open(p, "rb") as fh:
            h.update(hashlib.sha256(fh.read(HEADER_BYTES)).digest())
    return h.hexdigest()


def _worker_init(parent_pid: int) -> None:
    # Die with the parent: a killed prepare must not leave workers holding memory forever.
    from ..utils.processes import die_with_parent

    die_with_parent(parent_pid)
    # One BLAS/OpenMP thread per process: the parallelism is across processes.
    import torch

    torch.set_num_threads(1)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """Make glibc reuse freed blocks for the ~0.5 MB file reads instead of fresh mmaps.

    Every fresh mapping is page-faulted in again; in a worker that reads thousands
    of same-sized files, keeping them in the heap is measurably faster.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 * 2**20)
    libc.mallopt(m_trim_threshold, 256 * 2**20)


def process_series(job: dict) -> dict:
    """Read, preprocess and write one series part, committed (in one process)."""
    return commit_series(compute_series(job))


def compute_series(job: dict) -> dict:
    """Read and preprocess one series (runs in a worker process).

    The array goes to a temp file beside its final name; :func:`commit_series`
    (in the parent, which otherwise only waits) makes it durable and puts it in
    place, so the workers never block on fsync.
    """
    from ..dicom.errors import DicomReadError
    from ..dicom.series import read_series_lazy

    cfg = PrepareConfig(**job["config"])
    parts = Path(job["parts"])
    name = job["name"]
    base = {"series_uid": job["series_uid"], "source_key": job["source_key"], "settings": cfg.part_settings(), "n_files": len(job["paths"])}
    try:
        lazy = read_series_lazy([Path(p) for p in job["paths"]], padding_stats=False)
    except DicomReadError as e:
        return _write_skip(parts, name, base, f"{type(e).__name__}: {e}")
    vol = lazy.volume
    nz, ny, nx = lazy.shape
    if nz < cfg.min_slices:
        return _write_skip(parts, name, base, f"only {nz} slice(s) (< {cfg.min_slices})")
    prep = cfg.preprocessing
    out = np.empty((nz, cfg.size, cfg.size), dtype=cfg.dtype)
    buf = _chunk_buffer(cfg.chunk, ny, nx)
    for i in range(0, nz, cfg.chunk):
        chunk = _fill_model(lazy, i, min(i + cfg.chunk, nz), buf, prep)
        out[i : i + len(chunk)] = prep.resize(chunk)
    del lazy
    digest = hashlib.sha256(memoryview(out).cast("B")).hexdigest()
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.npy.", suffix=".tmp", dir=parts)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    record = {
        **base,
        "status": "done",
        "patient_id": vol.patient_id,
        "study_uid": vol.meta.get("study_uid", ""),
        "n_slices": int(out.shape[0]),
        "shape": list(out.shape),
        "sha256": digest,
        "spacing_zyx_mm": list(vol.spacing),
        "problems": vol.problems,
        "slices": [[s.index, s.z_mm, s.rel_z, s.instance_number] for s in vol.slices],
    }
    return {"name": name, "status": "done", "n_slices": record["n_slices"], "problems": vol.problems, "tmp": tmp, "record": record, "parts": str(parts)}


def commit_series(result: dict) -> dict:
    """Put a computed part in place atomically: array first, then its json (the commit marker)."""
    if result["status"] != "done" or "tmp" not in result:
        return result
    tmp, parts, name = Path(result.pop("tmp")), Path(result.pop("parts")), result["name"]
    record = result.pop("record")
    try:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600, as atomic_path fixes too
        os.replace(tmp, parts / f"{name}.npy")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(parts)
    # The json is the commit marker: written after the array is safely in place.
    atomic_write_text(parts / f"{name}.json", json.dumps(record))
    return result


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_BUFFERS: dict[tuple[int, int, int], np.ndarray] = {}


def _chunk_buffer(chunk: int, ny: int, nx: int) -> np.ndarray:
    """One reused HU buffer per worker and shape: fresh pages cost more than the arithmetic."""
    key = (chunk, ny, nx)
    if key not in _BUFFERS:
        _BUFFERS.clear()
        _BUFFERS[key] = np.empty(key, dtype=np.float32)
    return _BUFFERS[key]


def _fill_model(lazy, start: int, stop: int, out: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Model-space values of slices [start, stop) into ``out[: stop - start]``; returns that view.

    Bit-identical to ``prep.hu_to_model`` of the HU that ``lazy.fill`` gives (a test
    checks every int16 value): slices with integer stored values, slope 1 and an
    integer intercept take a shorter route (:meth:`.Preprocessing.stored_to_model_into`).
    """
    from ..dicom.series import to_hu_into

    view = out[: stop - start]
    for k in range(start, stop):
        s = lazy.kept[k]
        if not prep.stored_to_model_into(lazy.plan.apply(s.raw), s.slope, s.intercept, view[k - start]):
            to_hu_into(s, lazy.plan, view[k - start])
            prep.hu_to_model_inplace(view[k - start])
    return view


def _write_skip(parts: Path, name: str, base: dict, reason: str) -> dict:
    atomic_write_text(parts / f"{name}.skip.json", json.dumps({**base, "status": "skipped", "reason": reason}))
    return {"name": name, "status": "skipped", "reason": reason}


def _load_done(parts: Path, name: str, key: str, settings: dict) -> dict | None:
    """The part's record if it is complete and current, else None (to be redone)."""
    for suffix in (".json", ".skip.json"):
        f = parts / f"{name}{suffix}"
        if not f.exists():
            continue
        try:
            rec = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if rec.get("source_key") != key or rec.get("settings") != settings:
            return None
        if rec["status"] == "done":
            npy = parts / f"{name}.npy"
            try:
                arr = np.load(npy, mmap_mode="r")
            except (OSError, ValueError):
                return None
            if list(arr.shape) != rec["shape"]:
                return None
        return rec
    return None


def _mp_context():
    method = os.environ.get("LATENTDIRS_MP_START")
    if method is None:
        # fork shares the already-imported modules (fast start); elsewhere use spawn.
        method = "fork" if sys.platform.startswith("linux") else "spawn"
    return mp.get_context(method)


def prepare(
    root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    workers: int = 2,
    config: PrepareConfig | None = None,
    progress: bool = True,
    on_series_done: Callable[[dict], None] | None = None,
) -> PrepareResult:
    """Build (or complete) the slice cache for every CT series under ``root``.

    ``on_series_done`` is called in this process after each series (tests use it
    to interrupt deterministically). ``workers <= 1`` runs in this process.
    """
    from ..dicom.discover import discover_series

    cfg = config or PrepareConfig()
    cfg.preprocessing  # noqa: B018 - validates the window and size before anything is read or written
    cache_dir = Path(cache_dir)
    check_cache_folder(cache_dir)  # refuse a foreign folder before the (long) discovery
    found = discover_series(root)
    if not found.series:
        reasons = "; ".join(f"{Path(k.what).name}: {k.reason}" for k in found.skipped[:5])
        raise NoUsableSlicesError(
            f"no CT series under {root} ({len(found.ignored)} non-DICOM file(s) ignored, {len(found.skipped)} left out"
            + (f": {reasons}" if reasons else "") + "); no cache written"
        )
    with claim_cache_folder(cache_dir):
        return _prepare(found, cache_dir, cfg, workers, progress, on_series_done)


def _prepare(found, cache_dir: Path, cfg: PrepareConfig, workers: int, progress: bool,
             on_series_done: Callable[[dict], None] | None) -> PrepareResult:
    from tqdm.auto import tqdm

    parts = cache_dir / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    settings = cfg.part_settings()
    skipped = [{"what": s.what, "reason": s.reason, "n_files": len(s.paths)} for s in found.skipped]
    jobs, records = [], {}
    names: dict[str, str] = {}
    keys: dict[str, str] = {}
    for s in found.series:
        name = _part_name(s.series_uid)
        if name in names:
            raise ValueError(f"two series map to one cache part: {s.series_uid} / {names[name]}")
        names[name] = s.series_uid
        key = keys[name] = source_key(s.paths)
        rec = _load_done(parts, name, key, settings)
        if rec is not None:
            records[name] = rec
            continue
        jobs.append({
            "name": name, "series_uid": s.series_uid, "paths": [str(p) for p in s.paths],
            "source_key": key, "parts": str(parts), "config": asdict(cfg),
        })
    reused = len(records)
    log.info("%d series found, %d already done, %d to process", len(found.series), reused, len(jobs))

    total = sum(len(j["paths"]) for j in jobs)
    bar = tqdm(total=total, unit="slice", desc="prepare", disable=not progress, dynamic_ncols=True)

    def finished(job: dict, result: dict) -> None:
        bar.update(len(job["paths"]))
        if result["status"] == "skipped":
            log.info("skipping series %s: %s", job["series_uid"], result["reason"])
        elif result.get("problems"):
            # Kept (the caller decides), but said out loud; also listed in index.json.
            log.info("series %s: %s", job["series_uid"], "; ".join(result["problems"]))
        if on_series_done is not None:
            on_series_done(result)

    try:
        if workers <= 1 or len(jobs) <= 1:
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as in the workers: identical numbers either way
            try:
                for job in jobs:
                    finished(job, commit_series(compute_series(job)))
            finally:
                torch.set_num_threads(threads)
        else:
            # Largest series first so the pool does not end waiting on one long series.
            jobs.sort(key=lambda j: -len(j["paths"]))
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_worker_init,
                                        initargs=(os.getpid(),)) as pool:
                futures = {pool.submit(compute_series, j): j for j in jobs}
                taken = set()
                try:
                    for fut in completed(futures):  # a signal ends the wait safely
                        taken.add(fut)
                        finished(futures[fut], commit_series(fut.result()))
                except BaseException:
                    for f in futures:
                        f.cancel()
                    pool.shutdown(wait=True)
                    # Arrays computed but never committed would stay behind as temp files.
                    for f in futures:
                        if f not in taken and not f.cancelled() and f.exception() is None:
                            tmp = f.result().get("tmp")
                            if tmp:
                                Path(tmp).unlink(missing_ok=True)
                    raise
    finally:
        bar.close()

    for name in names:
        if name not in records:
            rec = _load_done(parts, name, keys[name], settings)
            if rec is None:
                raise RuntimeError(f"series {names[name]} has no complete part after processing")
            records[name] = rec
    return _finalise(cache_dir, cfg, records, skipped, processed=len(jobs), reused=reused)


def _table_csv(done: list[tuple[str, dict]], split: dict[str, str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TABLE_COLUMNS)
    row = 0
    for _, rec in done:
        for index, z, rel, inst in rec["slices"]:
            w.writerow([row, rec["patient_id"], rec["series_uid"], index, repr(float(z)), repr(float(rel)), "" if inst is None else inst, split[rec["patient_id"]]])
            row += 1
    return buf.getvalue()


def _concatenate_parts(files: list[Path], out: Path, dtype: np.dtype, shape: tuple[int, int, int]) -> None:
    """Write the parts one after another as one .npy (the same bytes as filling an open_memmap).

    Plain sequential writes, and in-kernel copies where the part is already in the
    final dtype and layout: a freshly mapped output file would page-fault on every
    page and then need an msync.
    """
    fmt = np.lib.format
    rows = 0
    with open(out, "wb") as dst:
        fmt.write_array_header_1_0(dst, {"descr": fmt.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
        for f in files:
            with open(f, "rb") as src:
                version = fmt.read_magic(src)
                read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"cache part {f} has .npy format version {version}")
                part_shape, fortran, part_dtype = read_header(src)
                if part_shape[1:] != shape[1:] or rows + part_shape[0] > shape[0]:
                    raise ValueError(f"cache part {f} has shape {part_shape}, expected (k, {shape[1]}, {shape[2]})")
                rows += part_shape[0]
                if part_dtype == dtype and not fortran:
                    dst.flush()
                    _copy_range(src, dst, part_dtype.itemsize * int(np.prod(part_shape)))
                else:
                    dst.write(np.ascontiguousarray(np.load(f), dtype=dtype).tobytes())
        if rows != shape[0]:
            raise ValueError(f"cache parts hold {rows} slices, expected {shape[0]}")


def _copy_range(src, dst, nbytes: int) -> None:
    """Copy ``nbytes`` from the current position of ``src`` to the end of ``dst``."""
    fin, fout = src.fileno(), dst.fileno()
    offset = src.tell()
    try:
        while nbytes > 0:
            # In-kernel copy; raises on file systems / kernels without support.
            done = os.copy_file_range(fin, fout, nbytes, offset)
            if done == 0:
                raise OSError("short copy")
            offset += done
            nbytes -= done
    except (AttributeError, OSError):
        _copy_blocks(src, dst, offset, nbytes)
    dst.seek(0, os.SEEK_END)


def _copy_blocks(src, dst, offset: int, nbytes: int) -> None:
    src.seek(offset)
    while nbytes > 0:
        block = src.read(min(nbytes, 8 * 2**20))
        if not block:
            raise ValueError(f"cache part {src.name} is truncated")
        dst.write(block)
        nbytes -= len(block)


def _finalise(cache_dir: Path, cfg: PrepareConfig, records: dict, skipped: list, *, processed: int, reused: int) -> PrepareResult:
    parts = cache_dir / "parts"
    done = sorted(((n, r) for n, r in records.items() if r["status"] == "done"), key=lambda nr: (nr[1]["patient_id"], nr[1]["series_uid"]))
    skipped = skipped + [{"what": r["series_uid"], "reason": r["reason"], "n_files": r.get("n_files", 0)} for r in records.values() if r["status"] == "skipped"]
    n = sum(r["n_slices"] for _, r in done)
    if n == 0:
        reasons = "; ".join(f"{s['what']}: {s['reason']}" for s in skipped[:5])
        raise NoUsableSlicesError(f"none of the {len(records)} CT series could be used ({reasons}); no cache written")
    split = split_patients([r["patient_id"] for _, r in done], cfg.seed, cfg.test_fraction)
    table = _table_csv(done, split)
    fp = hashlib.sha256()
    fp.update(json.dumps({"settings": cfg.part_settings(), "seed": cfg.seed, "test_fraction": cfg.test_fraction}, sort_keys=True).encode())
    for _, r in done:
        fp.update(r["sha256"].encode())
    fp.update(table.encode())
    fingerprint = fp.hexdigest()[:16]

    index_path = cache_dir / "index.json"
    if index_path.exists():
        try:
            old = json.loads(index_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("fingerprint") == fingerprint and (cache_dir / "slices.npy").exists():
            log.info("cache %s is up to date (fingerprint %s)", cache_dir, fingerprint)
            return PrepareResult(cache_dir, n, len(done), len(split), processed, reused, skipped, fingerprint)
        index_path.unlink()  # from here until the new index lands, the cache reads as incomplete

    with atomic_path(cache_dir / "slices.npy") as tmp:
        _concatenate_parts([parts / f"{name}.npy" for name, _ in done], tmp, np.dtype(cfg.dtype), (n, cfg.size, cfg.size))
    atomic_write_text(cache_dir / "table.csv", table)
    counts = {s: sum(r["n_slices"] for _, r in done if split[r["patient_id"]] == s) for s in ("train", "test")}
    index = {
        "version": CACHE_VERSION,
        "fingerprint": fingerprint,
        "n_slices": n,
        "shape": [n, cfg.size, cfg.size],
        "dtype": cfg.dtype,
        "value_range": [-1.0, 1.0],
        "preprocessing": cfg.preprocessing.to_dict(),
        "config": asdict(cfg),
        "counts": counts,
        "patients": {s: sorted(p for p, v in split.items() if v == s) for s in ("train", "test")},
        "series": [
            {"series_uid": r["series_uid"], "patient_id": r["patient_id"], "n_slices": r["n_slices"], "sha256": r["sha256"], "spacing_zyx_mm": r["spacing_zyx_mm"], "problems": r["problems"]}
            for _, r in done
        ],
        "skipped": skipped,
    }
    atomic_write_text(index_path, json.dumps(index, indent=1))
    log.info("cache %s: %d slices from %d series of %d patients (fingerprint %s)", cache_dir, n, len(done), len(split), fingerprint)
    return PrepareResult(cache_dir, n, len(done), len(split), processed, reused, skipped, fingerprint)
