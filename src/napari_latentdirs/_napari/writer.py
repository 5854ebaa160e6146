"""npe2 writers: an image layer (HU) as TIFF with spacing, or as a derived DICOM series.

Pixel spacing comes from the navigator's metadata when the layer is a latent
stack, otherwise from the layer's scale (a CT opened with the project's
reader has its scale in mm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import export as ex
from .placement import plain_data  # generated layers' display-only z plane


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
    meta = {"name": attributes.get("name", ""), **((attributes.get("metadata") or {}).get("latentdirs") or {})}
    return [str(ex.write_tiff(path, arr, pixel_mm=pixel, frame_step=abs(step) or 1.0, metadata=meta))]


def write_dicom(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """One derived CT series in ``path`` (a folder); a 4-D stack gives one series per latent."""
    arr = plain_data(data, attributes.get("metadata")).astype(np.float32, copy=False)
    if arr.ndim not in (2, 3, 4):
        raise ValueError(f"cannot write a {arr.ndim}-D layer as a DICOM series")
    pixel, step = _spacing(attributes, arr.ndim)
    name = str(attributes.get("name") or "napari-latentdirs export")[:64]
    out = Path(path)
    if arr.ndim == 4:
        files: list[Path] = []
        for i, vol in enumerate(arr):
            files += ex.write_dicom_series(out / f"latent_{i:03d}", vol, pixel_mm=pixel, slice_mm=abs(step) or 1.0, description=f"{name} latent {i}"[:64])
        return [str(f) for f in files]
    return [str(f) for f in ex.write_dicom_series(out, arr, pixel_mm=pixel, slice_mm=abs(step) or 1.0, description=name)]
