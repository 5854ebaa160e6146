"""Discovered versus random directions, judged by the probes' ground truth.

The paper labelled directions by eye. Here every discovered direction set is
paired with random sets matched in K, latents and shifts, and both are
labelled by the same probes (``analysis.labelling``). For every factor:

- **best selectivity**: per set, the best selectivity of a direction whose
  top factor it is and whose significant effect reaches ``min_effect``
  (``labelling.factor_selectivity_from``; 0 when no direction moves it);
  averaged over the seeds of each group;
- **difference** discovered - random with a percentile bootstrap 95% CI. The
  bootstrap is hierarchical: each replicate resamples the sets of each group
  (seeds) with replacement, then the latents within every set, and recomputes
  the significant effects, the selectivities and the best per factor;
- **found**: in how many sets of each group a direction carries the factor's
  label.

A CI that excludes 0 says the discovered directions isolate that factor better
(or worse) than random directions of the same generator; one that includes 0
says the measurement cannot tell them apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..probes.base import ProbeSet
from .labelling import LabelResult, factor_selectivity_from, significant_effects

CONFIDENCE = 0.95


@dataclass(frozen=True)
class FactorRow:
    factor: str
    discovered: float  # mean over discovered sets of the best selectivity for this factor
    random: float
    difference: float
    ci: tuple[float, float]
    found_discovered: int  # discovered sets with a direction labelled this factor
    found_random: int

    @property
    def excludes_zero(self) -> bool:
        return self.ci[0] > 0 or self.ci[1] < 0


@dataclass(frozen=True)
class Comparison:
    rows: tuple[FactorRow, ...]
    n_discovered: int
    n_random: int
    n_boot: int

    def row(self, factor: str) -> FactorRow:
        return next(r for r in self.rows if r.factor == factor)

    def to_dict(self) -> dict:
        return {"n_discovered": self.n_discovered, "n_random": self.n_random, "n_boot": self.n_boot,
                "confidence": CONFIDENCE, "rows": [asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, d: dict) -> Comparison:
        rows = tuple(FactorRow(**{**r, "ci": tuple(r["ci"])}) for r in d["rows"])
        return cls(rows, int(d["n_discovered"]), int(d["n_random"]), int(d["n_boot"]))


def _best_per_factor(res: LabelResult, probes: ProbeSet, latents: np.ndarray | None = None) -> np.ndarray:
    """(F,) best selectivity per factor, optionally on a resample of the latents."""
    if res.slopes is None:
        raise ValueError("this label file has no per-latent slopes; relabel the set to compare it")
    t = res.slopes if latents is None else res.slopes[:, latents]
    cfg = res.config
    sig = np.stack([significant_effects(t[k], cfg["z"]) for k in range(t.shape[0])])
    return factor_selectivity_from(sig, probes, cfg["top_fraction"], cfg["min_effect"])


def compare_sets(discovered: Sequence[LabelResult], random: Sequence[LabelResult], probes: ProbeSet,
                 n_boot: int = 1000, seed: int = 0) -> Comparison:
    """Per factor: discovered vs random best selectivity, difference and its bootstrap CI."""
    if not discovered or not random:
        raise ValueError("need at least one discovered and one random direction set")
    for res in (*discovered, *random):
        if tuple(res.factors) != tuple(probes.factors):
            raise ValueError(f"label factors {res.factors} are not the probe set's {list(probes.factors)}")
    point_d = np.mean([_best_per_factor(r, probes) for r in discovered], axis=0)
    point_r = np.mean([_best_per_factor(r, probes) for r in random], axis=0)

    rng = np.random.default_rng(seed)
    diffs = np.empty((n_boot, len(probes.factors)))
    for b in range(n_boot):
        means = []
        for group in (discovered, random):
            picks = rng.integers(0, len(group), size=len(group))
            vals = []
            for i in picks:
                n = group[i].slopes.shape[1]
                vals.append(_best_per_factor(group[i], probes, rng.integers(0, n, size=n)))
            means.append(np.mean(vals, axis=0))
        diffs[b] = means[0] - means[1]
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(diffs, [tail, 100 - tail], axis=0)

    rows = []
    for j, f in enumerate(probes.factors):
        rows.append(FactorRow(
            factor=f, discovered=float(point_d[j]), random=float(point_r[j]),
            difference=float(point_d[j] - point_r[j]), ci=(float(lo[j]), float(hi[j])),
            found_discovered=sum(f in r.labels for r in discovered),
            found_random=sum(f in r.labels for r in random),
        ))
    return Comparison(tuple(rows), len(discovered), len(random), n_boot)
