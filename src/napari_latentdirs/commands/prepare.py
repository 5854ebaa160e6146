"""``latentdirs prepare LIDC_ROOT CACHE``: DICOM tree -> training slice cache."""

from __future__ import annotations

import argparse
import math


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="preprocess every CT series under a folder (e.g. LIDC-IDRI) into a slice cache",
        description="Find every CT series under LIDC_ROOT, preprocess each slice as in the paper "
        "(clip to [-1000, 2000] HU or --hu-window, scale to [-1, 1], antialiased resize) and write CACHE "
        "(the window is recorded in the cache, and in every model trained on it) "
        "(slices.npy + table.csv + index.json). Re-running skips finished series; interrupting is safe. "
        "CACHE must be new, empty or a cache written by this command.",
    )
    p.add_argument("root", metavar="LIDC_ROOT", help="folder with DICOM files (any layout)")
    p.add_argument("cache", metavar="CACHE", help="output cache folder")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2; 1 = in-process)")
    p.add_argument("--seed", type=int, default=0, help="seed of the patient-level train/test split")
    p.add_argument("--test-fraction", type=float, default=0.1, help="fraction of patients in the test split")
    p.add_argument("--size", type=int, default=128, help="output slice size in pixels (default 128)")
    p.add_argument("--hu-window", nargs=2, type=float, metavar=("MIN", "MAX"), default=None,
                   help="HU window clipped and scaled to [-1, 1] (default: the paper's -1000 2000)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="storage type of the cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.cache import CacheFolderError
    from ..data.prepare import NoUsableSlicesError, PrepareConfig, prepare

    if not 0 <= args.test_fraction < 1:
        raise SystemExit("--test-fraction must be in [0, 1)")
    if args.size < 16 or args.size & (args.size - 1):  # the models' image sizes
        raise SystemExit(f"--size must be a power of two >= 16, got {args.size}")
    window = {}
    if args.hu_window is not None:
        lo, hi = args.hu_window
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise SystemExit(f"--hu-window needs two finite numbers MIN < MAX, got {lo:g} {hi:g}")
        window = {"hu_min": lo, "hu_max": hi}
    cfg = PrepareConfig(size=args.size, dtype=args.dtype, seed=args.seed, test_fraction=args.test_fraction, **window)
    try:
        res = prepare(args.root, args.cache, workers=args.workers, config=cfg, progress=not args.no_progress)
    except (NoUsableSlicesError, CacheFolderError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    print(
        f"{res.cache_dir}: {res.n_slices} slices, {res.n_series} series, {res.n_patients} patients "
        f"({res.processed} series processed, {res.reused} reused, {len(res.skipped)} skipped); "
        f"fingerprint {res.fingerprint}"
    )
    for s in res.skipped:
        print(f"  skipped {s['what']}: {s['reason']}")
    return 0
