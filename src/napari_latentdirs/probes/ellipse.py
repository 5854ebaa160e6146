"""Probes for the analytic ellipse generator (models/analytic.py): one blob's geometry."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .base import ProbeSet
from .factors import ELLIPSE_FACTORS, ELLIPSE_PERIODS


def measure_ellipse(x: np.ndarray) -> dict[str, np.ndarray]:
    """Geometry of one bright (or dark) blob per image from its half-contrast mask.

    The mask threshold sits half-way between the background (median of the
    border) and the extreme value, so geometry does not move with intensity.
    Width/height are 4 x the standard deviation along the principal axis
    closest to the image x/y axes (2 x the semi-axis for a uniform ellipse)
    and rotation is that axis' angle in degrees, in (-45, 45].
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4:
        x = x[:, 0]
    n, h, w = x.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    res = {k: np.full(n, np.nan) for k in ELLIPSE_FACTORS}
    for i in range(n):
        img = x[i]
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        bg = float(np.median(border))
        dev = img - bg
        peak = dev.flat[np.abs(dev).argmax()]
        if abs(peak) < 1e-6:
            continue
        # Filled, so that darker structures inside the body (the analytic
        # generator's lungs) do not punch holes into its geometry.
        mask = ndimage.binary_fill_holes((dev / peak) > 0.5)
        m = mask.sum()
        if m < 3:
            continue
        cx, cy = xx[mask].mean(), yy[mask].mean()
        dx, dy = xx[mask] - cx, yy[mask] - cy
        cov = np.array([[np.mean(dx * dx), np.mean(dx * dy)], [np.mean(dx * dy), np.mean(dy * dy)]])
        evals, evecs = np.linalg.eigh(cov)
        # The eigenvector closer to the x axis is "width".
        ix = int(np.argmax(np.abs(evecs[0])))
        vx = evecs[:, ix] * np.sign(evecs[0, ix] or 1.0)
        ang = np.degrees(np.arctan2(vx[1], vx[0]))
        res["x_position"][i] = cx / w
        res["y_position"][i] = cy / h
        res["width"][i] = 4 * np.sqrt(max(evals[ix], 0.0)) / w
        res["height"][i] = 4 * np.sqrt(max(evals[1 - ix], 0.0)) / h
        res["rotation"][i] = ang
        res["intensity"][i] = img[mask].mean()
    return res


def ellipse_probes() -> ProbeSet:
    """Probes for the analytic ellipse generator (models/analytic.py)."""
    return ProbeSet("ellipse", ELLIPSE_FACTORS, measure_ellipse, dict(ELLIPSE_PERIODS))
