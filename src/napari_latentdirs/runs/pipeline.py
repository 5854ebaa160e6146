"""The headless main job (README command 1): data -> generators -> directions -> labels -> report.

``run_pipeline(PipelineConfig(out=...))`` runs every stage in order:

1. **data**: without ``data`` a synthetic phantom DICOM tree is written
   (``phantom.write_phantom_tree``); the DICOM tree is then prepared into a
   slice cache (``data.cache.prepare``);
2. **generators**: a VAE and a DCGAN (``training.vae.train_vae``,
   ``training.gan.train_gan``);
3. **directions**: the paper's Table 1 grid -- {VAE, GAN} x {LeNet, ResNet}
   x {A 32x32 orthonormal, 32x32 unit, 32x100 unit}
   (``training.directions.train_directions``) -- plus the baselines
   (random, PCA/GANSpace, SeFa; ``analysis.baselines``);
4. **analysis**: automatic labels for every direction set, MIG / DCI /
   selectivity, z-position, interpolation and memorization, paper figures;
5. **report**: ``<out>/report/index.html``.

Each stage records its outputs in ``<out>/manifest.json`` and is skipped when
they already exist, so an interrupted run resumes where it stopped. Progress
is shown with tqdm bars driven by the engines' events. Presets: ``tiny``
(phantom, CPU, minutes) and ``paper`` (the paper's epochs, widths and
direction iterations, for a GPU).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.paper import COLUMNS as PAPER_COLUMNS
from ..directions import METHODS
from ..utils.atomic import atomic_write_text
from .folder import RUN_FORMAT, RunFolderError, check_run_folder, from_run, rel_to

log = logging.getLogger(__name__)

GENERATORS = ("vae", "gan")
RECONSTRUCTORS = ("lenet", "resnet")
CELLS = PAPER_COLUMNS
BASELINES = tuple(m for m, s in METHODS.items() if not s.learned and "encoder" not in s.needs)  # GAN and VAE alike


@dataclass
class PipelineConfig:
    out: str
    data: str | None = None  # LIDC-IDRI (or any DICOM) root; None = the embedded phantom
    preset: str = "tiny"
    seed: int = 0
    device: str = "auto"
    # data
    patients: int = 10  # phantom patients
    slices_per_patient: int | None = 48  # phantom slices per scan (None: the scan length / thickness)
    # generators (None = the training config's default)
    gan_epochs: int | None = 80
    vae_epochs: int | None = 40
    gan_max_steps: int | None = 800
    vae_max_steps: int | None = 700
    gan_batch: int | None = 32
    vae_batch: int | None = 16
    gan_lr: float | None = None
    # Width 4 draws no body within the CPU budget; width 8 does in 800 steps (measured, ~2 min).
    gan_model: dict[str, int] = field(default_factory=lambda: {"g_width": 8, "d_width": 8})
    vae_lr: float | None = 1e-3  # the paper's 1e-4 needs its 50 epochs; a few dozen CPU steps need more
    fid: bool = False
    # directions
    # steps per (generator, reconstructor); empty: the paper's counts x direction_steps_scale
    direction_steps: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"vae": {"lenet": 200, "resnet": 24}, "gan": {"lenet": 200, "resnet": 24}}
    )
    # The paper's Adam lr 1e-4 needs its thousands of steps; a few hundred CPU steps learn at 1e-3.
    direction_lr: float | None = 1e-3
    direction_steps_scale: float | None = None  # paper preset: None = the paper's counts
    direction_batch: int = 16
    direction_eval_batches: int = 4
    cells: tuple[str, ...] = ("ortho32", "unit32", "unit100")
    generators: tuple[str, ...] = GENERATORS
    reconstructors: tuple[str, ...] = RECONSTRUCTORS
    baselines: tuple[str, ...] = BASELINES
    # analysis
    label_latents: int = 12
    label_alphas: tuple[float, ...] = (-3.0, 3.0)
    label_boot: int = 100
    score_samples: int = 400
    interp_steps: int = 10
    inversion_restarts: int = 3
    inversion_steps: int = 150
    memorization_samples: int = 200
    gifs: int = 8  # animated directions in the report (VAE main set)
    gif_frames: int = 12
    fig8_latents: int = 24  # the paper's Fig. 8 shows 24
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {},
    "paper": {
        "patients": 40,
        "slices_per_patient": None,
        "gan_max_steps": None,
        "vae_max_steps": None,
        "vae_lr": None,
        "direction_lr": None,
        "gan_model": {},
        "gan_epochs": None,  # the paper's 50
        "vae_epochs": None,
        "gan_batch": None,
        "vae_batch": None,
        "fid": True,
        "direction_steps": {},
        "direction_steps_scale": 1.0,
        "direction_batch": 128,
        "gif_frames": 16,
        "direction_eval_batches": 100,
        "label_latents": 64,
        "label_alphas": (-3.0, -1.5, 1.5, 3.0),
        "label_boot": 200,
        "score_samples": 2000,
        "inversion_restarts": 5,
        "inversion_steps": 500,
        "memorization_samples": 1000,
    },
}


def make_config(out: str | Path, preset: str = "tiny", **overrides: Any) -> PipelineConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    kw = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return PipelineConfig(out=str(out), preset=preset, **kw)


# -- progress -------------------------------------------------------------------------------

class Progress:
    """tqdm bars over engine events; silent when disabled (tests)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def stage(self, text: str) -> None:
        log.info("== %s", text)
        if self.enabled:
            from tqdm import tqdm

            tqdm.write(f"[latentdirs] {text}")

    def drive(self, events: Iterable[Any], desc: str) -> Any:
        """Consume an engine's events; return the last one (Finished or Stopped)."""
        from ..events import Finished, Message, Started, Step, Stopped

        bar = None
        last = None
        try:
            for ev in events:
                last = ev
                if isinstance(ev, Started) and self.enabled:
                    from tqdm import tqdm

                    bar = tqdm(total=ev.total_steps, initial=ev.start_step, desc=desc, unit="step", leave=True, dynamic_ncols=True)
                elif isinstance(ev, Step) and bar is not None:
                    bar.n = min(ev.step + 1, bar.total or ev.step + 1)
                    if ev.losses:
                        bar.set_postfix({k: f"{v:.3g}" for k, v in list(ev.losses.items())[:3]}, refresh=False)
                    bar.refresh()
                elif isinstance(ev, Message):
                    log.info("%s: %s", desc, ev.text)
                elif isinstance(ev, (Finished, Stopped)) and bar is not None:
                    bar.n = max(bar.n, getattr(ev, "step", bar.n))
                    bar.refresh()
        finally:
            if bar is not None:
                bar.close()
        return last

    def loop(self, total: int, desc: str) -> Callable[[int, int], None]:
        if not self.enabled:
            return lambda i, n: None
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit="dir", leave=True, dynamic_ncols=True)

        def update(i: int, n: int) -> None:
            bar.n = i
            bar.refresh()
            if i >= n:
                bar.close()

        return update


