"""Supervised directions by probe regression: the ceiling that discovery is judged against.

InterFaceGAN-style (Shen et al. 2020), with the probes as the annotator:

1. sample ``n_samples`` latents z ~ N(0, I) and generate G(z);
2. measure every factor with a probe set (the phantom's outline probes on CT-like
   generators, which work on any chest slice, real CT included; the ellipse probes on the
   analytic generator);
3. regress each factor, standardised, on z by least squares (with an intercept; latents a
   probe could not measure drop out of that factor's fit). The coefficient vector is the
   factor's normal, its R^2 how much of the factor is linear in z;
4. conditional manipulation: each normal with the other factors' normals projected out, so
   moving along it leaves the other factors' linear predictions unchanged; unit length,
   signed so that a positive shift increases the factor.

The set is labelled by construction (one factor per direction, in the probe set's order,
R^2 in ``meta["r2"]``) and is scored like any other set. K keeps the K factors with the
highest R^2 (all of them by default). Factors with R^2 below ``MIN_R2`` are still returned
(the report shows their R^2) but flagged in ``meta["weak"]``: no linear direction moves them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .set import DirectionSet

#: Below this R^2 a factor is not linear enough in z for a direction to move it reliably.
MIN_R2 = 0.5
MIN_ROWS = 20  # fewest measured latents for a factor's regression


def probes_for(G: Any) -> Any:
    """The probe set that measures ``G``'s images: ellipse probes for the analytic generator,
    the phantom's outline probes (with G's recorded HU window) otherwise."""
    from ..models.registry import preprocessing_of
    from ..probes.ellipse import ellipse_probes
    from ..probes.phantom import phantom_probes

    if getattr(G, "fingerprint", "").startswith("analytic") or type(G).__name__.lower().startswith("analytic"):
        return ellipse_probes()
    return phantom_probes(preprocessing_of(G))


def regress_factors(z: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) latents, (n, F) factors -> (d, F) normals of the standardised factors and (F,) R^2.

    A factor with fewer than ``MIN_ROWS`` finite measurements, or none that vary, gets a zero
    normal and R^2 0.
    """
    n, d = z.shape
    normals = np.zeros((d, f.shape[1]))
    r2 = np.zeros(f.shape[1])
    for j in range(f.shape[1]):
        ok = np.isfinite(f[:, j])
        y = f[ok, j]
        if ok.sum() < MIN_ROWS or y.std() <= 1e-12:
            continue
        y = (y - y.mean()) / y.std()
        X = np.concatenate([z[ok], np.ones((ok.sum(), 1))], axis=1)
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        resid = y - X @ coef
        normals[:, j] = coef[:d]
        r2[j] = max(0.0, 1.0 - float(resid.var()) / float(y.var()))
    return normals, r2


def conditional_directions(normals: np.ndarray) -> np.ndarray:
    """(d, F) normals -> (d, F) unit directions: each normal with the span of the others
    projected out (a factor whose normal lies in that span keeps its own normal, unit length)."""
    d, F = normals.shape
    out = np.zeros_like(normals)
    for j in range(F):
        w = normals[:, j]
        others = np.delete(normals, j, axis=1)
        others = others[:, np.linalg.norm(others, axis=0) > 1e-12]
        if others.size:
            q, _ = np.linalg.qr(others)
            rank = int(np.sum(np.abs(np.linalg.svd(others, compute_uv=False)) > 1e-9))
            q = q[:, :rank]
            v = w - q @ (q.T @ w)
        else:
            v = w
        if np.linalg.norm(v) < 1e-6 * max(np.linalg.norm(w), 1e-12):
            v = w
        norm = np.linalg.norm(v)
        out[:, j] = v / norm if norm > 1e-12 else 0.0
        if norm > 1e-12 and v @ w < 0:  # a positive shift must increase the factor
            out[:, j] = -out[:, j]
    return out


@torch.no_grad()
def probe_regression_method(G: Any, K: int | None = None, *, seed: int = 0, n_samples: int = 2000,
                            generator: str = "", probes: Any = None, batch_size: int = 128,
                            **_: Any) -> DirectionSet:
    """The registry's ``probe-regression`` method (see the module docstring)."""
    probes = probes if probes is not None else probes_for(G)
    d = int(G.latent_dim)
    z = np.random.default_rng(seed).standard_normal((n_samples, d)).astype(np.float32)
    device = next((p.device for p in G.parameters()), torch.device("cpu")) if hasattr(G, "parameters") else "cpu"
    x = np.concatenate([G.generate(torch.from_numpy(z[i:i + batch_size]).to(device))[:, 0].float().cpu().numpy()
                        for i in range(0, n_samples, batch_size)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = probes(x)
    periods = [probes.periods.get(name, 0.0) for name in probes.factors]
    for j, period in enumerate(periods):  # circular factors: centre on the circular mean, then unwrap
        if period > 0 and np.isfinite(f[:, j]).any():
            ang = f[:, j] * 2 * np.pi / period
            centre = np.arctan2(np.nanmean(np.sin(ang)), np.nanmean(np.cos(ang))) * period / (2 * np.pi)
            f[:, j] = (f[:, j] - centre + period / 2) % period - period / 2
    normals, r2 = regress_factors(z.astype(np.float64), f)
    usable = np.flatnonzero(np.linalg.norm(normals, axis=0) > 0)
    if usable.size == 0:
        raise ValueError(f"the {probes.name} probes measured no factor on this generator's images; "
                         "probe regression needs images the probes can read")
    K = usable.size if K is None else min(int(K), usable.size)
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    A_all = conditional_directions(normals[:, usable])
    order = usable[np.argsort(-r2[usable], kind="stable")][:K]
    keep = [int(np.flatnonzero(usable == j)[0]) for j in sorted(order)]  # probe order among the kept
    factors = [probes.factors[j] for j in sorted(order)]
    A = A_all[:, keep]
    r2_kept = {probes.factors[j]: float(r2[j]) for j in sorted(order)}
    return DirectionSet(A=A.astype(np.float32), method="probe-regression", generator=generator,
                        labels=factors,
                        metrics={"min_r2": float(min(r2_kept.values()))},
                        meta={"probe_set": probes.name, "n_samples": n_samples, "seed": seed, "r2": r2_kept,
                              "weak": [name for name, v in r2_kept.items() if v < MIN_R2],
                              "labelled_by": "construction (probe regression)"})


__all__ = ["MIN_R2", "conditional_directions", "probe_regression_method", "probes_for", "regress_factors"]
