"""One prepared run on a lent GPU (../shared/gpu_checklist.md), within a fixed time budget.

    PYTHONPATH=src python3 scripts/gpu_session.py --out OUT --budget 500 [--device cuda]

Phases, each bounded by a deadline measured from the start, each writing what it finished:
1. the demo GAN with the CPU recipe, one run per checkerboard-free upsampling variant
   (nearest, bilinear, subpixel), in parallel processes, stopped at the phase deadline (the
   generator exported at the last epoch end is kept); meanwhile the direction-method study
   (training/method_study.py) on the bundled demo VAE;
2. the quality of each GAN variant against held-out phantom slices (probe and pixel spaces,
   checkerboard index); the variant with the best probe recall among those whose checkerboard
   index is at most 1.5 is the winner;
3. the method study on the winning GAN;
4. the checklist's speed figures if time is left: paper-width DCGAN and VAE steps/s with bf16
   autocast and without (peak memory, losses), and direction steps/s at the paper's batch 128.
Everything lands in OUT: summary.json, the logs, and results.tar.gz (generators + direction sets).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
VARIANTS = ("nearest", "bilinear", "subpixel")
CB_GOAL = 1.5
T0 = time.time()
SETS = Path("/tmp/gpu-sets")


def log(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f} s] {msg}", flush=True)


def train_gan_variant(variant: str, work: str, stop_at: float, device: str, slices: int) -> dict:
    import torch

    from napari_latentdirs.events import EpochEnd, Finished, Stopped
    from napari_latentdirs.training.config import config_from_dict
    from napari_latentdirs.training.data import phantom_slices
    from napari_latentdirs.training.gan import train_gan
    from napari_latentdirs.training.recipes import recipe

    torch.set_num_threads(2)
    t0 = time.time()
    data = phantom_slices(slices, 0)
    t_data = time.time() - t0
    cfg = config_from_dict("gan", {**recipe("cpu", "gan"), "model": {"g_upsample": variant}, "epochs": 10_000,
                                   "max_steps": 200_000, "seed": 0, "device": device, "amp": "off",
                                   "num_workers": 0,  # a pool's worker process may not start loader processes
                                   "sample_every": 0, "log_every": 500, "checkpoint_every": 0})
    stop = threading.Event()
    timer = threading.Timer(max(1.0, stop_at - time.time()), stop.set)
    timer.daemon = True
    timer.start()
    t1 = time.time()
    last_export, trace = 0, []
    for ev in train_gan(cfg, data, Path(work) / variant, stop):
        if isinstance(ev, EpochEnd):
            last_export = ev.step
            if ev.epoch % 8 == 0:
                trace.append({"step": ev.step, **{k: round(v, 4) for k, v in ev.metrics.items()}})
        if isinstance(ev, (Finished, Stopped)):
            break
    seconds = time.time() - t1
    return {"variant": variant, "steps_exported": last_export, "train_seconds": seconds, "data_seconds": t_data,
            "steps_per_s": last_export / seconds if seconds else None, "trace": trace,
            "generator": str(Path(work) / variant / "generator.safetensors")}


def gan_quality(path: str, n: int) -> dict:
    from napari_latentdirs.analysis.quality import generator_quality
    from napari_latentdirs.models.registry import load_generator

    rep = generator_quality(load_generator(path), "phantom", n=n, seed=0, spaces=("probes", "pixels"))
    return {"lines": rep.lines(), **rep.to_dict()}


def speed_figures(device: str, stop_at: float) -> dict:
    """Checklist items 1, 2, 5: paper-width training steps/s with and without bf16, and direction
    steps/s at batch 128."""
    import torch

    from napari_latentdirs.events import Finished, Step
    from napari_latentdirs.training.config import config_from_dict
    from napari_latentdirs.training.data import phantom_slices
    from napari_latentdirs.training.gan import train_gan
    from napari_latentdirs.training.vae import train_vae

    out: dict = {}
    data = phantom_slices(1024, 5)
    for kind, engine in (("gan", train_gan), ("vae", train_vae)):
        for amp in ("bf16", "off"):
            if time.time() > stop_at - 25:
                out[f"{kind}_{amp}"] = "skipped: out of time"
                continue
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            cfg = config_from_dict(kind, {"preset": "paper", "epochs": 10, "max_steps": 60, "batch_size": 128,
                                          "device": device, "amp": amp, "fid": False, "sample_every": 0,
                                          "log_every": 10, "sync_every": 10, "checkpoint_every": 0, "seed": 0})
            times, losses = [], []
            for ev in engine(cfg, data, Path("/tmp/gpu-speed") / f"{kind}-{amp}", threading.Event()):
                if isinstance(ev, Step):
                    if cuda:
                        torch.cuda.synchronize()
                    times.append(time.perf_counter())
                    if ev.losses:
                        losses.append({k: round(v, 4) for k, v in ev.losses.items()})
                if isinstance(ev, Finished):
                    break
            rate = (len(times) - 11) / (times[-1] - times[10]) if len(times) > 12 else None
            out[f"{kind}_{amp}"] = {"steps_per_s": rate, "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                                    "losses_every_10": losses}
            log(f"speed {kind} amp={amp}: {rate} steps/s")
    return out


def direction_speed(device: str, gen_path: str, stop_at: float) -> dict:

    from napari_latentdirs.directions.voynov import (
        DirectionsConfig,
        resolve_generator,
        train_directions,
    )
    from napari_latentdirs.events import Finished, Step

    out = {}
    G, fp, kind = resolve_generator(gen_path, device=device)
    for recon in ("lenet", "resnet18"):
        if time.time() > stop_at - 20:
            out[recon] = "skipped: out of time"
            continue
        cfg = DirectionsConfig(K=32, reconstructor=recon, batch_size=128, steps=400, device=device,
                               generator_kind=kind, generator_fingerprint=fp, eval_batches=20, log_every=100,
                               checkpoint_every=0)
        times, rca = [], None
        for ev in train_directions(cfg, G, Path("/tmp/gpu-dirspeed") / recon, threading.Event()):
            if isinstance(ev, Step):
                times.append(time.perf_counter())
            if isinstance(ev, Finished):
                rca = ev.metrics["rca"]
        rate = (len(times) - 51) / (times[-1] - times[50]) if len(times) > 52 else None
        out[recon] = {"steps_per_s": rate, "rca_after_400_steps_paper_lr": rca}
        log(f"direction speed {recon}: {rate} steps/s, RCA {rca}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=500)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--slices", type=int, default=12000)
    ap.add_argument("--quality-n", type=int, default=500)
    ap.add_argument("--gan-phase", type=float, default=0.42, help="share of the budget for GAN training")
    ap.add_argument("--study-workers", type=int, default=10)
    ap.add_argument("--skip-vae-study", action="store_true")
    args = ap.parse_args()
    from method_study import run_study

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/gpu-work")
    summary: dict = {"budget_s": args.budget}

    def save() -> None:
        summary["elapsed_s"] = time.time() - T0
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))

    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        smi = f"nvidia-smi unavailable: {exc}"
    import torch

    summary["machine"] = {"nvidia_smi": smi, "torch": torch.__version__, "cuda": torch.version.cuda,
                          "cpus": mp.cpu_count()}
    save()
    ctx = mp.get_context("spawn")
    gan_stop = T0 + args.budget * args.gan_phase
    demo = ROOT / "src" / "napari_latentdirs" / "assets" / "demo"
    try:
        # Phase 1: the GAN variants, and the VAE's study beside them.
        with ctx.Pool(len(VARIANTS)) as gpool:
            jobs = [gpool.apply_async(train_gan_variant, (v, str(work), gan_stop, args.device, args.slices))
                    for v in VARIANTS]
            vae_study = threading.Thread(target=lambda: summary.__setitem__("vae_study", run_study(
                {"vae": str(demo / "vae_generator.safetensors")}, SETS, work / "study", args.device,
                max(1, args.study_workers // 2), deadline_s=gan_stop - time.time() + 30,
                hard_deadline_s=gan_stop - time.time() + 75)))
            if not args.skip_vae_study:
                vae_study.start()
            summary["gan_training"] = {}
            for v, j in zip(VARIANTS, jobs):
                try:
                    summary["gan_training"][v] = j.get()
                except Exception as exc:  # noqa: BLE001 - one variant's failure must not lose the others
                    summary["gan_training"][v] = {"error": repr(exc), "trace": traceback.format_exc()}
                log(f"GAN {v}: {summary['gan_training'][v].get('steps_exported')} steps")
                save()
        # Phase 2: quality of each variant (parallel processes), the winner.
        done = {v: r["generator"] for v, r in summary["gan_training"].items() if "generator" in r
                and Path(r["generator"]).exists()}
        with ctx.Pool(max(1, len(done))) as qpool:
            qs = {v: qpool.apply_async(gan_quality, (p, args.quality_n)) for v, p in done.items()}
            summary["gan_quality"] = {}
            for v, j in qs.items():
                try:
                    summary["gan_quality"][v] = j.get()
                    log(f"quality {v}: " + " | ".join(summary["gan_quality"][v]["lines"][1:]))
                except Exception as exc:  # noqa: BLE001
                    summary["gan_quality"][v] = {"error": repr(exc)}
        ok = {v: q for v, q in summary["gan_quality"].items() if "spaces" in q}
        clean = {v: q for v, q in ok.items() if q["checkerboard"]["generated"] <= CB_GOAL} or ok
        winner = max(clean, key=lambda v: clean[v]["spaces"]["probes"]["ratio"]["recall"]) if clean else None
        summary["gan_winner"] = winner
        save()
        if vae_study.is_alive():
            vae_study.join()
        save()
        # Phase 3: the study on the winning GAN.
        study_end = T0 + args.budget * 0.84
        if winner is not None:
            summary["gan_study"] = run_study({"gan": done[winner]}, SETS, work / "study", args.device,
                                             args.study_workers + 2, deadline_s=study_end - time.time() - 40,
                                             hard_deadline_s=study_end - time.time())
            save()
        # Phase 4: speed figures.
        end = T0 + args.budget - 15
        try:
            summary["speed"] = speed_figures(args.device, end - 25)
            if winner is not None:
                summary["direction_speed"] = direction_speed(args.device, done[winner], end)
        except Exception as exc:  # noqa: BLE001
            summary["speed_error"] = traceback.format_exc()
            log(f"speed figures failed: {exc!r}")
    except Exception:  # noqa: BLE001 - keep whatever finished
        summary["error"] = traceback.format_exc()
        log(summary["error"])
    finally:
        save()
        with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
            for v, r in summary.get("gan_training", {}).items():
                g = Path(r.get("generator", "/nonexistent"))
                if g.exists():
                    tar.add(g, f"gan-{v}/generator.safetensors")
                    tar.add(g.with_suffix(".json"), f"gan-{v}/generator.json")
            if SETS.exists():
                tar.add(SETS, "study")
        log(f"packed {(out / 'results.tar.gz').stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