# -- manifest -------------------------------------------------------------------------------

class Manifest:
    def __init__(self, root: Path) -> None:
        self.path = root / "manifest.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data["format"] = RUN_FORMAT
        self.data.setdefault("generators", {})
        self.data.setdefault("sets", {})
        self.data.setdefault("timings", {})

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, default=str))

    def record(self, name: str, timer: Timer) -> None:
        """Wall-clock and CPU seconds (this process and its finished children) of one step."""
        wall, cpu = timer.elapsed()
        self.data["timings"][name] = wall
        self.data.setdefault("cpu_seconds", {})[name] = cpu


def _cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Timer:
    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.time(), _cpu_now()

    def elapsed(self) -> tuple[float, float]:
        return time.time() - self.wall0, _cpu_now() - self.cpu0


# -- stages ---------------------------------------------------------------------------------

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
        man.data["data"] = {"description": f"embedded synthetic phantom, {cfg.patients} patients, seed {cfg.seed}", "root": rel_to(out, root)}
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
    man.data["data"].update(slices=res.n_slices, series=res.n_series, patients=res.n_patients, skipped=len(res.skipped))
    man.record("prepare cache", tm)
    man.save()
    return cache_path


def _train_config(kind: str, cfg: PipelineConfig) -> Any:
    from ..training.config import config_from_dict

    epochs = cfg.vae_epochs if kind == "vae" else cfg.gan_epochs
    steps = cfg.vae_max_steps if kind == "vae" else cfg.gan_max_steps
    batch = cfg.vae_batch if kind == "vae" else cfg.gan_batch
    lr = cfg.vae_lr if kind == "vae" else cfg.gan_lr
    over: dict[str, Any] = {
        "preset": "tiny" if cfg.preset == "tiny" else "paper",
        "seed": cfg.seed,
        "device": cfg.device,
        "fid": cfg.fid,
        "epochs": epochs,
        "max_steps": steps,
        "batch_size": batch,
        "lr": lr,
    }
    if kind == "gan" and cfg.gan_model:
        over["model"] = dict(cfg.gan_model)
    if cfg.preset == "tiny":
        over.update(sample_every=0, log_every=5, checkpoint_every=0)
    return config_from_dict(kind, {}, **over)


