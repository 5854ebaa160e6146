"""Image probes: smooth measurements on preprocessed 128 x 128 slices (model space).

They later label latent directions automatically, so each one responds
smoothly to small image changes: edges are located with sub-pixel linear
interpolation along rays, areas and moments come from the resulting polygon,
thicknesses are integrals of soft tissue indicators.

Pipeline per image (all in HU, via the exact inverse of the preprocessing):

1. Cast rays from a rough centre; on each ray the body edge is the outermost
   crossing of -400 HU that closes a run of at least ``MIN_RUN_PX`` pixels of
   tissue (this skips the thin table shells under the body).
2. The edge polygon gives the area, centroid and second moments; orientation
   is the principal axis closest to horizontal (this is the wrap handling:
   moment orientation is only defined modulo 90 degrees for our purpose).
3. Rays are cast again from the polygon centroid, aligned with the body axes;
   width/height are the polygon's extents along the axes, y_position is its
   lowest image row, breast size is the anterior outline at +-30..50 degrees
   from the midline relative to the midline itself, thickness integrates a
   soft fat indicator inward from the skin on the lateral rays until about one
   pixel of muscle has been crossed.
4. z_level: a small regressor on a body-aligned polar resampling of the slice
   (see ``zlevel``).

Units: pixels of the input image (rows/cols), degrees (positive = clockwise on
screen, i.e. from +x toward +y), z_level in [0, 1] (apex -> upper abdomen).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from ..data.preprocess import DEFAULT
from .factors import PROBE_NAMES, Z_LEVEL

__all__ = ["PROBE_NAMES", "measure", "polar_features", "shape_and_features", "to_hu"]

BODY_HU = -400.0
MIN_RUN_PX = 3.0
STEP_PX = 0.5
N_RAYS = 128
POLAR_ANGLES = 32
POLAR_RADII = 16
BREAST_ZONE_DEG = (30.0, 50.0)
LATERAL_DEG = (70.0, 115.0)
_BREAST_KAPPA = 0.93  # anterior outline at 40 deg relative to the midline for a convex body


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _ray_profiles(hu: np.ndarray, cy: float, cx: float, angles: np.ndarray, rmax: float, step: float):
    radii = np.arange(0.0, rmax, step, dtype=np.float64)
    ys = cy + np.sin(angles)[:, None] * radii[None, :]
    xs = cx + np.cos(angles)[:, None] * radii[None, :]
    prof = ndimage.map_coordinates(hu, [ys.ravel(), xs.ravel()], order=1, mode="constant", cval=-1000.0)
    return prof.reshape(len(angles), len(radii)), radii


def _edge_radius(prof: np.ndarray, step: float, thr: float = BODY_HU, min_run_px: float = MIN_RUN_PX) -> np.ndarray:
    """Outermost threshold crossing closing a tissue run >= min_run_px (sub-pixel)."""
    K, S = prof.shape
    m = max(1, int(round(min_run_px / step)))
    inside = (prof > thr).astype(np.int32)
    c = np.concatenate([np.zeros((K, 1), np.int32), np.cumsum(inside, axis=1)], axis=1)
    full = np.zeros((K, S), dtype=bool)
    full[:, m - 1 :] = (c[:, m:] - c[:, :-m]) == m
    has = full.any(axis=1)
    idx = S - 1 - np.argmax(full[:, ::-1], axis=1)
    idx1 = np.minimum(idx + 1, S - 1)
    rows = np.arange(K)
    v0 = prof[rows, idx]
    v1 = prof[rows, idx1]
    denom = np.where(np.abs(v0 - v1) > 1e-6, v0 - v1, 1.0)
    frac = np.clip((v0 - thr) / denom, 0.0, 1.0)
    frac = np.where(idx1 > idx, frac, 0.0)
    return np.where(has, (idx + frac) * step, 0.0)


def _polygon_stats(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Area, centroid (cx, cy) and principal-axis angle (deg, closest to horizontal)."""
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    A = 0.5 * cross.sum()
    if abs(A) < 1e-9:
        return 0.0, float(x.mean()), float(y.mean()), 0.0
    cx = ((x + x1) * cross).sum() / (6 * A)
    cy = ((y + y1) * cross).sum() / (6 * A)
    ixx = ((x * x + x * x1 + x1 * x1) * cross).sum() / (12 * A) - cx * cx
    iyy = ((y * y + y * y1 + y1 * y1) * cross).sum() / (12 * A) - cy * cy
    ixy = ((x * y1 + 2 * x * y + 2 * x1 * y1 + x1 * y) * cross).sum() / (24 * A) - cx * cy
    theta = 0.5 * math.degrees(math.atan2(2 * ixy, ixx - iyy))
    # Fold to the axis nearest horizontal: the body is wider than deep, and the
    # moment orientation otherwise flips by 90 degrees when it is rotated.
    if theta > 45.0:
        theta -= 90.0
    elif theta <= -45.0:
        theta += 90.0
    return float(abs(A)), float(cx), float(cy), float(theta)


def _rough_centre(hu: np.ndarray) -> tuple[float, float]:
    w = _sigmoid((hu - BODY_HU) / 60.0)
    s = w.sum()
    if s < 1e-6:
        n = hu.shape[0]
        return (n - 1) / 2, (n - 1) / 2
    yy, xx = np.indices(hu.shape)
    return float((w * yy).sum() / s), float((w * xx).sum() / s)


