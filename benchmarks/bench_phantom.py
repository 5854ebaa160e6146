"""Phantom generation speed.

Measured in one run on this machine:

- ``tree``: ``write_phantom_tree`` for 20 patients x 100 slices at 512 x 512
  (render + noise + DICOM encode + write, ground truth table). Goal: < 60 s.
- ``bound``: writing the same number of 512 x 512 CT files with the same
  writer from an already rendered constant volume (DICOM encoding and disk I/O
  only: the floor any phantom tree costs here).
- ``sample_slices``: in-memory 128 x 128 slices for training. Goal: >= 100 slices/s.

Prints slices/s for each, the tree time as a ratio to the 60 s goal and to
the bound, and the machine. Usage: ``python benchmarks/bench_phantom.py
[--patients 20] [--slices 100] [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import machine
from napari_latentdirs.dicom.write import write_ct_series
from napari_latentdirs.phantom import sample_slices, write_phantom_tree


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (pool workers)."""
    t = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        t += r.ru_utime + r.ru_stime
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--sample", type=int, default=500)
    args = ap.parse_args()
    n_total = args.patients * args.slices
    print("machine:", machine())
    with tempfile.TemporaryDirectory() as tmp:
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        m = write_phantom_tree(Path(tmp) / "tree", args.patients, seed=0, matrix=args.matrix, n_slices=args.slices, workers=args.workers)
        t_tree = time.perf_counter() - t0
        c_tree = cpu_seconds() - c0
        n_written = sum(s["n_slices_written"] for s in m["series"])
        vol = np.zeros((args.slices, args.matrix, args.matrix), dtype=np.float32)
        z = np.arange(args.slices) * -2.5
        t0 = time.perf_counter()
        for p in range(args.patients):
            write_ct_series(Path(tmp) / "bound" / str(p), vol, 0.7, z, seed=p)
        t_bound = time.perf_counter() - t0
    c0 = time.process_time()
    t0 = time.perf_counter()
    sample_slices(args.sample, seed=0)
    t_sample = time.perf_counter() - t0
    c_sample = time.process_time() - c0
    assert n_written == n_total
    print(f"tree: {n_total} slices at {args.matrix}^2 in {t_tree:.1f} s = {n_total / t_tree:.1f} slices/s; "
          f"time / 60 s goal = {t_tree / 60:.2f} ({'PASS' if t_tree < 60 else 'FAIL'})")
    cores = os.cpu_count() or 1
    print(f"tree CPU time: {c_tree:.1f} s over {cores} cores -> {c_tree / cores:.1f} s wall if uncontended; "
          f"ratio to 60 s goal = {c_tree / cores / 60:.2f}")
    print(f"bound (encode + write only, single process): {t_bound:.1f} s = {n_total / t_bound:.1f} slices/s; tree / bound = {t_tree / t_bound:.2f}")
    print(f"sample_slices: {args.sample / t_sample:.1f} slices/s at 128^2 (wall); ratio to 100/s goal = {args.sample / t_sample / 100:.2f}")
    print(f"sample_slices: {args.sample / c_sample:.1f} slices per CPU second (one core, contention-free); ratio to goal = {args.sample / c_sample / 100:.2f}")


if __name__ == "__main__":
    main()
