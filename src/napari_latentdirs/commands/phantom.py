"""``latentdirs phantom``: write a synthetic LIDC-like DICOM tree, or a contact sheet."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "phantom",
        help="write synthetic thorax CT patients as LIDC-layout DICOM (+ ground truth)",
        description="Write N synthetic thorax CT scans as an LIDC-IDRI-like DICOM tree with a "
        "ground_truth.csv and phantom_manifest.json. With --contact-sheet, write a PNG grid of "
        "phantom slices across levels and factors next to a real CT instead.",
    )
    p.add_argument("out", type=Path, help="output folder (or .png path with --contact-sheet)")
    p.add_argument("--patients", type=int, default=4, help="number of patients (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same bytes")
    p.add_argument("--messy", action="store_true", help="add LIDC pitfalls (duplicates, missing slice, reversed order, intercept 0, CR series, XML, irregular spacing)")
    p.add_argument("--matrix", type=int, default=512, help="image matrix (default 512)")
    p.add_argument("--slices", type=int, default=None, help="slices per scan (default: scan length / slice thickness, as LIDC)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: up to 4)")
    p.add_argument("--contact-sheet", action="store_true", help="write a contact-sheet PNG to OUT instead of a DICOM tree")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.contact_sheet:
        from ..phantom.contact_sheet import render_contact_sheet

        out = args.out if args.out.suffix.lower() == ".png" else args.out / "phantom_contact_sheet.png"
        render_contact_sheet(out, seed=args.seed)
        print(f"wrote {out}")
        return 0
    if args.patients < 1:
        raise SystemExit("--patients must be >= 1")
    from ..phantom import write_phantom_tree

    t0 = time.perf_counter()
    m = write_phantom_tree(args.out, args.patients, args.seed, messy=args.messy, matrix=args.matrix, n_slices=args.slices, workers=args.workers)
    n = sum(s["n_slices_written"] for s in m["series"])
    dt = time.perf_counter() - t0
    print(f"wrote {args.patients} patients, {n} CT slices under {args.out} in {dt:.1f}s ({n / dt:.1f} slices/s)")
    if m["pitfalls"]:
        print("pitfalls: " + ", ".join(sorted({p['kind'] for p in m['pitfalls']})))
    return 0
