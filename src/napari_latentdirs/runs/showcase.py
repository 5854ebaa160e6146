"""Which direction sets and directions the main job's figures show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def main_set(sets: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    """The set the figures show for one generator: learned sets first, then the paper's preferred
    configuration (LeNet, A 32x100 unit) when it finds as many factors, else the best-labelled."""
    cands = [s for s in sets if s["generator"] == kind and s.get("kind") == "discovered"]
    if not cands:
        return None
    learned = [s for s in cands if s.get("learned", True)]
    cands = learned or cands
    best = max(cands, key=lambda s: (s.get("n_found", 0), s.get("selectivity", 0), s.get("rca") or 0))
    pref = next((s for s in cands if s.get("reconstructor") == "lenet" and s.get("config") == "unit100"), None)
    if pref is not None and pref.get("n_found", 0) >= best.get("n_found", 0):
        return pref
    return best


def showcase(res: Any, n: int = 8) -> tuple[list[int], list[str]]:
    """Best direction per found factor, then the best-ranked others, up to ``n``; one direction
    per duplicate group, so two columns never show the same change under two numbers."""
    ks: list[int] = []
    labs: list[str] = []
    used_groups: set[int] = set()

    def take(k: int, label: str) -> None:
        g = res.group_of(k)
        if g is not None and g in used_groups:
            return
        if g is not None:
            used_groups.add(g)
        ks.append(k)
        labs.append(label)

    found = res.found()
    for f, v in found.items():
        take(int(v["direction"]), f"#{v['direction']} {f} ({v['selectivity']:.2f})")
    # Beyond the found factors a bare "entangled" says nothing: show what the direction does.
    desc = res.descriptions()
    for k in np.argsort(res.rank):
        if len(ks) >= n:
            break
        if int(k) not in ks:
            lab = res.labels[k]
            # a factor's best direction is already a row above: this one is its second, not a second "#29 width"
            name = (f"{lab}, 2nd ({res.selectivity[k]:.2f})" if lab in found else lab) if lab in res.factors else desc[k]
            take(int(k), f"#{int(k)} {name}")
    return ks[:n], labs[:n]


def sample_figure(gens: dict[str, Any], path: Path, window: tuple[float, float], seed: int) -> Path:
    from ..analysis.figures import _save_mosaic
    from ..analysis.labelling import generate_images

    rows = []
    for G in gens.values():
        z = np.random.default_rng(seed + 3).standard_normal((8, G.latent_dim)).astype(np.float32)
        rows.append(generate_images(G, z))
    return _save_mosaic(np.stack(rows), path, [k.upper() for k in gens], None, "random samples", window)
