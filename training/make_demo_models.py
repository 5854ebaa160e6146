"""Reproduce the bundled demo models: a tiny DCGAN and a tiny ResNet-VAE trained on the
synthetic phantom, each with a Voynov & Babenko direction set labelled by the phantom probes.

    .venv/bin/python training/make_demo_models.py            # writes src/napari_latentdirs/assets/demo/
    .venv/bin/python training/make_demo_models.py --out /tmp/demo --gan-steps 50 --vae-steps 50 --dir-steps 20

Everything is seeded and runs on the CPU (tiny presets, a few minutes), so the
same command gives the same files on the same software stack. Each model
file is far below the 10 MB budget (the script checks it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "napari_latentdirs" / "assets" / "demo"
MAX_BYTES = 10 * 1024 * 1024


def _drain(events, what: str, every: int = 50):
    from napari_latentdirs.events import Finished, Step

    last = None
    t0 = time.perf_counter()
    for ev in events:
        last = ev
        if isinstance(ev, Step) and (ev.step % every == 0 or ev.step == ev.total_steps):
            losses = " ".join(f"{k}={v:.3g}" for k, v in ev.losses.items())
            print(f"  {what} step {ev.step}/{ev.total_steps} {losses} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if not isinstance(last, Finished):
        raise RuntimeError(f"{what} did not finish: {last!r}")
    return last


def make(kind: str, data, out: Path, steps: int, dir_steps: int, K: int, batch: int, seed: int, work: Path) -> dict:  # noqa: N803
    from napari_latentdirs.analysis.labelling import LabelConfig, label_directions, phantom_probes
    from napari_latentdirs.models.direction_set import DirectionSet
    from napari_latentdirs.models.registry import (
        generator_fingerprint,
        load_generator,
        save_generator,
    )
    from napari_latentdirs.training.config import config_from_dict
    from napari_latentdirs.training.directions import DirectionsConfig, train_directions
    from napari_latentdirs.utils.runtime import seed_everything

    seed_everything(seed)
    cfg = config_from_dict(
        kind, preset="tiny", epochs=10_000, batch_size=batch, seed=seed, device="cpu", max_steps=steps,
        fid=False, sample_every=0, log_every=50, augment=False,
    )
    if kind == "gan":
        from napari_latentdirs.training.gan import train_gan as engine
    else:
        from napari_latentdirs.training.vae import train_vae as engine
    print(f"[{kind}] training the generator: {steps} steps, batch {batch}", flush=True)
    fin = _drain(engine(cfg, data, work / kind, threading.Event()), kind)
    gen = load_generator(fin.output)
    gen_path = save_generator(out / f"{kind}_generator.safetensors", gen, {"demo": True, "steps": steps, "data": "phantom", "seed": seed})
    fp = generator_fingerprint(gen_path)

    print(f"[{kind}] discovering K={K} directions: {dir_steps} steps", flush=True)
    dcfg = DirectionsConfig(
        K=K, variant="unit", reconstructor="lenet", steps=dir_steps, batch_size=batch, seed=seed, device="cpu",
        generator_kind=kind, generator_fingerprint=fp, generator_path=gen_path.name, eval_batches=4,
        log_every=50, checkpoint_every=0,
    )
    dfin = _drain(train_directions(dcfg, gen, work / f"{kind}-directions", threading.Event()), f"{kind} directions")
    ds = DirectionSet.load(dfin.output)

    print(f"[{kind}] labelling directions with the phantom probes", flush=True)
    res = label_directions(gen, ds, phantom_probes(), LabelConfig(n_latents=32, n_boot=100, seed=seed))
    ds = DirectionSet(ds.A, ds.method, fp, list(res.labels), dict(ds.metrics), {**ds.meta, "demo": True, "label_selectivity": res.selectivity.tolist()})
    dir_path = ds.save(out / f"{kind}_directions.safetensors")
    sizes = {p.name: p.stat().st_size for p in (gen_path, dir_path)}
    for name, size in sizes.items():
        if size > MAX_BYTES:
            raise RuntimeError(f"{name} is {size / 1e6:.1f} MB, over the 10 MB budget")
    print(f"[{kind}] labels: {ds.labels}; metrics {ds.metrics}; sizes {sizes}", flush=True)
    return {"generator": gen_path.name, "directions": dir_path.name, "labels": ds.labels, "metrics": ds.metrics, "bytes": sizes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--slices", type=int, default=512, help="phantom slices to train on")
    ap.add_argument("--gan-steps", type=int, default=1000)
    ap.add_argument("--vae-steps", type=int, default=200)
    ap.add_argument("--dir-steps", type=int, default=150)
    ap.add_argument("--K", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("gan", "vae"), default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny models on a busy CPU)")
    args = ap.parse_args(argv)

    import torch

    from napari_latentdirs.training.data import phantom_slices

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"sampling {args.slices} phantom slices (seed {args.seed})", flush=True)
    data = phantom_slices(args.slices, args.seed)
    summary = {}
    with tempfile.TemporaryDirectory(prefix="latentdirs-demo-") as tmp:
        for kind in ("gan", "vae"):
            if args.only and kind != args.only:
                continue
            steps = args.gan_steps if kind == "gan" else args.vae_steps
            summary[kind] = make(kind, data, args.out, steps, args.dir_steps, args.K, args.batch, args.seed, Path(tmp))
    manifest = args.out / "README.json"
    old = json.loads(manifest.read_text()) if manifest.exists() else {}
    old.update(summary)
    old["recipe"] = {"script": "training/make_demo_models.py", "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"}}
    manifest.write_text(json.dumps(old, indent=2, default=str))
    print(f"done in {time.perf_counter() - t0:.0f} s -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
