"""npe2 reader: a DICOM file or folder -> one HU image layer per CT series.

napari offers every directory reader for every folder, so :func:`get_reader`
only sniffs a bounded number of 132-byte headers and returns None quickly when
there is no DICOM. All reading is the core's (:mod:`napari_latentdirs.dicom`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..dicom.discover import contains_dicom
from ..dicom.series import LUNG_WINDOW, CTVolume, load_ct

log = logging.getLogger(__name__)


def get_reader(path: str | list[str]):
    """Return :func:`read_dicom` if ``path`` holds DICOM, else None (fast)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(contains_dicom(p) for p in paths):
        return None
    return read_dicom


def volume_to_layer(vol: CTVolume, name: str | None = None) -> tuple:
    """LayerDataTuple for one CT series: HU data, mm scale/translate, lung window, metadata."""
    meta = dict(vol.meta)
    meta["problems"] = list(vol.problems)
    meta["slices"] = [
        {"index": s.index, "z_mm": s.z_mm, "rel_z": s.rel_z, "instance_number": s.instance_number, "path": s.path}
        for s in vol.slices
    ]
    desc = vol.meta.get("series_description") or vol.series_uid[-12:]
    kwargs = {
        "name": name or f"{vol.patient_id} {desc}".strip(),
        "scale": tuple(float(s) for s in vol.spacing),
        "translate": tuple(float(t) for t in vol.origin),
        "contrast_limits": LUNG_WINDOW,
        "colormap": "gray",
        "metadata": meta,
    }
    return (vol.hu, kwargs, "image")


def _notify(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


def read_dicom(path: str | list[str]) -> list[tuple]:
    """Layers for every readable series. A series that cannot be read (corrupt, absurd
    geometry...) becomes a warning beside the others; when none can be read, the
    specific DicomReadError propagates and napari reports it for this open only."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for p in paths:
        for vol in load_ct(p, on_skip=_notify):
            if vol.problems:
                log.warning("series %s: %s", vol.series_uid, "; ".join(vol.problems))
                _notify_problems(vol)
            layers.append(volume_to_layer(vol))
    return layers


def _notify_problems(vol: CTVolume) -> None:
    # gaps, duplicates and non-uniform spacing distort the mm scale: say so on screen
    from napari.utils.notifications import show_warning

    desc = vol.meta.get("series_description") or vol.series_uid[-12:]
    show_warning(f"DICOM series {desc}: " + "; ".join(vol.problems))
