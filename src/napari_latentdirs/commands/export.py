"""``latentdirs export SET --generator G --direction K --out FILE``: the navigator's exports, headless.

The formats are the records of ``analysis.export_formats.EXPORT_FORMATS`` (the navigator's Export
menu), and each is written by the same writer the navigator calls, from a sweep built by
``export_formats.sweep_of``. A researcher on a GPU server gets the same TIFF, GIF, MP4, figure grid or
derived DICOM series as a radiologist in napari.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..analysis.export_formats import EXPORT_FORMATS
    from ..analysis.navigation import WINDOWS
    from .directions import add_generator_weights

    listed = ", ".join(f"{name} ({spec.suffix}: {spec.label})" for name, spec in EXPORT_FORMATS.items())
    p = subparsers.add_parser(
        "export", help="export a direction's sweep as the navigator does: TIFF, GIF, MP4, figure grid or DICOM",
        description=("Shift random latents along one direction of a set and write the sweep in one of the "
                     f"navigator's export formats: {listed}. The format is --format, else the suffix of --out."))
    p.add_argument("set", type=Path, help="direction set file (directions.safetensors) or a directions run folder")
    p.add_argument("--generator", required=True,
                   help="the set's generator: file or run folder, 'analytic[:SIZE]', or 'package.module:factory'")
    add_generator_weights(p)
    p.add_argument("--direction", type=int, default=0, help="which direction (column of A), from 0 (default 0)")
    p.add_argument("--out", type=Path, required=True, help="the file to write (a new or empty folder for DICOM)")
    p.add_argument("--format", dest="fmt", metavar="FORMAT",
                   help=f"one of {', '.join(EXPORT_FORMATS)} (default: from the suffix of --out)")
    p.add_argument("--latents", type=int, default=4, help="random latents in the TIFF stack (default 4)")
    p.add_argument("--latent", type=int, default=0, help="the latent whose sweep a GIF, MP4, grid or DICOM shows")
    p.add_argument("--seed", type=int, default=0, help="seed of the random latents (the navigator's Seed)")
    p.add_argument("--shift", type=float, metavar="ALPHA",
                   help="shifts run from -ALPHA to +ALPHA (default: the set's training range, else 6)")
    p.add_argument("--frames", type=int, default=41, help="shifts in the sweep (default 41)")
    p.add_argument("--window", choices=tuple(WINDOWS), default="lung", help="display window of GIF, MP4 and grid")
    p.add_argument("--scale", type=int, default=2, help="pixels per model pixel in a GIF or MP4 (default 2)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run)


def _error(text: str) -> int:
    print(f"error: {text}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from ..analysis.export_formats import export_format, sweep_of
    from ..analysis.navigation import default_shift, model_name, random_latents, shift_grid
    from ..directions.set import DirectionSet
    from ..directions.voynov import resolve_generator
    from ..models.custom import CustomGeneratorError
    from ..utils.runtime import select_device
    from .label import resolve_set_path

    try:
        fmt = export_format(args.fmt or args.out.suffix)
    except ValueError as exc:
        return _error(f"--out {args.out}: {exc}" if not args.fmt else str(exc))
    if args.frames < 1 or args.latents < 1 or args.scale < 1:
        return _error("--frames, --latents and --scale must each be at least 1")
    if not fmt.folder and args.out.exists() and not (args.force and args.out.is_file()):
        return _error(f"{args.out} exists; choose another name, or --force to replace the file")
    set_path = resolve_set_path(args.set)
    if not set_path.is_file():
        return _error(f"{args.set}: no direction set there (expected a .safetensors file or a directions run folder)")
    try:
        ds = DirectionSet.load(set_path)
        generator, fingerprint, _kind = resolve_generator(args.generator, device=select_device(args.device),
                                                          weights=args.generator_weights,
                                                          weights_prefix=args.weights_prefix)
    except (CustomGeneratorError, ValueError, FileNotFoundError) as exc:
        return _error(str(exc))
    if ds.latent_dim != generator.latent_dim:
        return _error(f"the set has dimension {ds.latent_dim}, the generator {generator.latent_dim}")
    if (other := ds.made_for_another(fingerprint)) is not None:
        print(f"warning: {set_path}: {other}: its directions may mean nothing here", file=sys.stderr)
    half = args.shift if args.shift is not None else default_shift(ds)
    if not (math.isfinite(half) and half > 0):
        return _error(f"--shift must be a finite number above 0, got {half}")
    z = random_latents(args.latents, generator.latent_dim, args.seed)
    try:
        sweep = sweep_of(generator, ds, args.direction, z, shift_grid(-half, half, args.frames), latent=args.latent,
                         window=args.window, model=model_name(args.generator), scale=args.scale)
        written = fmt.write(args.out, sweep)
    except ValueError as exc:
        return _error(str(exc))
    if fmt.folder:
        print(f"{args.out} ({len(written)} files)")
    else:
        print("\n".join(str(path) for path in written))
    return 0
