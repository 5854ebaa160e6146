"""Ground truth per slice: nominal factors plus effective measures of the rendered body.

Effective measures are computed from the analytic skin outline (no noise, no
pixels): width and height along the body's own axes, area, the lowest image
row of the body (table height), subcutaneous fat thickness, breast projection
at this level. Each is given in mm and in pixels of a ``size`` x ``size``
image of the whole field of view (the preprocessed 128 x 128 slice).
"""

from __future__ import annotations

import math

import numpy as np

from .anatomy import breast_profile, outline_radius_mm
from .factors import Acquisition, SubjectFactors

_PHI = np.linspace(0.0, 2 * math.pi, 720, endpoint=False)


def effective_measures(subject: SubjectFactors, acq: Acquisition, t: float, size: int = 128) -> dict[str, float]:
    r = outline_radius_mm(subject, t, _PHI)
    X = r * np.cos(_PHI)  # body frame, mm
    Y = r * np.sin(_PHI)
    th = math.radians(subject.rotation_deg)
    y_img = subject.y_offset_mm + math.sin(th) * X + math.cos(th) * Y
    area = 0.5 * float(np.sum(X * np.roll(Y, -1) - np.roll(X, -1) * Y))
    ps = acq.fov_mm / size
    out = {
        "eff_width_mm": float(X.max() - X.min()),
        "eff_height_mm": float(Y.max() - Y.min()),
        "eff_area_mm2": abs(area),
        "eff_bottom_mm": float(y_img.max()),
        "eff_fat_mm": float(subject.fat_mm),
        "eff_breast_mm": float(subject.breast_mm * breast_profile(t)),
    }
    out["eff_size_mm"] = math.sqrt(out["eff_area_mm2"])
    out["eff_width_px"] = out["eff_width_mm"] / ps
    out["eff_height_px"] = out["eff_height_mm"] / ps
    out["eff_size_px"] = out["eff_size_mm"] / ps
    out["eff_bottom_px"] = out["eff_bottom_mm"] / ps + (size - 1) / 2
    out["eff_fat_px"] = out["eff_fat_mm"] / ps
    out["eff_breast_px"] = out["eff_breast_mm"] / ps
    out["pixel_spacing_px_mm"] = ps
    # Whether the body reaches outside the reconstruction circle (it should not).
    x_img = math.cos(th) * X - math.sin(th) * Y
    out["clipped"] = bool(np.any(np.hypot(x_img, y_img) > acq.fov_mm / 2))
    return out


def slice_record(subject: SubjectFactors, acq: Acquisition, t: float, size: int = 128) -> dict:
    rec = subject.to_dict()
    rec["contrast"] = int(subject.contrast)
    rec.update({f"acq_{k}": v for k, v in acq.to_dict().items()})
    rec["t"] = float(t)
    rec["depth_mm"] = float(t * subject.length_mm)
    rec.update(effective_measures(subject, acq, t, size))
    rec["clipped"] = int(rec["clipped"])
    return rec


def records_to_columns(records: list[dict]) -> dict[str, np.ndarray]:
    if not records:
        return {}
    return {k: np.asarray([r[k] for r in records]) for k in records[0]}
