"""``latentdirs directions``: train Voynov & Babenko directions for a generator."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..events import Event, Finished, Stopped


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "directions", help="discover latent directions (Voynov & Babenko) for a trained generator",
        description="Learn K directions A and a reconstructor for a frozen generator; writes "
                    "RUN/directions.safetensors (+ .json), RUN/reconstructor.safetensors, metrics.csv, tb/.")
    p.add_argument("--generator", required=True,
                   help="generator file or run folder (generator.safetensors), 'analytic[:SIZE]', "
                        "or your own 'package.module:factory'")
    add_generator_weights(p)
    p.add_argument("--out", required=True, type=Path, help="run folder")
    add_direction_options(p)
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of the summary")
    p.set_defaults(func=run)


def add_generator_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator-weights", dest="generator_weights", metavar="FILE",
                   help="weights for a 'module:factory' generator: safetensors, or a state dict "
                        "(read with torch.load(weights_only=True))")
    p.add_argument("--weights-prefix", dest="weights_prefix", metavar="PREFIX",
                   help="strip this prefix from the weights' key names (e.g. 'net.' when a training wrapper held "
                        "the network as self.net); by default a prefix is stripped when exactly one makes the names fit")


def add_direction_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config (e.g. training/table1/gan_lenet_unit32.yaml); flags override it")
    p.add_argument("--recipe", choices=("paper", "cpu"),
                   help="named settings (training/recipes.py): paper (default) or cpu (LeNet at 64x64, lr 3e-3, "
                        "batch 32, 800 steps); --config and flags override it")
    p.add_argument("--K", type=int, dest="K", help="number of directions (default 32)")
    p.add_argument("--reconstructor-input", type=int, dest="reconstructor_input",
                   help="image size R sees (the pair is area-averaged to it); default: the generator's")
    p.add_argument("--variant", choices=("unit", "ortho", "random"))
    p.add_argument("--reconstructor", choices=("lenet", "resnet18"))
    p.add_argument("--init", choices=("random", "axes"))
    p.add_argument("--steps", type=int, help="training steps (default: the paper's count for K, generator and reconstructor)")
    p.add_argument("--steps-scale", type=float, dest="steps_scale", help="multiply the step count (e.g. 0.01 on a CPU)")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-batches", type=int, dest="eval_batches")
    p.add_argument("--log-every", type=int, dest="log_every")
    p.add_argument("--checkpoint-every", type=int, dest="checkpoint_every")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1, mps")


OVERRIDES = ("K", "variant", "reconstructor", "reconstructor_input", "init", "steps", "steps_scale", "batch_size", "lr", "seed",
             "eval_batches", "log_every", "checkpoint_every", "device")


def build_config(args: argparse.Namespace, **extra: Any):
    from ..directions.voynov import DirectionsConfig
    from ..training.recipes import direction_recipe

    base = direction_recipe(getattr(args, "recipe", None) or "paper")
    cfg = DirectionsConfig.from_yaml(args.config, base) if getattr(args, "config", None) else DirectionsConfig(**base)
    changes = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k, None) is not None}
    return replace(cfg, **changes, **extra)


def drive(events, quiet: bool = False) -> Event | None:
    """Render engine events with a progress bar (``console.Progress``)."""
    from ..console import Progress

    return Progress(not quiet).drive(events, "directions")


def drive_stoppable(events, stop: threading.Event, quiet: bool = False) -> Event | None:
    """``drive`` with the first Ctrl-C turned into a stop request (``console.stop_on_signals``)."""
    from ..console import stop_on_signals

    with stop_on_signals(stop):
        return drive(events, quiet=quiet)


def run(args: argparse.Namespace) -> int:
    from ..directions.voynov import (
        CHECKPOINT,
        DIRECTIONS_FILE,
        RunDir,
        resolve_generator,
        train_directions,
    )

    out: Path = args.out
    if out.exists() and not args.resume and (RunDir(out, create=False).has(CHECKPOINT) or (out / DIRECTIONS_FILE).exists()):
        print(f"error: {out} already holds a direction run; pass --resume to continue it or choose another --out",
              file=sys.stderr)
        return 2
    device = args.device or "auto"
    from ..models.custom import CustomGeneratorError
    from ..utils.runtime import select_device

    try:
        generator, fingerprint, kind = resolve_generator(args.generator, device=select_device(device),
                                                         weights=args.generator_weights,
                                                         weights_prefix=args.weights_prefix)
    except CustomGeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = build_config(args, generator_kind=kind, generator_fingerprint=fingerprint, generator_path=str(args.generator))
    stop = threading.Event()
    from ..training.state import ForeignFolderError, NonFiniteLossError

    try:
        last = drive_stoppable(train_directions(cfg, generator, out, stop), stop)
    except (ForeignFolderError, NonFiniteLossError, ValueError) as exc:  # ValueError: e.g. images too small for R
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, NonFiniteLossError) else 2
    if isinstance(last, Stopped):
        print(f"stopped at step {last.step}; resume with --resume (checkpoint {last.checkpoint})", file=sys.stderr)
        return 130
    if isinstance(last, Finished):
        if getattr(args, "json", False):
            print(json.dumps({"output": str(last.output), **last.metrics}, indent=2))
        else:
            print("\n".join(summary_lines(last, args)))
        return 0
    return 1


def summary_lines(fin: Finished, args: argparse.Namespace) -> list[str]:
    """What a finished discovery found, warnings first: RCA beside chance, then where the set is and
    what to do next (label it, look at it)."""
    from ..directions.set import LEARNED_RCA, DirectionSet

    ds = DirectionSet.load(fin.output)
    m, chance = fin.metrics, 1.0 / ds.K
    rca = m.get("rca")
    lines = []
    if isinstance(rca, int | float) and rca < LEARNED_RCA:
        hint = "more --steps" if getattr(args, "recipe", None) == "cpu" else "more --steps, or --recipe cpu on a CPU"
        lines.append(f"warning: directions not learned: RCA {rca:.3f}, chance {chance:.3f} (a learned set reaches "
                     f"{LEARNED_RCA:g} or more; give it {hint})")
    lines.append(f"{ds.K} directions ({ds.method}, {ds.meta.get('steps', '?')} steps) saved in {fin.output}")
    if isinstance(rca, int | float):
        lines.append(f"reconstructor accuracy (RCA) {rca:.3f}, chance {chance:.3f}; shift loss L_s "
                     f"{m.get('shift_loss', float('nan')):.3f} (raw L1 {m.get('shift_l1', float('nan')):.3f})")
    weights = f" --generator-weights {args.generator_weights}" if getattr(args, "generator_weights", None) else ""
    if getattr(args, "weights_prefix", None):
        weights += f" --weights-prefix {args.weights_prefix}"
    lines.append(f"next: latentdirs label {fin.output} --generator {args.generator}{weights}   "
                 "(names each direction; then open the set in napari's Latent navigator)")
    return lines
