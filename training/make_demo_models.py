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
from dataclasses import asdict, replace
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


def train_generator(kind: str, data, work: Path, steps: int, seed: int, recipe_name: str, device: str = "cpu",
                    model: dict | None = None, init: Path | None = None) -> tuple[Path, float]:
    """Train (or resume) one generator with the named recipe; returns its file and the seconds
    this call spent (a resumed run adds to what the earlier calls spent, see README.json).

    ``model``: overrides on the recipe's model preset (e.g. ``{"g_upsample": "bilinear"}``).
    ``init``: a generator file whose weights start a new run (its generator and weight average;
    a GAN's discriminator starts fresh), e.g. one trained further on a GPU."""
    from napari_latentdirs.training.config import config_from_dict
    from napari_latentdirs.training.recipes import recipe

    cfg = config_from_dict(kind, {**recipe(recipe_name, kind), "model": dict(model or {}), "epochs": 10_000,
                                  "max_steps": steps, "seed": seed, "device": device, "amp": "off",
                                  "sample_every": 0, "log_every": 50, "checkpoint_every": 250})
    if kind == "gan":
        from napari_latentdirs.training.gan import GANTrainer as trainer
        from napari_latentdirs.training.gan import train_gan as engine
    else:
        from napari_latentdirs.training.vae import VAETrainer as trainer
        from napari_latentdirs.training.vae import train_vae as engine
    if init is not None and not (work / kind / "checkpoints").exists():
        from napari_latentdirs.models.registry import load_generator

        start = trainer(cfg, data, work / kind)
        weights = load_generator(init).state_dict()
        start.generator_module().load_state_dict(weights)
        if start.ema is not None:
            start.ema.shadow.load_state_dict(weights)
        start.save()
        print(f"[{kind}] starting from the weights of {init}", flush=True)
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
    ap.add_argument("--gan-steps", type=int, default=10000)
    ap.add_argument("--vae-steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("gan", "vae"), default=None)
    ap.add_argument("--stage", choices=("generators", "finish", "all"), default="all",
                    help="generators: train only; finish: ship what --work holds (no training); all: both")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU (float32 either way)")
    ap.add_argument("--gan-upsample", default=None, help="the GAN's upsampling (models/dcgan.py UPSAMPLING); "
                                                         "default: the recipe's")
    ap.add_argument("--gan-init", type=Path, default=None,
                    help="start the GAN from this generator file (e.g. trained further on a GPU; D starts fresh)")
    ap.add_argument("--K", type=int, default=32, help="directions per set")
    ap.add_argument("--variant", default="unit", help="direction matrix: unit | ortho (directions/matrix.py)")
    ap.add_argument("--orthogonal-changes", type=float, default=0.0,
                    help="weight of the penalty keeping different directions' image changes orthogonal")
    for kind in ("gan", "vae"):
        ap.add_argument(f"--{kind}-directions", type=Path, default=None,
                        help=f"ship this direction set for the {kind.upper()} (made for its generator) instead of "
                             "discovering one here")
    ap.add_argument("--random-sets", type=int, default=10, help="matched random sets for the comparison")
    ap.add_argument("--gan-note", default="", help="a note on how the GAN was trained, kept in README.json")
    ap.add_argument("--gan-dir-steps", type=int, default=1600,
                    help="direction steps for the GAN (the recipe's 800 reach RCA 0.80 on it, 1600 are needed for 0.9)")
    ap.add_argument("--vae-dir-steps", type=int, default=None, help="direction steps for the VAE (default: the recipe's)")
    ap.add_argument("--quality-n", type=int, default=500, help="samples for the quality figures")
    ap.add_argument("--quality-spaces", nargs="+", default=["probes", "pixels", "inception"],
                    help="feature spaces (analysis/quality.py); Inception features of 2,500 images take a CPU long")
    ap.add_argument("--label-latents", type=int, default=64, help="latents each direction is measured on")
    args = ap.parse_args(argv)

    import torch

    from napari_latentdirs.training.data import phantom_slices

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage != "finish":
        print(f"sampling {args.slices} phantom slices (seed {args.seed})", flush=True)
        data = phantom_slices(args.slices, args.seed)
    times_path = args.work / "seconds.json"
    for kind in ("gan", "vae"):
        if args.only and kind != args.only or args.stage == "finish":
            continue
        steps = args.gan_steps if kind == "gan" else args.vae_steps
        model = {"g_upsample": args.gan_upsample} if kind == "gan" and args.gan_upsample else None
        path, spent = train_generator(kind, data, args.work, steps, args.seed, args.recipe, args.device, model,
                                      args.gan_init if kind == "gan" else None)
        # Re-read just before writing: the GAN and the VAE may train in two processes at once.
        seconds = json.loads(times_path.read_text()) if times_path.exists() else {}
        seconds[kind] = seconds.get(kind, 0.0) + spent
        times_path.write_text(json.dumps(seconds))
        print(f"[{kind}] generator: {path} ({seconds[kind] / 60:.1f} min of training in all)", flush=True)
    if args.stage == "generators":
        return 0
    from napari_latentdirs.utils.atomic import atomic_write_text

    seconds = json.loads(times_path.read_text()) if times_path.exists() else {}
    manifest = args.out / "README.json"
    for kind in ("gan", "vae"):
        if args.only and kind != args.only:
            continue
        steps = args.gan_steps if kind == "gan" else args.vae_steps
        entry = finish(kind, args, steps, seconds.get(kind))
        # Read just before writing: the GAN's and the VAE's stages may run in two processes.
        summary = json.loads(manifest.read_text()) if manifest.exists() else {}
        summary[kind] = entry
        summary["recipe"] = {"script": "training/make_demo_models.py",
                             "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                      if k not in ("out", "work", "only", "stage")}}
        atomic_write_text(manifest, json.dumps(summary, indent=2, default=str))
    print(f"done -> {args.out}", flush=True)
    return 0


def finish(kind: str, args: argparse.Namespace, steps: int, train_seconds: float | None) -> dict:
    """Ship one trained generator: quality, K = 32 directions, labels and the random baseline."""
    from napari_latentdirs.analysis.comparison import compare_sets
    from napari_latentdirs.analysis.labelling import (
        LabelConfig,
        describe_directions,
        label_directions,
    )
    from napari_latentdirs.analysis.quality import QualityReport, generator_quality
    from napari_latentdirs.directions.baselines import random_directions
    from napari_latentdirs.directions.collapse import collapse_of
    from napari_latentdirs.directions.set import DirectionSet
    from napari_latentdirs.directions.supervised import probe_regression_method
    from napari_latentdirs.directions.voynov import DirectionsConfig, train_directions
    from napari_latentdirs.models.registry import (
        generator_fingerprint,
        load_generator,
        preprocessing_of,
        save_generator,
    )
    from napari_latentdirs.probes.phantom import phantom_probes
    from napari_latentdirs.training.recipes import direction_recipe, recipe
    from napari_latentdirs.utils.runtime import seed_everything

    seed_everything(args.seed)
    gen = load_generator(args.work / kind / "generator.safetensors")
    gen_path = save_generator(args.out / f"{kind}_generator.safetensors", gen,
                              {"demo": True, "recipe": args.recipe, "steps": steps, "data": "phantom",
                               "slices": args.slices, "seed": args.seed})
    fp = generator_fingerprint(gen_path)

    print(f"[{kind}] quality against held-out phantom slices (n = {args.quality_n})", flush=True)
    # Kept in the work folder by generator and sample size: a re-run (more direction steps) reuses it.
    cached = args.work / f"quality-{kind}-{fp[:16]}-{args.quality_n}-{'-'.join(args.quality_spaces)}.json"
    if cached.exists():
        quality = QualityReport.from_dict(json.loads(cached.read_text()))
    else:
        quality = generator_quality(gen, "phantom", n=args.quality_n, seed=args.seed, spaces=args.quality_spaces)
        cached.write_text(json.dumps(quality.to_dict()))
    for line in quality.lines():
        print("  " + line, flush=True)

    dcfg = DirectionsConfig(**{**direction_recipe(args.recipe), "K": args.K, "variant": args.variant,
                               "orthogonal_changes": args.orthogonal_changes, "seed": args.seed,
                               "device": "cpu", "generator_kind": kind, "generator_fingerprint": fp,
                               "generator_path": gen_path.name, "log_every": 100, "checkpoint_every": 200})
    dir_steps = args.gan_dir_steps if kind == "gan" else args.vae_dir_steps
    if dir_steps is not None:
        dcfg = replace(dcfg, steps=dir_steps)
    given = getattr(args, f"{kind}_directions")
    if given is not None:
        # A set trained elsewhere (e.g. by training/method_study.py on a GPU) with the recipe's settings.
        ds = DirectionSet.load(given)
        if ds.generator != fp:
            raise SystemExit(f"{given} was made for generator {ds.generator[:12]}, not {fp[:12]}")
        dcfg = DirectionsConfig.from_dict(ds.meta["config"])
        dir_seconds = None
        print(f"[{kind}] directions from {given} ({dcfg.steps} steps, {dcfg.variant}, K = {dcfg.K})", flush=True)
    else:
        print(f"[{kind}] discovering K = {dcfg.K} directions ({dcfg.steps} steps)", flush=True)
        t0 = time.perf_counter()
        dfin = _drain(train_directions(dcfg, gen, args.work / f"{kind}-directions", threading.Event()),
                      f"{kind} directions", every=100)
        dir_seconds = time.perf_counter() - t0
        ds = DirectionSet.load(dfin.output)
    rca = float(ds.metrics.get("rca", 0.0))
    print(f"[{kind}] RCA {rca:.3f} (chance {1 / dcfg.K:.3f})", flush=True)

    print(f"[{kind}] labelling the discovered set, {args.random_sets} matched random sets and the supervised "
          "probe-regression set", flush=True)
    probes = phantom_probes(preprocessing_of(gen))
    lcfg = LabelConfig(n_latents=args.label_latents, alphas=(-6.0, -3.0, 3.0, 6.0), seed=args.seed)
    found = label_directions(gen, ds, probes, lcfg)
    rands = [label_directions(gen, random_directions(gen.latent_dim, dcfg.K, seed=args.seed + 1 + i), probes, lcfg)
             for i in range(args.random_sets)]
    comparison = compare_sets([found], rands, probes, seed=args.seed)
    supervised = probe_regression_method(gen, None, seed=args.seed, generator=fp)
    sup_found = label_directions(gen, supervised, probes, lcfg)
    sup_rands = rands if supervised.K == dcfg.K else [
        label_directions(gen, random_directions(gen.latent_dim, supervised.K, seed=args.seed + 1 + i), probes, lcfg)
        for i in range(args.random_sets)]
    ceiling = compare_sets([sup_found], sup_rands, probes, seed=args.seed)
    for r, c in zip(comparison.rows, ceiling.rows):
        print(f"  {r.factor:12s} supervised {c.discovered:.2f} | discovered {r.discovered:.2f} | random {r.random:.2f}"
              f"   discovered - random {r.difference:+.2f} (Holm p {r.p_holm:.3f})", flush=True)
    collapse = collapse_of(ds.A)
    print(f"[{kind}] {collapse.line()}", flush=True)

    ds = DirectionSet(ds.A, ds.method, fp, list(found.labels), {**ds.metrics, **collapse.metrics()},
                      {**ds.meta, "demo": True, "selectivity": found.selectivity.tolist(),
                       "descriptions": describe_directions(found),
                       "label_alphas": list(lcfg.alphas), "duplicate_groups": found.groups},
                      preprocessing=ds.preprocessing)
    dir_path = ds.save(args.out / f"{kind}_directions.safetensors")
    sizes = {p.name: p.stat().st_size for p in (gen_path, dir_path)}
    for name, size in sizes.items():
        if size > MAX_BYTES:
            raise RuntimeError(f"{name} is {size / 1e6:.1f} MB, over the 10 MB budget")
    counts = {f: found.labels.count(f) for f in sorted(set(found.labels))}
    print(f"[{kind}] labels {counts}; sizes {sizes}", flush=True)
    return {
        "generator": gen_path.name, "directions": dir_path.name, "labels": ds.labels, "metrics": ds.metrics,
        "chance_rca": 1 / dcfg.K, "bytes": sizes, "generator_steps": steps,
        "train_minutes": None if train_seconds is None else round(train_seconds / 60, 1),
        "direction_minutes": None if dir_seconds is None else round(dir_seconds / 60, 1),
        "direction_config": asdict(dcfg),
        **({"directions_from": str(given)} if given is not None else {}),
        "quality": quality.to_dict(), "random_labels": list(rands[0].labels), "comparison": comparison.to_dict(),
        "supervised": {"r2": supervised.meta["r2"], "labels": list(sup_found.labels),
                       "selectivity": dict(zip(supervised.labels, map(float, sup_found.selectivity))),
                       "comparison": ceiling.to_dict()},
        "collapse": collapse.to_dict(), "descriptions": ds.meta["descriptions"],
        "generator_recipe": recipe(args.recipe, kind),
        "train_device": args.device if train_seconds is not None and args.stage != "finish" else None,
        **({"generator_note": args.gan_note} if kind == "gan" and args.gan_note else {}),
    }


if __name__ == "__main__":
    sys.exit(main())
