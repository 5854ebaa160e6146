"""``latentdirs directions``: train Voynov & Babenko directions for a generator."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..events import CheckpointSaved, Event, Finished, Message, Started, Step, Stopped


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
    p.set_defaults(func=run)


def add_generator_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator-weights", dest="generator_weights", metavar="FILE",
                   help="weights for a 'module:factory' generator: safetensors, or a state dict "
                        "(read with torch.load(weights_only=True))")


def add_direction_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config (e.g. training/table1/gan_lenet_unit32.yaml); flags override it")
    p.add_argument("--K", type=int, dest="K", help="number of directions (default 32)")
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


OVERRIDES = ("K", "variant", "reconstructor", "init", "steps", "steps_scale", "batch_size", "lr", "seed",
             "eval_batches", "log_every", "checkpoint_every", "device")


def build_config(args: argparse.Namespace, **extra: Any):
    from ..directions.voynov import DirectionsConfig

    cfg = DirectionsConfig.from_yaml(args.config) if getattr(args, "config", None) else DirectionsConfig()
    changes = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k, None) is not None}
    return replace(cfg, **changes, **extra)


def drive(events, quiet: bool = False) -> Event | None:
    """Render engine events with a progress bar; Ctrl-C stops cleanly (checkpoint first)."""
    from tqdm import tqdm

    bar = None
    last: Event | None = None
    try:
        for ev in events:
            last = ev
            if isinstance(ev, Started):
                bar = tqdm(total=ev.total_steps, initial=ev.start_step, disable=quiet, unit="step", file=sys.stderr)
            elif isinstance(ev, Step) and bar is not None:
                bar.update(ev.step - bar.n)
                if ev.step % 50 == 0 and ev.losses:
                    bar.set_postfix(acc=f"{ev.losses.get('accuracy', 0):.3f}", ce=f"{ev.losses.get('ce', 0):.3f}")
            elif isinstance(ev, (Message, CheckpointSaved)) and not quiet:
                print(ev.text if isinstance(ev, Message) else f"checkpoint: {ev.path}", file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    return last


def drive_stoppable(events, stop: threading.Event, quiet: bool = False) -> Event | None:
    """``drive`` with the first Ctrl-C turned into a stop request, so the engine checkpoints
    between steps (a KeyboardInterrupt raised inside a step would kill the generator)."""
    previous = signal.getsignal(signal.SIGINT)

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C interrupts for real
        print("\nstopping after this step (Ctrl-C again to abort)...", file=sys.stderr)

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGINT, request_stop)
    try:
        return drive(events, quiet=quiet)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


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
                                                         weights=args.generator_weights)
    except CustomGeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = build_config(args, generator_kind=kind, generator_fingerprint=fingerprint, generator_path=str(args.generator))
    stop = threading.Event()
    from ..training.state import ForeignFolderError, NonFiniteLossError

    try:
        last = drive_stoppable(train_directions(cfg, generator, out, stop), stop)
    except (ForeignFolderError, NonFiniteLossError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ForeignFolderError) else 1
    if isinstance(last, Stopped):
        print(f"stopped at step {last.step}; resume with --resume (checkpoint {last.checkpoint})", file=sys.stderr)
        return 130
    if isinstance(last, Finished):
        print(json.dumps({"output": str(last.output), **last.metrics}, indent=2))
        return 0
    return 1
