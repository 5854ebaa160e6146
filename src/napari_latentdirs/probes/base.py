"""A probe set: measurements of image factors that label latent directions (``analysis.labelling``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ProbeSet:
    """Measurements of image factors. ``measure(x)`` takes (N, H, W) model-space images."""

    name: str
    factors: tuple[str, ...]
    measure: Callable[[np.ndarray], dict[str, np.ndarray]]
    periods: dict[str, float] = field(default_factory=dict)  # circular factors, e.g. rotation: 180
    # Optional re-expression of per-latent slopes (n, F) given the factors' means (F,), for probes
    # that are mechanically coupled (see ``size_family``).
    decompose: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    # Known physical consequences: a change of the key factor also moves these probes, so their
    # effects do not count against its selectivity (e.g. more subcutaneous fat widens the body).
    consequences: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Optional gate (N, H, W) -> (N,) bool: images the probes can be trusted on. Measurements of
    # other images become NaN, so a generator that draws no body cannot produce labels.
    valid: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, H, W) -> (N, F) factor matrix in ``self.factors`` order."""
        x = np.asarray(x, dtype=np.float32)
        out = self.measure(x)
        missing = [f for f in self.factors if f not in out]
        if missing:
            raise KeyError(f"probe set {self.name!r} did not return {missing}")
        f = np.stack([np.asarray(out[f], dtype=np.float64) for f in self.factors], axis=1)
        if self.valid is not None:
            f[~np.asarray(self.valid(x), dtype=bool)] = np.nan
        return f


def size_family(factors: tuple[str, ...]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Split width/height slopes into a common "size" part and what is left.

    The phantom's ``size`` probe is sqrt(area) of the body outline, so it
    moves with width *and* with height: a pure width direction would also
    show half its effect on size, and a pure scaling would show equal effects
    on all three. On relative changes r_w = dw/w, r_h = dh/h the common part
    c = sign * min(|r_w|, |r_h|) (0 when they disagree in sign) is the scaling
    ("size"); width and height keep r_w - c and r_h - c. The size probe's own
    reading is replaced by c (times its mean), so it no longer double-counts.
    """
    iw, ih, isz = factors.index("width"), factors.index("height"), factors.index("size")

    def decompose(slope: np.ndarray, means: np.ndarray) -> np.ndarray:
        out = slope.copy()
        rw = slope[..., iw] / means[iw]
        rh = slope[..., ih] / means[ih]
        same = np.sign(rw) == np.sign(rh)
        c = np.where(same, np.sign(rw) * np.minimum(np.abs(rw), np.abs(rh)), 0.0)
        out[..., iw] = (rw - c) * means[iw]
        out[..., ih] = (rh - c) * means[ih]
        out[..., isz] = c * means[isz]
        return out

    return decompose