def _fat_thickness(prof: np.ndarray, edge: np.ndarray, step: float) -> float:
    """Mean over rays of the soft fat length between the skin and the muscle."""
    K, S = prof.shape
    span = int(30.0 / step)
    j = np.arange(span)
    pos = edge[:, None] / step - j[None, :]  # fractional sample index, inward from the edge
    pos = np.clip(pos, 0, S - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, S - 1)
    f = pos - i0
    rows = np.arange(K)[:, None]
    hu = prof[rows, i0] * (1 - f) + prof[rows, i1] * f
    fatness = _sigmoid((-30.0 - hu) / 12.0) * _sigmoid((hu + 350.0) / 40.0)
    muscle = _sigmoid((hu + 30.0) / 12.0)
    m_cum = np.cumsum(muscle, axis=1) * step
    w = _sigmoid((1.0 - m_cum) / 0.25)
    return float((fatness * w).sum(axis=1).mean() * step)


def _measure_one(hu: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    n = hu.shape[0]
    rmax = 0.75 * n
    cy, cx = _rough_centre(hu)
    ang = np.linspace(0.0, 2 * math.pi, N_RAYS, endpoint=False)
    prof, _ = _ray_profiles(hu, cy, cx, ang, rmax, STEP_PX)
    r = _edge_radius(prof, STEP_PX)
    area, pcx, pcy, theta = _polygon_stats(cx + r * np.cos(ang), cy + r * np.sin(ang))
    # Second pass: rays from the polygon centroid, aligned with the body axes.
    # Body-frame angle a (from +X, patient left) maps to image angle a + theta.
    th = math.radians(theta)
    a = np.linspace(0.0, 2 * math.pi, N_RAYS, endpoint=False)
    prof, _ = _ray_profiles(hu, pcy, pcx, a + th, rmax, STEP_PX)
    r = _edge_radius(prof, STEP_PX)
    X = r * np.cos(a)  # body frame (pixels), +Y posterior
    Y = r * np.sin(a)
    xs = pcx + r * np.cos(a + th)
    ys = pcy + r * np.sin(a + th)
    area, _, _, theta2 = _polygon_stats(xs, ys)
    # Anterior is -Y: body-frame angle 270 deg; "from anterior" angle b -> a = 270 - b (left) / 270 + b (right).
    adeg = np.degrees(a)
    from_ant = np.abs(((adeg - 270.0 + 180.0) % 360.0) - 180.0)
    zone = (from_ant >= BREAST_ZONE_DEG[0]) & (from_ant <= BREAST_ZONE_DEG[1])
    mid = np.argmin(from_ant)
    breast = float(np.mean(-Y[zone]) - _BREAST_KAPPA * (-Y[mid]))
    lat = (from_ant >= LATERAL_DEG[0]) & (from_ant <= LATERAL_DEG[1])
    fat = _fat_thickness(prof[lat], r[lat], STEP_PX)
    out = {
        "width": float(X.max() - X.min()),
        "height": float(Y.max() - Y.min()),
        "size": math.sqrt(area),
        "rotation": theta2,
        "y_position": float(ys.max()),
        "thickness": fat,
        "breast_size": breast,
    }
    return out, _polar(prof, r)


def _polar(prof: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Body-aligned polar resampling (POLAR_ANGLES x POLAR_RADII), radius
    normalised by the outline, HU scaled to about [-2, 1]."""
    K, S = prof.shape
    sel = np.arange(0, K, K // POLAR_ANGLES)[:POLAR_ANGLES]
    rho = (np.arange(POLAR_RADII) + 0.5) / POLAR_RADII
    pos = np.clip(r[sel, None] * rho[None, :] / STEP_PX, 0, S - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, S - 1)
    f = pos - i0
    rows = sel[:, None]
    hu = prof[rows, i0] * (1 - f) + prof[rows, i1] * f
    return (np.clip(hu, -1000.0, 500.0) / 500.0).astype(np.float32).ravel()


def to_hu(x, preprocessing: Any = None) -> np.ndarray:
    """Model-space images to HU with the generator's recorded preprocessing (default: the
    project's HU window, which the phantom and its cache use)."""
    if hasattr(x, "detach"):  # torch tensor (e.g. generator output)
        x = x.detach().cpu().float().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"expected (N, H, W) or (N, 1, H, W) model-space images, got shape {x.shape}")
    return (preprocessing or DEFAULT).model_to_hu(x)


def shape_and_features(x: np.ndarray, preprocessing: Any = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All probes except z_level, plus the polar features for the z regressor."""
    hu = to_hu(x, preprocessing)
    rows = []
    feats = np.empty((len(hu), POLAR_ANGLES * POLAR_RADII), dtype=np.float32)
    for i, img in enumerate(hu):
        m, feats[i] = _measure_one(img)
        rows.append(m)
    names = [p for p in PROBE_NAMES if p != Z_LEVEL]
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in names}, feats


def polar_features(x: np.ndarray) -> np.ndarray:
    return shape_and_features(x)[1]


def measure(x: np.ndarray, zlevel_model=None, preprocessing: Any = None) -> dict[str, np.ndarray]:
    """Measure every probe on model-space images (N, H, W) or (N, 1, H, W).

    ``zlevel_model``: a ``zlevel.ZLevelRegressor``; default is the packaged one.
    Returns a dict keyed by ``PROBE_NAMES`` of float64 arrays of length N.
    """
    out, feats = shape_and_features(x, preprocessing)
    from . import zlevel  # torch loads on the first measurement, not on import

    model = zlevel_model if zlevel_model is not None else zlevel.default_regressor()
    out[Z_LEVEL] = zlevel.predict_features(model, feats) if model is not None else np.full(len(feats), np.nan)
    return {k: out[k] for k in PROBE_NAMES}
