"""``latentdirs label SET --generator G``: name every direction of a set by measurement."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..analysis.label_set import DEFAULT_LATENTS, PROBE_CHOICES
    from .directions import add_generator_weights

    p = subparsers.add_parser(
        "label", help="label the directions of a set automatically (probe measurements); saves the labels into the set",
        description=(
            "Shift random latents along every direction, measure the generated images with a probe set and name each "
            "direction by the factor it changes (or 'entangled' / 'no effect'). The labels, per-direction selectivity "
            "and descriptions are written into the set file (atomically); the full measurement goes beside it as "
            "<set>.labels.json. Probes: phantom (anatomical outline probes) for CT-like generators, ellipse for "
            "the analytic generator; 'auto' picks by the generator."))
    p.add_argument("set", type=Path, help="direction set file (directions.safetensors) or a directions run folder")
    p.add_argument("--generator", required=True,
                   help="the set's generator: file or run folder, 'analytic[:SIZE]', or 'package.module:factory'")
    add_generator_weights(p)
    p.add_argument("--probes", choices=PROBE_CHOICES, default="auto",
                   help="auto (default): ellipse probes for the analytic generator, phantom probes otherwise")
    p.add_argument("--latents", type=int, default=DEFAULT_LATENTS,
                   help=f"random latents shifted along each direction (default {DEFAULT_LATENTS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--json", action="store_true", help="print the label table as JSON instead of the summary")
    p.set_defaults(func=run)


def resolve_set_path(path: Path) -> Path:
    """A set file, or the ``directions.safetensors`` of a directions run folder."""
    from ..directions.voynov import DIRECTIONS_FILE

    return path / DIRECTIONS_FILE if path.is_dir() else path


def run(args: argparse.Namespace) -> int:
    from ..analysis.label_set import label_set
    from ..directions.voynov import resolve_generator
    from ..models.custom import CustomGeneratorError
    from ..utils.runtime import select_device

    set_path = resolve_set_path(args.set)
    if not set_path.is_file():
        print(f"error: {args.set}: no direction set there (expected a .safetensors file or a directions run folder)",
              file=sys.stderr)
        return 2
    try:
        generator, _fp, _kind = resolve_generator(args.generator, device=select_device(args.device),
                                                  weights=args.generator_weights, weights_prefix=args.weights_prefix)
    except (CustomGeneratorError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        done = label_set(generator, set_path, probes=args.probes, n_latents=args.latents, seed=args.seed,
                         progress=_progress(not args.json))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"output": str(done.path), "labels_file": str(done.labels_path), "probes": done.probes,
                          "warnings": done.warnings, "directions": done.result.table()}, indent=1))
    else:
        print("\n".join(done.summary_lines()))
    return 0


def _progress(enabled: bool):
    """A per-direction bar (on stderr) made on the first call, when K is known."""
    from ..console import Progress

    bar: list = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(Progress(enabled).loop(total, "label"))
        bar[0](done, total)

    return update
