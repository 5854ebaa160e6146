"""The direction-method study of issue 18: candidates that fight the collapse of A, trained on
the demo generators with several seeds and step counts (a learning curve), in parallel workers.

    .venv/bin/python training/method_study.py --generator gan=G.safetensors --generator vae=V.safetensors \
        --out runs/method-study --device cuda --workers 12 --deadline 300

Each (generator, candidate, seed) trains once and is resumed for every longer step count, so a
learning curve costs its longest run. A set is written per step count:
``OUT/<generator>/<candidate>/s<seed>/steps<N>.safetensors``, and one JSON line per set to
``OUT/cells.jsonl`` (RCA, wall time, steps). Work past ``--deadline`` seconds is skipped and
listed as such. Judging the sets (labels, the fair comparison against matched random sets and
the supervised ceiling) is ``training/judge_methods.py``; it runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

#: name -> (DirectionsConfig overrides on the CPU direction recipe, step counts of its learning curve).
CANDIDATES: dict[str, tuple[dict, tuple[int, ...]]] = {
    "unit32": ({}, (800, 2400, 8000)),  # the CPU recipe as it ships
    "ortho32": ({"variant": "ortho"}, (800, 2400)),
    "unit8": ({"K": 8}, (800, 2400)),  # K near the generators' effective dimension
    "ortho8": ({"K": 8, "variant": "ortho"}, (800, 2400)),
    "unit32-R128": ({"reconstructor_input": None}, (800, 2400)),  # R sees the full 128x128 pair
    "unit32-oc1": ({"orthogonal_changes": 1.0}, (800, 2400)),
    "ortho32-oc1": ({"variant": "ortho", "orthogonal_changes": 1.0}, (800, 2400)),
    "ortho8-oc1": ({"K": 8, "variant": "ortho", "orthogonal_changes": 1.0}, (800, 2400)),
}


def run_cell(task: dict) -> list[dict]:
    """Train one (generator, candidate, seed) through its learning curve; one record per step count."""
    import torch

    from napari_latentdirs.directions.voynov import (
        DirectionsConfig,
        resolve_generator,
        train_directions,
    )
    from napari_latentdirs.events import Finished
    from napari_latentdirs.training.recipes import direction_recipe

    torch.set_num_threads(1)
    stop = threading.Event()
    hard = task.get("hard_deadline")
    if hard is not None:
        timer = threading.Timer(max(0.0, hard - time.time()), stop.set)
        timer.daemon = True
        timer.start()
    G, fp, kind = resolve_generator(task["generator_path"], device=task["device"])
    records = []
    overrides, curve = CANDIDATES[task["candidate"]]
    base = DirectionsConfig(**{**direction_recipe("cpu"), **overrides, "seed": task["seed"], "device": task["device"],
                               "generator_kind": kind, "generator_fingerprint": fp,
                               "generator_path": Path(task["generator_path"]).name, "log_every": 200,
                               "checkpoint_every": 0})
    work = Path(task["work"])
    out = Path(task["out"])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for steps in curve:
        rec = {"generator": task["generator"], "candidate": task["candidate"], "seed": task["seed"], "steps": steps}
        if time.time() > task["deadline"]:
            records.append({**rec, "skipped": "past the deadline"})
            continue
        last = None
        for ev in train_directions(replace(base, steps=steps), G, work, stop):
            last = ev
        if not isinstance(last, Finished):
            records.append({**rec, "skipped": f"stopped at the hard deadline ({last!r})"})
            break
        dest = out / f"steps{steps}.safetensors"
        shutil.copyfile(last.output, dest)
        shutil.copyfile(Path(str(last.output)[: -len(".safetensors")] + ".json"), dest.with_suffix(".json"))
        records.append({**rec, "rca": float(last.metrics["rca"]), "seconds": time.perf_counter() - t0,
                        "file": str(dest.relative_to(Path(task["root"])))})
    return records


def tasks_for(generators: dict[str, str], candidates: list[str], seeds: list[int], out: Path, work: Path,
              device: str, deadline: float, hard_deadline: float | None = None) -> list[dict]:
    # Short curves first, so a deadline cuts the long tails rather than whole candidates.
    order = sorted(candidates, key=lambda c: max(CANDIDATES[c][1]))
    return [{"generator": g, "generator_path": path, "candidate": c, "seed": s, "device": device,
             "out": str(out / g / c / f"s{s}"), "work": str(work / g / c / f"s{s}"), "root": str(out),
             "deadline": deadline, "hard_deadline": hard_deadline}
            for s in seeds for c in order for g, path in generators.items()]


def run_study(generators: dict[str, str], out: Path, work: Path, device: str = "cpu", workers: int = 1,
              candidates: list[str] | None = None, seeds: list[int] | None = None,
              deadline_s: float = float("inf"), hard_deadline_s: float | None = None) -> list[dict]:
    """Train every task; ``deadline_s``: no step count starts after it; ``hard_deadline_s``: runs
    still going then are stopped (and recorded as skipped)."""
    import multiprocessing as mp

    out.mkdir(parents=True, exist_ok=True)
    now = time.time()
    hard = None if hard_deadline_s is None else now + hard_deadline_s
    tasks = tasks_for(generators, candidates or list(CANDIDATES), seeds or [0, 1, 2], out, work, device,
                      now + deadline_s, hard)
    records: list[dict] = []
    log = out / "cells.jsonl"
    ctx = mp.get_context("spawn")
    with ctx.Pool(max(1, workers)) as pool, log.open("a") as fh:
        for recs in pool.imap_unordered(run_cell, tasks):
            for r in recs:
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                print(json.dumps(r), flush=True)
            records += recs
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", action="append", required=True, metavar="NAME=FILE")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=None, help="run folders (default OUT/work)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--candidates", nargs="*", default=None, choices=sorted(CANDIDATES))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--deadline", type=float, default=float("inf"), help="seconds after which no set starts")
    args = ap.parse_args(argv)
    gens = dict(g.split("=", 1) for g in args.generator)
    run_study(gens, args.out, args.work or args.out / "work", args.device, args.workers, args.candidates,
              args.seeds, args.deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
