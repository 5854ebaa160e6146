"""The main job's producing stages: data, generators (and their quality), direction sets."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..console import Progress
from ..utils.paths import from_run, rel_to
from .config import CELLS, PipelineConfig
from .manifest import Manifest, Timer


def stage_data(cfg: PipelineConfig, man: Manifest, prog: Progress) -> Path:
    out = Path(cfg.out)
    if "cache" in man.data and from_run(out, man.data["cache"]).exists():
        return from_run(out, man.data["cache"])
    from ..data.prepare import PrepareConfig, prepare

    if cfg.data is None:
        from ..phantom import write_phantom_tree

        root = out / "phantom_dicom"
        prog.stage(f"writing a synthetic phantom DICOM tree ({cfg.patients} patients) to {root}")
        tm = Timer()
        write_phantom_tree(root, cfg.patients, cfg.seed, n_slices=cfg.slices_per_patient)
        man.record("write phantom", tm)
        man.data["data"] = {"description": f"embedded synthetic phantom, {cfg.patients} patients, seed {cfg.seed}",
                            "root": rel_to(out, root)}
    else:
        root = Path(cfg.data)
        if not root.exists():
            raise FileNotFoundError(f"--data {root} does not exist")
        man.data["data"] = {"description": f"DICOM tree {root}", "root": str(root)}
    prog.stage(f"preparing the slice cache from {root}")
    cache_dir = out / "cache"
    tm = Timer()
    res = prepare(root, cache_dir, workers=2, config=PrepareConfig(seed=cfg.seed), progress=cfg.progress)
    if res.n_slices == 0:
        raise RuntimeError(f"no usable CT slices under {root} ({len(res.skipped)} series skipped)")
    cache_path = Path(res.cache_dir)
    man.data["cache"] = rel_to(out, cache_path)
    man.data["data"].update(slices=res.n_slices, series=res.n_series, patients=res.n_patients,
                            skipped=len(res.skipped))
    man.record("prepare cache", tm)
    man.save()
    return cache_path


def uses_demo_generators(cfg: PipelineConfig) -> bool:
    """The bundled demo generators stand in for training on the phantom unless told to retrain."""
    return cfg.data is None and not cfg.retrain


def _train_config(kind: str, cfg: PipelineConfig) -> Any:
    from ..training.config import config_from_dict
    from ..training.recipes import recipe

    over: dict[str, Any] = {
        **recipe(cfg.recipe, kind),
        "seed": cfg.seed,
        "device": cfg.device,
        "fid": cfg.fid,
        "epochs": cfg.vae_epochs if kind == "vae" else cfg.gan_epochs,
        "max_steps": cfg.vae_max_steps if kind == "vae" else cfg.gan_max_steps,
    }
    batch = cfg.vae_batch if kind == "vae" else cfg.gan_batch
    if batch is not None:
        over["batch_size"] = batch
    if cfg.preset == "tiny":
        over.update(sample_every=0, log_every=5, checkpoint_every=0)
    return config_from_dict(kind, {k: v for k, v in over.items() if v is not None})


def stage_generators(cfg: PipelineConfig, cache: Path, man: Manifest, prog: Progress) -> dict[str, Path]:
    from ..models.registry import GENERATOR_FILE, generator_fingerprint
    from ..training.data import open_cache

    out: dict[str, Path] = {}
    train = test = None
    for kind in cfg.generators:
        run_dir = Path(cfg.out) / kind
        gfile = run_dir / GENERATOR_FILE
        # The engines export a generator at every epoch end; only the manifest says training finished.
        if kind in man.data["generators"] and gfile.exists():
            out[kind] = gfile
            continue
        tm = Timer()
        if uses_demo_generators(cfg):
            from ..analysis.demo import require_demo

            demo = require_demo(kind)
            prog.stage(f"using the bundled demo {kind.upper()} ({demo.generator.name}; --retrain trains a new one)")
            run_dir.mkdir(parents=True, exist_ok=True)
            for src, dst in ((demo.generator, gfile), (demo.generator.with_suffix(".json"), gfile.with_suffix(".json"))):
                shutil.copyfile(src, dst)
            info: dict[str, Any] = {"source": "bundled demo (training/make_demo_models.py)"}
        else:
            prog.stage(f"training the {kind.upper()} ({cfg.recipe} recipe)")
            tcfg = _train_config(kind, cfg)
            if train is None:
                train, test = open_cache(cache)
            if kind == "vae":
                from ..training.vae import train_vae as engine
            else:
                from ..training.gan import train_gan as engine
            last = prog.drive(engine(tcfg, train, run_dir, threading.Event(), test_data=test), kind.upper())
            if not gfile.exists():
                raise RuntimeError(f"{kind} training ended without {gfile} (last event {last!r})")
            metrics = dict(getattr(last, "metrics", {}) or {})
            info = {"source": f"trained here ({cfg.recipe} recipe)", "train_slices": len(train),
                    **{k: v for k, v in metrics.items() if isinstance(v, int | float)}}
        man.data["generators"][kind] = {"path": rel_to(Path(cfg.out), gfile), "fingerprint": generator_fingerprint(gfile),
                                        "seconds": tm.elapsed()[0], **info}
        man.record(f"generator {kind}", tm)
        man.save()
        out[kind] = gfile
    return out


def stage_quality(cfg: PipelineConfig, gens: dict[str, Path], cache: Path, man: Manifest, prog: Progress) -> None:
    """k-NN precision / recall / diversity of each generator against held-out real slices."""
    if cfg.quality_samples <= 0:
        return
    from ..analysis.quality import generator_quality
    from ..models.registry import load_generator

    quality = man.data.setdefault("quality", {})
    for kind, gfile in gens.items():
        if kind in quality:
            continue
        reference = "phantom" if cfg.data is None else str(cache)
        prog.stage(f"measuring the {kind.upper()}'s quality ({cfg.quality_samples} samples, {', '.join(cfg.quality_spaces)})")
        tm = Timer()
        try:
            rep = generator_quality(load_generator(gfile), reference, n=cfg.quality_samples, seed=cfg.seed,
                                    spaces=cfg.quality_spaces)
        except (ValueError, FileNotFoundError, ImportError) as exc:
            quality[kind] = {"error": str(exc)}
        else:
            quality[kind] = rep.to_dict()
            for line in rep.lines():
                prog.stage(line.strip())
        man.record(f"quality {kind}", tm)
        man.save()


# -- direction sets -----------------------------------------------------------------------------

def set_name(kind: str, rec: str, cell: str, seed: int, cfg: PipelineConfig) -> str:
    base = f"{kind}-{rec}-{cell}"
    return base if len(cfg.direction_seeds) == 1 else f"{base}-s{seed}"


def random_name(kind: str, K: int, index: int) -> str:
    """The ``index``-th random set of K directions for one generator (matched in K to the cells)."""
    return f"{kind}-random-K{K}-s{index}"


def cell_K(cell: str) -> int:
    return CELLS[cell][1]


def direction_config(cfg: PipelineConfig, kind: str, rec: str, cell: str, seed: int, gfile: Path, fp: str) -> Any:
    from ..directions.voynov import DirectionsConfig
    from ..training.recipes import direction_recipe

    variant, K = CELLS[cell]
    kw: dict[str, Any] = direction_recipe(cfg.direction_recipe)
    kw["reconstructor"] = "resnet18" if rec == "resnet" else "lenet"
    steps = cfg.direction_steps.get(kind, {}).get(rec) if cfg.direction_steps else None
    if steps is not None:
        kw["steps"] = steps
    elif cfg.direction_steps_scale is not None:
        kw["steps"] = None
        kw["steps_scale"] = cfg.direction_steps_scale
    if cfg.reconstructor_input is not None:
        kw["reconstructor_input"] = cfg.reconstructor_input
    if rec == "resnet":
        kw.pop("reconstructor_input", None)  # ResNet18 keeps the paper's full-size input
    if cfg.direction_batch is not None:
        kw["batch_size"] = cfg.direction_batch
    if cfg.direction_eval_batches is not None:
        kw["eval_batches"] = cfg.direction_eval_batches
    return DirectionsConfig(**{**kw, "K": K, "variant": variant, "seed": seed, "device": cfg.device,
                               "generator_kind": kind, "generator_fingerprint": fp, "generator_path": str(gfile),
                               "log_every": 10, "checkpoint_every": 10**9})


def _train_cell(dcfg_dict: dict[str, Any], gfile: str, run_dir: str, threads: int) -> dict[str, Any]:
    """One direction cell in a worker process (module level: it must pickle under spawn)."""
    import torch

    from ..directions.voynov import DirectionsConfig, train_directions
    from ..events import Finished
    from ..models.registry import load_generator

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    last = None
    for ev in train_directions(DirectionsConfig(**dcfg_dict), load_generator(gfile), Path(run_dir), threading.Event()):
        last = ev
    if not isinstance(last, Finished):
        raise RuntimeError(f"direction training in {run_dir} did not finish: {last!r}")
    return {**last.metrics, "_seconds": time.perf_counter() - t0}


def stage_directions(cfg: PipelineConfig, gens: dict[str, Path], man: Manifest, prog: Progress) -> None:
    from ..directions.voynov import DIRECTIONS_FILE

    out = Path(cfg.out)
    pending = []
    for kind, gfile in gens.items():
        fp = man.data["generators"][kind]["fingerprint"]
        for rec in cfg.reconstructors:
            for cell in cfg.cells:
                for seed in cfg.direction_seeds:
                    name = set_name(kind, rec, cell, seed, cfg)
                    run_dir = out / "directions" / name
                    if name in man.data["sets"] and (run_dir / DIRECTIONS_FILE).exists():
                        continue
                    dcfg = direction_config(cfg, kind, rec, cell, seed, gfile, fp)
                    pending.append((name, kind, rec, cell, seed, dcfg, gfile, run_dir))

    def record(item: tuple, metrics: dict[str, Any], seconds: float) -> None:
        name, kind, rec, cell, seed, dcfg, _, run_dir = item
        rca = metrics.get("rca")
        man.data["sets"][name] = {
            "name": name, "path": rel_to(out, run_dir / DIRECTIONS_FILE), "generator": kind, "kind": "discovered",
            "reconstructor": rec, "config": cell, "seed": seed, "rca": rca, "ls": metrics.get("shift_loss"),
            "chance": 1.0 / dcfg.K, "learned": rca is not None and rca >= cfg.learned_rca,
            "steps": dcfg.total_steps, "seconds": seconds, "direction_config": asdict(dcfg),
        }
        man.save()
        prog.stage(f"{name}: RCA {rca:.3f} (chance {1 / dcfg.K:.3f}) in {seconds:.0f} s")

    workers = min(cfg.workers, len(pending))
    if workers > 1 and parallel_on_cpu(cfg):
        from ..utils.processes import completed, worker_pool

        prog.stage(f"discovering {len(pending)} direction sets, {workers} at a time: "
                   + ", ".join(p[0] for p in pending))
        tm = Timer()
        with worker_pool(workers) as pool:  # workers die with this process (Ctrl-C, SIGTERM, kill)
            futs = {pool.submit(_train_cell, asdict(p[5]), str(p[6]), str(p[7]), 1): p for p in pending}
            for fut in completed(futs):  # a signal ends the wait safely (see utils.processes.completed)
                metrics = fut.result()
                record(futs[fut], metrics, metrics.pop("_seconds"))
        man.record("directions", tm)
    else:
        from ..directions.voynov import train_directions
        from ..models.registry import load_generator

        loaded: dict[str, Any] = {}
        for item in pending:
            name, kind, _, _, _, dcfg, gfile, run_dir = item
            G = loaded.setdefault(kind, load_generator(gfile))
            tm = Timer()
            prog.stage(f"discovering directions {name} ({dcfg.total_steps} steps)")
            last = prog.drive(train_directions(dcfg, G, run_dir, threading.Event()), name)
            record(item, dict(getattr(last, "metrics", {}) or {}), tm.elapsed()[0])
            man.record(f"directions {name}", tm)
    stage_baselines(cfg, gens, man, prog)


def parallel_on_cpu(cfg: PipelineConfig) -> bool:
    """Worker processes (one torch thread each) only on a CPU: a GPU is shared by one process."""
    if cfg.workers < 2:
        return False
    import torch

    accelerator = torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available())
    return cfg.device == "cpu" or (cfg.device == "auto" and not accelerator)


def stage_baselines(cfg: PipelineConfig, gens: dict[str, Path], man: Manifest, prog: Progress) -> None:
    """Closed-form sets. ``random``: ``cfg.random_sets`` sets for every K among the cells, so each cell is
    compared with random sets of its own K (cheap: no training; the labelling is what costs)."""
    from ..directions.baselines import compute_baseline
    from ..models.registry import load_generator

    out = Path(cfg.out)
    for kind, gfile in gens.items():
        fp = man.data["generators"][kind]["fingerprint"]
        G = None
        for method in cfg.baselines:
            if method == "random":
                jobs = [(random_name(kind, K, i), K, i) for K in sorted({cell_K(c) for c in cfg.cells})
                        for i in range(cfg.random_sets)]
            else:
                jobs = [(f"{kind}-{method}", 32, cfg.direction_seeds[0])]
            for name, K, seed in jobs:
                path = out / "directions" / f"{name}.safetensors"
                if name in man.data["sets"] and path.exists():
                    continue
                if G is None:
                    G = load_generator(gfile)
                prog.stage(f"baseline directions {name}")
                # Random seeds from 1000 on: a discovery seed's A starts from that seed's random init.
                ds = compute_baseline(method, G, K, seed=seed + 1000 if method == "random" else seed,
                                      n_samples=2000, generator=fp)
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save(path)
                man.data["sets"][name] = {"name": name, "path": rel_to(out, path), "generator": kind,
                                          "kind": "baseline", "method": method, "seed": seed, "K": K}
                man.save()