def stage_generators(cfg: PipelineConfig, cache: Path, man: Manifest, prog: Progress) -> dict[str, Path]:
    from ..models.registry import GENERATOR_FILE, generator_fingerprint
    from ..training.data import open_cache

    out: dict[str, Path] = {}
    train = test = None
    for kind in cfg.generators:
        run_dir = Path(cfg.out) / kind
        gfile = run_dir / GENERATOR_FILE
        # The engines export a generator at every epoch end; only the manifest says training finished.
        if kind not in man.data["generators"] or not gfile.exists():
            tm = Timer()
            prog.stage(f"training the {kind.upper()} ({cfg.preset})")
            tcfg = _train_config(kind, cfg)
            if train is None:
                train, test = open_cache(cache)
            if kind == "vae":
                from ..training.vae import train_vae as engine
            else:
                from ..training.gan import train_gan as engine
            last = prog.drive(engine(tcfg, train, run_dir, threading.Event(), test_data=test), f"{kind.upper()}")
            if not gfile.exists():
                raise RuntimeError(f"{kind} training ended without {gfile} (last event {last!r})")
            metrics = dict(getattr(last, "metrics", {}) or {})
            man.data["generators"][kind] = {
                "path": rel_to(Path(cfg.out), gfile),
                "fingerprint": generator_fingerprint(gfile),
                "seconds": tm.elapsed()[0],
                "train_slices": len(train),
                **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            }
            man.record(f"train {kind}", tm)
            man.save()
        out[kind] = gfile
    return out


def _direction_config(cfg: PipelineConfig, kind: str, rec: str, cell: str, gfile: Path, fp: str) -> Any:
    from ..directions.voynov import DirectionsConfig

    variant, K = CELLS[cell]  # noqa: N806
    steps = cfg.direction_steps.get(kind, {}).get(rec) if cfg.direction_steps else None
    return DirectionsConfig(
        K=K,
        variant=variant,
        reconstructor="resnet18" if rec == "resnet" else "lenet",
        steps=steps,
        steps_scale=cfg.direction_steps_scale or 1.0,
        **({"lr": cfg.direction_lr} if cfg.direction_lr else {}),
        batch_size=cfg.direction_batch,
        eval_batches=cfg.direction_eval_batches,
        seed=cfg.seed,
        device=cfg.device,
        generator_kind=kind,
        generator_fingerprint=fp,
        generator_path=str(gfile),
        log_every=10,
        checkpoint_every=10**9,
    )


