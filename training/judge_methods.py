"""Judge the direction-method study (training/method_study.py) on the fair yardstick.

    .venv/bin/python training/judge_methods.py --generator vae=V.safetensors --sets STUDY/vae \
        --out runs/judge-vae.json [--random-sets 10] [--latents 32]

For one generator: every set found under ``--sets`` (``<candidate>/s<seed>/steps<N>.safetensors``),
the supervised probe-regression set (the ceiling), and ``--random-sets`` random sets for every K
that occurs, are labelled on the same latents (labels cached beside ``--out``). Each
(candidate, steps) row is compared with the random sets of its K (``analysis.comparison``: paired
bootstrap over latents and sets, Holm across factors). Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

SELECTIVE = 0.6


def label_cached(G, ds, probes, cfg, cache: Path):
    from napari_latentdirs.analysis.labelling import LabelResult, label_directions

    if cache.exists():
        return LabelResult.load(cache)
    res = label_directions(G, ds, probes, cfg)
    res.save(cache)
    return res


def row_for(name: str, results: list, sets: list, randoms: list, probes) -> dict:
    from napari_latentdirs.analysis.comparison import compare_sets
    from napari_latentdirs.directions.collapse import collapse_of

    cmp = compare_sets(results, randoms, probes, n_boot=1000, seed=0)
    found = [sorted({lab for lab, s in zip(r.labels, r.selectivity) if lab in probes.factors and s >= SELECTIVE})
             for r in results]
    col = [collapse_of(ds.A) for ds in sets]
    return {
        "name": name, "n_sets": len(results), "K": sets[0].K,
        "rca": float(np.mean([ds.metrics.get("rca", np.nan) for ds in sets])),
        "effective_rank": float(np.mean([c.effective_rank for c in col])),
        "largest_group": int(max(c.largest_group for c in col)),
        "factors_found": [len(f) for f in found], "found_names": found,
        "beats_random": cmp.beats_random(), "below_random": cmp.below_random(),
        "best_selectivity": {r.factor: round(r.discovered, 3) for r in cmp.rows},
        "random_selectivity": {r.factor: round(r.random, 3) for r in cmp.rows},
        "p_holm": {r.factor: round(r.p_holm, 4) for r in cmp.rows},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", required=True, metavar="NAME=FILE")
    ap.add_argument("--sets", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--random-sets", type=int, default=10)
    ap.add_argument("--latents", type=int, default=32)
    ap.add_argument("--supervised", type=Path, default=None, help="a probe-regression set (default: computed)")
    args = ap.parse_args(argv)

    import torch

    from napari_latentdirs.analysis.labelling import LabelConfig
    from napari_latentdirs.directions.baselines import random_directions
    from napari_latentdirs.directions.set import DirectionSet
    from napari_latentdirs.directions.supervised import probe_regression_method, probes_for
    from napari_latentdirs.models.registry import generator_fingerprint, load_generator

    torch.set_num_threads(1)
    gname, gpath = args.generator.split("=", 1)
    G = load_generator(gpath)
    fp = generator_fingerprint(gpath)
    probes = probes_for(G)
    cfg = LabelConfig(n_latents=args.latents, alphas=(-6.0, -3.0, 3.0, 6.0), seed=0)
    cache = args.out.with_suffix("")
    cache.mkdir(parents=True, exist_ok=True)

    groups: dict[tuple[str, int], list[Path]] = defaultdict(list)
    for f in sorted(args.sets.glob("*/s*/steps*.safetensors")):
        m = re.fullmatch(r"steps(\d+)\.safetensors", f.name)
        groups[(f.parent.parent.name, int(m.group(1)))].append(f)
    sup = DirectionSet.load(args.supervised) if args.supervised else probe_regression_method(G, None, seed=0,
                                                                                             generator=fp)
    Ks = sorted({DirectionSet.load(fs[0]).K for fs in groups.values()} | {sup.K})
    randoms = {K: [label_cached(G, random_directions(G.latent_dim, K, seed=1000 + i), probes, cfg,
                                cache / f"random-K{K}-{i}.json") for i in range(args.random_sets)] for K in Ks}
    print(f"labelled {args.random_sets} random sets for K in {Ks}", flush=True)
    rows = []
    sup_res = label_cached(G, sup, probes, cfg, cache / "supervised.json")
    rows.append(row_for("supervised (probe regression)", [sup_res], [sup], randoms[sup.K], probes))
    rows[-1]["r2"] = sup.meta.get("r2")
    for (cand, steps), files in sorted(groups.items()):
        sets = [DirectionSet.load(f) for f in files]
        results = [label_cached(G, ds, probes, cfg, cache / f"{cand}-{f.parent.name}-steps{steps}.json")
                   for ds, f in zip(sets, files)]
        rows.append(row_for(f"{cand} @ {steps}", results, sets, randoms[sets[0].K], probes))
        print(json.dumps({k: rows[-1][k] for k in ("name", "rca", "effective_rank", "beats_random",
                                                    "factors_found")}), flush=True)
    for K in Ks:
        sets = [random_directions(G.latent_dim, K, seed=1000 + i) for i in range(args.random_sets)]
        rows.append(row_for(f"random K={K} (against itself: sets 0-2 vs 3-9)", randoms[K][:3],
                            sets[:3], randoms[K][3:], probes))
    args.out.write_text(json.dumps({"generator": gname, "file": gpath, "latents": args.latents,
                                    "random_sets": args.random_sets, "rows": rows}, indent=1))
    print(markdown(gname, rows, probes.factors))
    return 0


def markdown(gname: str, rows: list[dict], factors) -> str:
    header = ("| method @ steps | sets | K | RCA | eff. rank | largest group | beats random (Holm) | below random | "
              "factors at sel. >= 0.6 (per set) |")
    out = [f"### {gname}", "", header, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['name']} | {r['n_sets']} | {r['K']} | {r['rca']:.3f} | {r['effective_rank']:.1f} | "
                   f"{r['largest_group']} | {len(r['beats_random'])}: {', '.join(r['beats_random']) or '-'} | "
                   f"{', '.join(r['below_random']) or '-'} | {r['factors_found']} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
