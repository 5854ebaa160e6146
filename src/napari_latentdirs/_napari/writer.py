"""npe2 writers: an image layer (HU) as TIFF with spacing, or as a derived DICOM series.

Pixel spacing comes from the navigator's metadata when the layer is a latent
stack, otherwise from the layer's scale (a CT opened with the project's
reader has its scale in mm).

De-identification: nothing of the layer's name or metadata other than the
navigator's own ``latentdirs`` record reaches a file. A CT layer is named
"<PatientID> <SeriesDescription>" and carries the source's identifiers in its
metadata; exports get fixed descriptions and fresh UIDs instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import export as ex
from .placement import plain_data  # generated layers' display-only z plane

#: The navigator's own record of a latent stack: the only metadata a TIFF export carries.
NAVIGATOR_KEYS = ("model", "direction", "label", "shifts", "pixel_mm", "axes")


def _spacing(attributes: dict[str, Any], ndim: int) -> tuple[tuple[float, float], float]:
    scale = list(attributes.get("scale") or [1.0] * ndim)
    info = (attributes.get("metadata") or {}).get("latentdirs") or {}
    pixel = info.get("pixel_mm") or scale[-2:]
    step = float(scale[-3]) if ndim >= 3 else 1.0
    shifts = info.get("shifts")
    if shifts and len(shifts) > 1:
        step = float(np.diff(np.asarray(shifts, dtype=float)).mean())
    return (float(pixel[0]), float(pixel[1])), step


def write_tiff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    arr = plain_data(data, attributes.get("metadata")).astype(np.float32, copy=False)
    pixel, step = _spacing(attributes, arr.ndim)
    info = (attributes.get("metadata") or {}).get("latentdirs") or {}
    meta = {k: info[k] for k in NAVIGATOR_KEYS if k in info}
    return [str(ex.write_tiff(path, arr, pixel_mm=pixel, frame_step=abs(step) or 1.0, metadata=meta))]


def write_dicom(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """One derived CT series in ``path`` (a new or empty folder); a 4-D stack gives one series per
    latent (``latent_XXX`` subfolders), all written atomically."""
    arr = plain_data(data, attributes.get("metadata")).astype(np.float32, copy=False)
    if arr.ndim not in (2, 3, 4):
        raise ValueError(f"cannot write a {arr.ndim}-D layer as a DICOM series")
    pixel, step = _spacing(attributes, arr.ndim)
    out = Path(path)
    if arr.ndim == 4:
        return [str(f) for f in ex.write_dicom_stack(out, arr, pixel_mm=pixel, slice_mm=abs(step) or 1.0)]
    return [str(f) for f in ex.write_dicom_series(out, arr, pixel_mm=pixel, slice_mm=abs(step) or 1.0, description=ex.EXPORT_DESCRIPTION)]