def stage_directions(cfg: PipelineConfig, gens: dict[str, Path], man: Manifest, prog: Progress) -> None:
    from ..directions.voynov import DIRECTIONS_FILE, train_directions
    from ..models.registry import load_generator

    for kind, gfile in gens.items():
        fp = man.data["generators"][kind]["fingerprint"]
        G = None  # noqa: N806
        for rec in cfg.reconstructors:
            for cell in cfg.cells:
                name = f"{kind}-{rec}-{cell}"
                run_dir = Path(cfg.out) / "directions" / name
                if name in man.data["sets"] and (run_dir / DIRECTIONS_FILE).exists():
                    continue
                if G is None:
                    G = load_generator(gfile)  # noqa: N806
                tm = Timer()
                dcfg = _direction_config(cfg, kind, rec, cell, gfile, fp)
                prog.stage(f"discovering directions {name} ({dcfg.total_steps} steps)")
                last = prog.drive(train_directions(dcfg, G, run_dir, threading.Event()), name)
                metrics = dict(getattr(last, "metrics", {}) or {})
                man.data["sets"][name] = {
                    "name": name,
                    "path": rel_to(Path(cfg.out), run_dir / DIRECTIONS_FILE),
                    "generator": kind,
                    "kind": "discovered",
                    "reconstructor": rec,
                    "config": cell,
                    "rca": metrics.get("rca"),
                    "ls": metrics.get("shift_loss"),
                    "steps": dcfg.total_steps,
                    "seconds": tm.elapsed()[0],
                }
                man.record(f"directions {name}", tm)
                man.save()
        for method in cfg.baselines:
            name = f"{kind}-{method}"
            path = Path(cfg.out) / "directions" / f"{name}.safetensors"
            if name in man.data["sets"] and path.exists():
                continue
            if G is None:
                G = load_generator(gfile)  # noqa: N806
            prog.stage(f"baseline directions {name}")
            ds = make_baseline(method, G, K=32, seed=cfg.seed, generator=fp)
            ds.save(path)
            man.data["sets"][name] = {"name": name, "path": rel_to(Path(cfg.out), path), "generator": kind, "kind": "baseline", "method": method}
            man.save()


def make_baseline(method: str, G: Any, K: int = 32, seed: int = 0, slices: Any = None, generator: str = "") -> Any:  # noqa: N803
    """Baseline directions (``analysis.baselines.compute_baseline``)."""
    from ..directions.baselines import compute_baseline

    return compute_baseline(method, G, K, slices=slices, seed=seed, n_samples=2000, generator=generator)


# -- analysis -------------------------------------------------------------------------------

