"""``latentdirs quality GENERATOR [--data phantom|CACHE] [--n N]``: how well a generator covers its data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# analysis.quality.FEATURE_SPACES, spelt out so that the CLI's start does not import torch.
SPACES = ("inception", "probes", "pixels")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quality", help="k-NN precision, recall, diversity and FID of a generator beside a real-vs-real ceiling",
        description=(
            "Score N samples of a generator against two independent real samples (fresh phantom slices, or the "
            "test split of a slice cache): k-NN precision and recall (k = 3) and diversity in the phantom-probe, "
            "pixel (32x32) and TF-Inception feature spaces, each beside the same figure for real against real "
            "and for real slices blurred by 1 and 2 px (the scale), plus FID and the checkerboard index."))
    p.add_argument("generator", help="generator file or run folder")
    p.add_argument("--data", default="phantom", help="'phantom' (default) or a slice cache folder")
    p.add_argument("--n", type=int, default=500, help="samples per set (default 500)")
    p.add_argument("--spaces", nargs="+", choices=SPACES, default=SPACES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fid-weights", dest="fid_weights", help="TorchScript TF-Inception file (default: bundled)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.quality import generator_quality
    from ..directions.voynov import resolve_generator
    from ..utils.atomic import atomic_write_text

    if args.n < 4:
        raise SystemExit(f"error: --n must be at least 4 (k-NN with k = 3), got {args.n}")
    generator, _fp, _kind = resolve_generator(args.generator, device=args.device)
    report = generator_quality(generator, args.data, args.n, args.seed, args.spaces, args.fid_weights, args.device)
    print("\n".join(report.lines()))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=1))
    return 0
