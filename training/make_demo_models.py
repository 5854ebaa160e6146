"""Reproduce the bundled demo models: a DCGAN and a ResNet-VAE trained with the CPU recipe on
fresh phantom slices, each with a Voynov & Babenko direction set labelled by the phantom probes,
and the quality of each generator measured against held-out phantom slices.

    .venv/bin/python training/make_demo_models.py                       # everything, resumable
    .venv/bin/python training/make_demo_models.py --stage generators     # train (or resume) G only
    .venv/bin/python training/make_demo_models.py --only gan --work runs/demo-work

Everything is seeded and runs on the CPU. Training state lives in ``--work`` (default
``runs/demo-models``): a killed run continues from its last checkpoint when the same command is
run again. The finished files go to ``--out`` (the package's ``assets/demo``) with a README.json
holding the recipe, the training times and the measured quality. Each file is checked against
the 10 MB budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "napari_latentdirs" / "assets" / "demo"
DEFAULT_WORK = ROOT / "runs" / "demo-models"
MAX_BYTES = 10 * 1024 * 1024


def _drain(events, what: str, every: int = 250):
    from napari_latentdirs.events import Finished, Step

    last = None
    t0 = time.perf_counter()
    for ev in events:
        last = ev
        if isinstance(ev, Step) and ev.losses and (ev.step % every == 0 or ev.step == ev.total_steps):
            losses = " ".join(f"{k}={v:.3g}" for k, v in ev.losses.items())
            print(f"  {what} step {ev.step}/{ev.total_steps} {losses} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if not isinstance(last, Finished):
        raise RuntimeError(f"{what} did not finish: {last!r}")
    return last


def train_generator(kind: str, data, work: Path, steps: int, seed: int, recipe_name: str) -> tuple[Path, float]:
    """Train (or resume) one generator with the named recipe; returns its file and the seconds
    this call spent (a resumed run adds to what the earlier calls spent, see README.json)."""
    from napari_latentdirs.training.config import config_from_dict
    from napari_latentdirs.training.recipes import recipe

    cfg = config_from_dict(kind, {**recipe(recipe_name, kind), "epochs": 10_000, "max_steps": steps, "seed": seed,
                                  "device": "cpu", "sample_every": 0, "log_every": 50, "checkpoint_every": 250})
    if kind == "gan":
        from napari_latentdirs.training.gan import train_gan as engine
    else:
        from napari_latentdirs.training.vae import train_vae as engine
    print(f"[{kind}] {recipe_name} recipe: {steps} steps, batch {cfg.batch_size}", flush=True)
    t0 = time.perf_counter()
    fin = _drain(engine(cfg, data, work / kind, threading.Event()), kind)
    return Path(fin.output), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="run folders (checkpoints: re-run to resume)")
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--slices", type=int, default=12000, help="fresh phantom slices to train on")
    ap.add_argument("--gan-steps", type=int, default=20000)
    ap.add_argument("--vae-steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("gan", "vae"), default=None)
    ap.add_argument("--stage", choices=("generators", "all"), default="all")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)

    import torch

    from napari_latentdirs.training.data import phantom_slices

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"sampling {args.slices} phantom slices (seed {args.seed})", flush=True)
    data = phantom_slices(args.slices, args.seed)
    times_path = args.work / "seconds.json"
    seconds = json.loads(times_path.read_text()) if times_path.exists() else {}
    for kind in ("gan", "vae"):
        if args.only and kind != args.only:
            continue
        steps = args.gan_steps if kind == "gan" else args.vae_steps
        path, spent = train_generator(kind, data, args.work, steps, args.seed, args.recipe)
        seconds[kind] = seconds.get(kind, 0.0) + spent
        times_path.write_text(json.dumps(seconds))
        print(f"[{kind}] generator: {path} ({seconds[kind] / 60:.1f} min of training in all)", flush=True)
    if args.stage == "generators":
        return 0
    raise SystemExit("the directions stage is being rebuilt; run with --stage generators")


if __name__ == "__main__":
    sys.exit(main())