def _load_slices(cache: Path, split: str, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` slices (N, H, W) of one split of the slice cache, a seeded random subset."""
    from ..data.cache import SliceCache

    sc = SliceCache(cache)
    try:
        rows = np.asarray(sc.indices(split))
        if rows.size == 0:
            return np.zeros((0, 128, 128), np.float32)
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(rows, size=min(n, rows.size), replace=False))
        x = np.asarray(sc.read_many([int(i) for i in pick]), dtype=np.float32)
    finally:
        sc.close()
    return x.reshape(x.shape[0], *x.shape[-2:])


def _codes(z: np.ndarray, A: np.ndarray) -> np.ndarray:  # noqa: N803
    """Latent coordinates along the directions: pinv(A) z (min-norm when K > d)."""
    An = A / np.maximum(np.linalg.norm(A, axis=0, keepdims=True), 1e-12)  # noqa: N806
    return z @ np.linalg.pinv(An).T


def analyse(run: str | Path, cfg: PipelineConfig | None = None, probes: Any = None, progress: bool | None = None) -> Path:
    """Labels, scores, figures, interpolation and memorization for a finished run -> summary.json."""
    from ..analysis import figures as figs
    from ..analysis.disentanglement import dci, mig
    from ..analysis.interpolation import interpolate
    from ..analysis.inversion import InversionConfig
    from ..analysis.labelling import (
        LabelConfig,
        LabelResult,
        generate_images,
        label_directions,
    )
    from ..analysis.memorization import memorization
    from ..analysis.paper import PAPER_TABLE1
    from ..directions.set import DirectionSet
    from ..models.registry import load_generator
    from ..probes.factors import PAPER_FACTORS
    from ..probes.phantom import phantom_probes

    run = Path(run)
    man = Manifest(run)
    if cfg is None:
        saved = man.data.get("config", {})
        cfg = PipelineConfig(**{**saved, "out": str(run)}) if saved else PipelineConfig(out=str(run))
        for key in ("label_alphas", "cells", "generators", "reconstructors", "baselines"):
            setattr(cfg, key, tuple(getattr(cfg, key)))
    prog = Progress(cfg.progress if progress is None else progress)
    probes = probes or phantom_probes()
    adir = run / "analysis"
    rdir = run / "report"
    (adir / "labels").mkdir(parents=True, exist_ok=True)
    rdir.mkdir(parents=True, exist_ok=True)
    tm_all = Timer()
    window = figs.CT_WINDOW if probes.name == "phantom" else figs.FULL_RANGE
    lcfg = LabelConfig(n_latents=cfg.label_latents, alphas=tuple(cfg.label_alphas), n_boot=cfg.label_boot, seed=cfg.seed)
    summary: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": cfg.preset,
        "data": man.data.get("data", {}),
        "generators": man.data["generators"],
        "warnings": [],
        "figures": {"gifs": []},
        "labelling_note": (
            f"Each direction (unit length) shifts {lcfg.n_latents} random latents by alpha in {list(lcfg.alphas)}; the "
            f"'{probes.name}' probes measure {', '.join(probes.factors)}. Effect = |mean slope| x max alpha in units of "
            f"the factor's natural SD (bootstrap 95% CI over latents); significant effect = effect - {lcfg.z:g} SE (t-widened). "
            f"Label = top factor if its share of the significant effects not explained as its known consequences (selectivity) "
            f">= {lcfg.selectivity_threshold:g} and >= {100 * lcfg.min_consistency:.0f}% of latents agree on the sign, "
            f"'entangled' otherwise, 'no effect' if the top significant effect < {lcfg.min_effect:g}. Duplicates: |cos| of effect "
            f"vectors >= {lcfg.duplicate_effect_corr:g} and of image changes >= {lcfg.duplicate_image_corr:g}. Factor cells show significant effects."
        ),
        "disentanglement_note": (
            f"{cfg.score_samples} latents z ~ N(0, I) per generator; factors = the probes on G(z); codes = pinv(A) z "
            "(coordinates along the unit directions). MIG (Chen et al. 2018, 20 histogram bins), DCI (Eastwood & Williams 2018, "
            "LASSO importances; I = test NRMSE, lower is better), selectivity = mean over the factors of the best labeller "
            "selectivity among directions whose top factor it is (0 when none)."
        ),
    }
    gens = {k: load_generator(from_run(run, v["path"])) for k, v in man.data["generators"].items()}
    # Shared per-generator samples for the scores.
    rng = np.random.default_rng(cfg.seed + 1)
    base: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, G in gens.items():  # noqa: N806
        prog.stage(f"measuring {cfg.score_samples} {kind.upper()} samples with the {probes.name} probes")
        z = rng.standard_normal((cfg.score_samples, G.latent_dim)).astype(np.float32)
        V = probes(generate_images(G, z))  # noqa: N806
        base[kind] = (z, V)

    sets_out: list[dict[str, Any]] = []
    labels_by_set: dict[str, LabelResult] = {}
    for name, info in man.data["sets"].items():
        G = gens.get(info["generator"])  # noqa: N806
        if G is None or not from_run(run, info["path"]).exists():
            summary["warnings"].append(f"direction set {name} skipped: generator or file missing")
            continue
        ds = DirectionSet.load(from_run(run, info["path"]))
        lpath = adir / "labels" / f"{name}.json"
        if lpath.exists():
            res = LabelResult.load(lpath)
        else:
            prog.stage(f"labelling {name} (K={ds.K})")
            res = label_directions(G, ds, probes, lcfg, progress=prog.loop(ds.K, f"label {name}"))
            res.save(lpath)
        labels_by_set[name] = res
        z, V = base[info["generator"]]  # noqa: N806
        ok = np.all(np.isfinite(V), axis=1)
        codes = _codes(z[ok], ds.A)
        # Paths relative to the run: the report of a copied run reads the copy's own files.
        row: dict[str, Any] = {**info, "path": rel_to(run, from_run(run, info["path"])), "K": ds.K, "method": ds.method,
                               "labels_path": rel_to(run, lpath),
                               "valid_fraction": res.valid_fraction}
        if res.valid_fraction < 0.5:
            summary["warnings"].append(
                f"{name}: the {probes.name} probes accepted only {100 * res.valid_fraction:.0f}% of the generator's samples "
                "(no body-like image): its labels and scores carry little meaning")
        try:
            if ok.sum() < 20:
                raise ValueError(f"only {int(ok.sum())} of {len(ok)} samples could be measured")
            row["mig"] = mig(codes, V[ok]).mig
            d = dci(codes, V[ok])
            row.update(dci_d=d.disentanglement, dci_c=d.completeness, dci_i=d.informativeness)
        except ValueError as exc:
            summary["warnings"].append(f"{name}: scores not computed ({exc})")
        fsel = res.factor_selectivity()
        row["selectivity"] = float(np.mean(list(fsel.values())))
        row["selectivity_per_factor"] = fsel
        found = {f: v for f, v in res.found().items() if f in PAPER_FACTORS}
        row["found"] = found
        row["n_found"] = len(found)
        row["table_rows"] = 40 if ds.K <= 40 else 30
        sets_out.append(row)
    summary["direction_sets"] = sets_out
    summary["factors_found"] = {s["name"]: s["found"] for s in sets_out if s.get("kind") == "discovered" or s.get("method") != "random"}
    summary["table1"] = [
        {"generator": s["generator"], "reconstructor": s["reconstructor"], "config": s["config"], "rca": s.get("rca"), "ls": s.get("ls"),
         "paper_rca": PAPER_TABLE1[(s["generator"], s["reconstructor"], s["config"])][0],
         "paper_ls": PAPER_TABLE1[(s["generator"], s["reconstructor"], s["config"])][1], "steps": s.get("steps")}
        for s in sets_out if s.get("kind") == "discovered"
    ]
    if cfg.preset == "tiny":
        summary["table1_note"] = (
            "Tiny preset: generators and direction models trained for a few hundred steps on the phantom on a CPU "
            "(the paper: 50 epochs on LIDC-IDRI and 3,000-250,000 direction iterations), so the numbers show the pipeline "
            "working, not a reproduction. Run with --data LIDC_ROOT --preset paper on a GPU for that."
        )

    # z-position: the discovered direction that moves the anatomical level most.
    if "z_level" in probes.factors:
        j = probes.factors.index("z_level")
        best = None
        for s in sets_out:
            if s.get("kind") != "discovered":
                continue
            res = labels_by_set[s["name"]]
            for k in range(res.K):
                cand = (res.significant[k, j] * (1.0 if res.labels[k] == "z_level" else 0.5), s["name"], k)
                if best is None or cand[0] > best[0]:
                    best = cand
        rand_eff = [float(labels_by_set[s["name"]].significant[:, j].max()) for s in sets_out if s.get("method") == "random" or s["name"].endswith("-random")]
        if best is not None:
            _, sname, k = best
            res = labels_by_set[sname]
            summary["z_position"] = {
                "set": sname, "direction": int(k), "effect": float(res.effects[k, j]), "significant": float(res.significant[k, j]),
                "ci": [float(res.ci_low[k, j]), float(res.ci_high[k, j])], "consistency": float(res.consistency[k]),
                "selectivity": float(res.selectivity[k]), "label": res.labels[k], "top_factor": res.top_factor[k],
                "random_effect": max(rand_eff) if rand_eff else float("nan"),
            }

    # Figures.
    prog.stage("rendering figures")
    fig = summary["figures"]
    _sample_figure(gens, rdir / "samples.png", window, cfg.seed)
    fig["samples"] = "samples.png"
    for kind, G in gens.items():  # noqa: N806
        main = _main_set(sets_out, kind)
        if main is None:
            continue
        res = labels_by_set[main["name"]]
        ds = DirectionSet.load(from_run(run, main["path"]))
        ks, labs = _showcase(res)
        fig[f"fig2_{kind}"] = figs.fig_direction_grid(G, ds.A, ks, labs, rdir / f"fig2_{kind}.png", seed=cfg.seed, window=window,
                                                     title=f"{kind.upper()}: {main['name']}").name
        rand = next((s for s in sets_out if s["generator"] == kind and s["name"].endswith("-random")), None)
        if rand is not None:
            top5 = [int(k) for k in np.argsort(res.rank)[:5]]
            key = "fig9" if kind == "gan" else "fig10"
            fig[key] = figs.fig_random_vs_discovered(G, DirectionSet.load(from_run(run, rand["path"])).A, ds.A, rdir / f"{key}_{kind}.png", ks_found=top5,
                                                     seed=cfg.seed, window=window, title=f"{kind.upper()}: random vs {main['name']}").name
        if kind == "vae":
            for k, lab in list(zip(ks, labs))[: cfg.gifs]:
                gif = figs.direction_gif(G, ds.A[:, k] / np.linalg.norm(ds.A[:, k]), rdir / f"gif_{kind}_{k}.gif", n=3,
                                         frames=cfg.gif_frames, seed=cfg.seed, window=window)
                fig["gifs"].append({"file": gif.name, "caption": f"{main['name']} {lab}"})
    zp = summary.get("z_position")
    if zp:
        G = gens[man.data["sets"][zp["set"]]["generator"]]  # noqa: N806
        d = DirectionSet.load(from_run(run, man.data["sets"][zp["set"]]["path"])).A[:, zp["direction"]]
        fig["fig8"] = figs.fig_latents_along(G, d / np.linalg.norm(d), rdir / "fig8_z_position.png", n=cfg.fig8_latents,
                                             seed=cfg.seed, window=window,
                                             title=f"z-position: {zp['set']} #{zp['direction']}").name

    # Interpolation and memorization need real slices.
    cache = from_run(run, man.data["cache"]) if man.data.get("cache") else None
    if cache is not None and cache.exists():
        try:
            train = _load_slices(cache, "train", 4000, cfg.seed)
            test = _load_slices(cache, "test", max(cfg.memorization_samples, 2), cfg.seed)
        except (ImportError, OSError, ValueError, KeyError) as exc:
            train = test = np.zeros((0, 128, 128), np.float32)
            summary["warnings"].append(f"slice cache unreadable: {exc}")
        if len(test) >= 2 and len(train) >= 1:
            summary["interpolation"], summary["memorization"] = {}, {}
            icfg = InversionConfig(restarts=cfg.inversion_restarts, steps=cfg.inversion_steps, seed=cfg.seed)
            pair = test[[0, len(test) // 2]]
            for kind, G in gens.items():  # noqa: N806
                prog.stage(f"interpolation and memorization, {kind.upper()}")
                it = interpolate(G, pair, steps=cfg.interp_steps, cfg=icfg)
                f11 = figs.fig_interpolation(it.originals, it.frames, rdir / f"fig11_{kind}.png", window=window,
                                             title=f"{kind.upper()} interpolation between two held-out slices")
                summary["interpolation"][kind] = {"figure": f11.name, "method": it.embedding.method,
                                                  "mse": [float(v) for v in it.embedding.mse], "smoothness": it.smoothness}
                zs = np.random.default_rng(cfg.seed + 2).standard_normal((cfg.memorization_samples, G.latent_dim)).astype(np.float32)
                m = memorization(generate_images(G, zs), train, test)
                summary["memorization"][kind] = {"generated_median": m.generated_median, "heldout_median": m.heldout_median,
                                                 "ratio": m.ratio, "copies": m.copies, "train_slices": int(len(train)),
                                                 "heldout_slices": int(len(test))}
        else:
            summary["warnings"].append("no held-out slices: interpolation and memorization skipped")
    man.record("analysis", tm_all)
    summary["timings"] = man.data["timings"]
    summary["cpu_seconds"] = man.data.get("cpu_seconds", {})
    man.save()
    path = adir / "summary.json"
    atomic_write_text(path, json.dumps(summary, indent=1, default=_json_default))
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _main_set(sets: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    """The paper's preferred configuration (LeNet, A 32x100 unit) when present, else the best-labelled set."""
    cands = [s for s in sets if s["generator"] == kind and s.get("kind") == "discovered"]
    if not cands:
        return None
    for s in cands:
        if s.get("reconstructor") == "lenet" and s.get("config") == "unit100":
            pref = s
            break
    else:
        pref = None
    best = max(cands, key=lambda s: (s.get("n_found", 0), s.get("selectivity", 0)))
    if pref is not None and pref.get("n_found", 0) >= best.get("n_found", 0):
        return pref
    return best


def _showcase(res: Any, n: int = 8) -> tuple[list[int], list[str]]:
    """Best direction per found factor, then the best-ranked others, up to ``n``."""
    ks: list[int] = []
    labs: list[str] = []
    for f, v in res.found().items():
        ks.append(v["direction"])
        labs.append(f"#{v['direction']} {f} ({v['selectivity']:.2f})")
    for k in np.argsort(res.rank):
        if len(ks) >= n:
            break
        if int(k) not in ks:
            ks.append(int(k))
            labs.append(f"#{int(k)} {res.labels[k]}")
    return ks[:n], labs[:n]


def _sample_figure(gens: dict[str, Any], path: Path, window: tuple[float, float], seed: int) -> Path:
    from ..analysis.figures import _save_mosaic
    from ..analysis.labelling import generate_images

    rows = []
    for G in gens.values():  # noqa: N806
        z = np.random.default_rng(seed + 3).standard_normal((8, G.latent_dim)).astype(np.float32)
        rows.append(generate_images(G, z))
    imgs = np.stack(rows)
    return _save_mosaic(imgs, path, [k.upper() for k in gens], None, "random samples", window)


# -- the whole job ----------------------------------------------------------------------------

def run_pipeline(cfg: PipelineConfig) -> Path:
    """All stages; returns the report path."""
    from ..analysis.report import render

    out = Path(cfg.out)
    check_run_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    prog = Progress(cfg.progress)
    man = Manifest(out)
    man.data["config"] = cfg.to_dict()
    man.save()
    tm = Timer()
    cache = stage_data(cfg, man, prog)
    gens = stage_generators(cfg, cache, man, prog)
    stage_directions(cfg, gens, man, prog)
    analyse(out, cfg)
    path = render(out)
    man = Manifest(out)
    man.record("total", tm)
    man.save()
    return path


__all__ = ["PRESETS", "PipelineConfig", "RunFolderError", "analyse", "check_run_folder", "make_config", "run_pipeline"]
