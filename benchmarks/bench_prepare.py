"""Benchmark: `prepare` throughput vs plain pydicom decoding, and Dataset RSS at LIDC scale.

    .venv/bin/python benchmarks/bench_prepare.py            # both parts
    .venv/bin/python benchmarks/bench_prepare.py --no-rss   # throughput only

1. Throughput. Writes a synthetic LIDC-like tree (512x512 int16 CT series, one
   per patient, with XML files beside them), then measures in the same run:
   - bound: slices/s of plain pydicom, one process: ``dcmread(f).pixel_array`` per file;
   - figure: slices/s of ``prepare(..., workers=2)`` end to end (discovery, strict
     reading, HU, paper preprocessing to 128x128, atomic parts, final array + table).
   Prints figure / bound (goal >= 0.8). The page cache is warmed first and the
   bound is taken before and after, the better of the two kept.
2. Memory. A sparse (no disk use) 246,016 x 128 x 128 float16 cache is read for
   one full shuffled epoch through ``SliceDataset`` + ``DataLoader(batch_size=256)``;
   prints peak RSS / 3 GB (goal < 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

LIDC_SLICES = 246_016
RSS_BOUND = 3 * 2**30


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), platform.processor())
    except OSError:
        model = platform.processor()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.node()}: {model}, {os.cpu_count()} logical CPUs, load avg {load:.2f}, Python {platform.python_version()}, pydicom {pydicom.__version__}"


def write_tree(root: Path, patients: int, slices: int, matrix: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:matrix, :matrix]
    body = ((yy - matrix / 2) / (0.35 * matrix)) ** 2 + ((xx - matrix / 2) / (0.45 * matrix)) ** 2 < 1
    fov = (yy - matrix / 2) ** 2 + (xx - matrix / 2) ** 2 < (matrix / 2) ** 2
    files = []
    for p in range(patients):
        pid = f"LIDC-IDRI-{p + 1:04d}"
        folder = root / pid / f"1.3.6.1.4.1.14519.5.2.1.{p}" / f"1.3.6.1.4.1.14519.5.2.1.{p}.1"
        folder.mkdir(parents=True)
        series_uid, study_uid = generate_uid(), generate_uid()
        for k in range(slices):
            raw = np.where(body, rng.integers(900, 1100, (matrix, matrix)), 24).astype(np.int16)
            raw[~fov] = -2000
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
            ds.Modality, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CT", pid, study_uid, series_uid
            ds.InstanceNumber = slices - k
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.ImagePositionPatient = [-180.0, -180.0, -300.0 + 2.5 * k]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.PixelSpacing = [0.703125, 0.703125]
            ds.SliceThickness = 2.5
            ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.Rows = ds.Columns = matrix
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.PixelPaddingValue = -2000
            ds.PixelData = raw.tobytes()
            path = folder / f"1-{k + 1:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
        (folder / "069.xml").write_text("<LidcReadMessage/>")
    return files


def cpu_seconds() -> float:
    """CPU time (user + sys) of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def plain_pydicom(files: list[Path]) -> tuple[float, float]:
    """(slices/s, CPU ms per slice) of plain pydicom decoding."""
    t, c = time.perf_counter(), cpu_seconds()
    total = 0
    for f in files:
        total += int(pydicom.dcmread(f).pixel_array[0, 0])
    return len(files) / (time.perf_counter() - t), (cpu_seconds() - c) / len(files) * 1e3


def bench_throughput(args) -> None:
    from napari_latentdirs.data.prepare import prepare

    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        tmp = Path(tmp)
        files = write_tree(tmp / "lidc", args.patients, args.slices, args.matrix)
        for f in files:  # warm the page cache for both contenders
            f.read_bytes()
        bound1, cpu1 = plain_pydicom(files)
        t, c = time.perf_counter(), cpu_seconds()
        res = prepare(tmp / "lidc", tmp / "cache", workers=args.workers, progress=False)
        figure = res.n_slices / (time.perf_counter() - t)
        fig_cpu = (cpu_seconds() - c) / res.n_slices * 1e3
        bound2, cpu2 = plain_pydicom(files)
        bound, bound_cpu = max(bound1, bound2), min(cpu1, cpu2)
        assert res.n_slices == len(files), (res.n_slices, len(files))
        print(f"tree: {args.patients} series x {args.slices} slices of {args.matrix}^2 int16 ({len(files)} files)")
        print(f"bound  plain pydicom, 1 process:   {bound:8.1f} slices/s  (runs: {bound1:.1f}, {bound2:.1f}); CPU {bound_cpu:.2f} ms/slice")
        print(f"figure prepare, {args.workers} processes:       {figure:8.1f} slices/s; CPU {fig_cpu:.2f} ms/slice (all processes)")
        print(f"ratio  prepare / pydicom = {figure / bound:.2f}  (goal >= 0.8)")
        print(f"CPU-cost ratio pydicom / prepare = {bound_cpu / fig_cpu:.2f}  (prepare also discovers, validates, preprocesses and writes)")


def bench_rss(args) -> None:
    import torch
    from torch.utils.data import DataLoader

    from napari_latentdirs.data.cache import build_cache
    from napari_latentdirs.data.dataset import SliceDataset

    n = args.rss_slices
    with tempfile.TemporaryDirectory(prefix="bench_rss_") as tmp:
        patients = [f"P{i // 244:04d}" for i in range(n)]
        cache = build_cache(tmp, None, n=n, size=128, patient_ids=patients, test_fraction=0.0)
        ds = SliceDataset(cache, "train")
        loader = DataLoader(ds, batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(0))
        t = time.perf_counter()
        seen = 0
        for batch in loader:
            seen += batch.shape[0]
        dt = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        size = os.path.getsize(Path(tmp) / "slices.npy")
        print(f"cache: {n} x 128 x 128 float16 ({size / 2**30:.2f} GiB, sparse); one shuffled epoch of {seen} slices in {dt:.1f} s")
        print(f"figure peak RSS {peak / 2**30:.2f} GiB; bound 3 GiB; ratio {peak / RSS_BOUND:.2f} (goal < 1)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--slices", type=int, default=150)
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rss-slices", type=int, default=LIDC_SLICES)
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--no-throughput", action="store_true")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    if not args.no_throughput:
        bench_throughput(args)
    if not args.no_rss:
        bench_rss(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
