"""``latentdirs baseline``: a closed-form method of ``directions.METHODS`` (random, GANSpace, SeFa,
encoded PCA, ...) written as a direction set."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..directions import METHODS, closed_form_methods

    methods = closed_form_methods()
    p = subparsers.add_parser(
        "baseline", help=f"compute baseline directions ({', '.join(methods)})",
        description="Write a direction set (safetensors + JSON) for a generator by a baseline method.")
    p.add_argument("--generator", required=True,
                   help="generator file or run folder, 'analytic[:SIZE]', or your own 'package.module:factory'")
    from .directions import add_generator_weights

    add_generator_weights(p)
    p.add_argument("--method", required=True, choices=methods,
                   help="; ".join(f"{m}: {METHODS[m].description}" for m in methods))
    p.add_argument("--out", required=True, help="output .safetensors file, or a folder (existing, or ending in /) "
                   "that gets METHOD.safetensors")
    p.add_argument("--K", type=int, dest="K", help="number of directions (default latent_dim)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-samples", type=int, default=2000, dest="n_samples", help="latents sampled for GANSpace")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--slices", type=Path, help="pca-encoded: .npy of model-space slices (N, H, W)")
    src.add_argument("--phantom", type=int, metavar="N", help="pca-encoded: encode N phantom slices")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def load_slices(args: argparse.Namespace) -> np.ndarray | None:
    if args.slices is not None:
        if args.slices.suffix != ".npy":
            raise SystemExit(f"error: --slices must be a .npy array of model-space slices, got {args.slices}")
        return np.load(args.slices, allow_pickle=False)
    if args.phantom is not None:
        from ..phantom import sample_slices

        x, _ = sample_slices(args.phantom, seed=args.seed)
        return np.asarray(x, dtype=np.float32)
    return None


def output_path(out: str, method: str) -> Path:
    """Where ``--out`` puts the set: inside a folder (never beside it as FOLDER.safetensors),
    else the file itself, ``.safetensors`` added when missing."""
    path = Path(out)
    if path.is_dir() or out.endswith(("/", os.sep)):
        return path / f"{method}.safetensors"
    if path.exists() and not path.is_file():
        raise SystemExit(f"error: --out {out} is neither a file nor a folder")
    return path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")


def run(args: argparse.Namespace) -> int:
    from ..directions import method_spec
    from ..directions.baselines import compute_baseline
    from ..directions.voynov import resolve_generator

    if "slices" in method_spec(args.method).needs and args.slices is None and args.phantom is None:
        print(f"error: {args.method} needs --slices or --phantom", file=sys.stderr)
        return 2
    from ..models.custom import CustomGeneratorError

    try:
        generator, fingerprint, _kind = resolve_generator(args.generator, device=args.device,
                                                          weights=args.generator_weights,
                                                          weights_prefix=args.weights_prefix)
    except CustomGeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from ..utils.folderlock import hold_folder

    out = output_path(args.out, args.method)
    with hold_folder(out.parent):  # one writer per folder (issue 22)
        ds = compute_baseline(args.method, generator, args.K, slices=load_slices(args), seed=args.seed,
                              n_samples=args.n_samples, generator=fingerprint)
        path = ds.save(out)
    print(json.dumps({"output": str(path), "method": ds.method, "K": ds.K}))
    return 0
