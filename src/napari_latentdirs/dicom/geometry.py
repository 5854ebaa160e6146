"""Patient geometry: orientation checks, the axial radiological view, slice spacing.

DICOM patient coordinates are LPS: +x towards the patient's left, +y posterior,
+z superior. An image row runs along ``row`` (the first three values of
ImageOrientationPatient) and a column along ``col``. The standard axial
radiological view has ``row = +x`` (patient left on the image's right) and
``col = +y`` (anterior at the top); every axial series is flipped/transposed
into that view without resampling, and slices are ordered by increasing z
(inferior to superior).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import ImplausibleGeometryError, InvalidAttributeError, UnsupportedOrientationError

#: Positions closer than this along the normal are the same slice (mm).
DUPLICATE_TOL_MM = 0.01
#: A step of at least this many nominal spacings is a gap (room for a missing slice);
#: shorter irregular steps are reported as non-uniform spacing instead.
GAP_FACTOR = 1.75
#: Physical range of a CT pixel or slice spacing (mm). Beyond it the file is damaged or hostile:
#: 1e20 mm reaches napari's camera as an overflow, 1e308 as a division by zero that aborts Qt.
MIN_SPACING_MM = 0.01
MAX_SPACING_MM = 50.0
#: Largest step between slices (mm). Sparse samplings are real (the phantom with 8 slices over
#: a thorax steps ~50-80 mm), so this bound is looser than the pixel one, but still no CT.
MAX_SLICE_SPACING_MM = 500.0
#: Largest |coordinate| of a slice origin (mm): scanner tables move about 2 m; 10 m is no patient.
MAX_POSITION_MM = 1e4


def check_spacing(values, keyword: str, path=None) -> None:
    """Raise ImplausibleGeometryError unless every spacing is within [MIN_SPACING_MM, MAX_SPACING_MM]."""
    if not all(MIN_SPACING_MM <= v <= MAX_SPACING_MM for v in values):
        shown = ", ".join(f"{v:.6g}" for v in values)
        raise ImplausibleGeometryError(
            f"{keyword} [{shown}] mm is outside the physical range {MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm", path
        )


def check_position(values, path=None) -> None:
    """Raise ImplausibleGeometryError if a slice origin lies more than MAX_POSITION_MM from the isocentre."""
    if not all(abs(v) <= MAX_POSITION_MM for v in values):
        shown = ", ".join(f"{v:.6g}" for v in values)
        raise ImplausibleGeometryError(
            f"ImagePositionPatient [{shown}] mm is more than {MAX_POSITION_MM:g} mm from the origin (not a physical position)",
            path,
        )


@dataclass(frozen=True)
class Reorientation:
    """How to turn a stored slice (rows, cols) into the axial radiological view."""

    transpose: bool
    flip_y: bool
    flip_x: bool
    obliquity_deg: float

    def apply(self, img: np.ndarray) -> np.ndarray:
        """Reorient the last two axes of ``img`` (a view; no copy)."""
        if self.transpose:
            img = np.swapaxes(img, -1, -2)
        if self.flip_y:
            img = img[..., ::-1, :]
        if self.flip_x:
            img = img[..., :, ::-1]
        return img

    def to_dict(self) -> dict:
        return asdict(self)


def check_orientation(iop, path=None) -> None:
    """Raise unless IOP is 6 finite numbers forming two orthonormal vectors (pure Python: per-slice hot path)."""
    try:
        v = [float(x) for x in iop]
    except (TypeError, ValueError) as e:
        raise InvalidAttributeError(f"ImageOrientationPatient must be 6 numbers, got {iop!r}", path) from e
    if len(v) != 6 or not all(math.isfinite(x) for x in v):
        raise InvalidAttributeError(f"ImageOrientationPatient must be 6 finite numbers, got {list(iop)}", path)
    nr = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    nc = math.sqrt(v[3] ** 2 + v[4] ** 2 + v[5] ** 2)
    dot = v[0] * v[3] + v[1] * v[4] + v[2] * v[5]
    # Scanners write IOP with ~6 decimals; 1e-3 accepts rounding but not a garbled tag.
    if abs(nr - 1) > 1e-3 or abs(nc - 1) > 1e-3 or abs(dot) > 1e-3:
        raise InvalidAttributeError(
            f"ImageOrientationPatient is not orthonormal (|row|={nr:.4f}, |col|={nc:.4f}, row.col={dot:.4f})",
            path,
        )


def orientation_vectors(iop, path=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and normal unit vectors; raises if IOP is not orthonormal."""
    check_orientation(iop, path)
    v = np.asarray([float(x) for x in iop], dtype=np.float64)
    row, col = v[:3] / np.linalg.norm(v[:3]), v[3:] / np.linalg.norm(v[3:])
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def axial_reorientation(row: np.ndarray, col: np.ndarray, path=None) -> Reorientation:
    """The flips/transpose that bring an (approximately) axial slice into the standard view."""
    normal = np.cross(row, col)
    obliquity = float(np.degrees(np.arccos(min(1.0, abs(normal[2]) / np.linalg.norm(normal)))))
    if obliquity > 45.0:
        axis = "sagittal" if int(np.argmax(np.abs(normal))) == 0 else "coronal"
        raise UnsupportedOrientationError(
            f"slices are not axial: normal {np.round(normal, 3).tolist()} is {obliquity:.1f} deg "
            f"from the patient z axis (looks {axis})",
            path,
        )
    r_axis = int(np.argmax(np.abs(row[:2])))
    transpose = r_axis == 1
    # After a transpose the stored columns become rows, so the x direction is read off `col`.
    x_vec, y_vec = (col, row) if transpose else (row, col)
    return Reorientation(
        transpose=transpose,
        flip_y=bool(y_vec[1] < 0),
        flip_x=bool(x_vec[0] < 0),
        obliquity_deg=obliquity,
    )


def superior_normal(normal: np.ndarray) -> np.ndarray:
    """The slice normal, signed to point superior, so z_mm grows inferior -> superior."""
    return normal if normal[2] >= 0 else -normal


def analyse_spacing(z_mm: np.ndarray) -> tuple[float, list[str]]:
    """Nominal slice spacing (median step) and problems: gaps and non-uniform steps.

    ``z_mm`` must be sorted and free of duplicates.
    """
    if len(z_mm) < 2:
        return float("nan"), []
    steps = np.diff(np.asarray(z_mm, dtype=np.float64))
    nominal = float(np.median(steps))
    problems: list[str] = []
    gap_idx = np.flatnonzero(steps > GAP_FACTOR * nominal)
    for i in gap_idx[:10]:
        missing = int(round(steps[i] / nominal)) - 1
        problems.append(
            f"gap: {steps[i]:.3g} mm between z={z_mm[i]:.2f} and z={z_mm[i + 1]:.2f} mm "
            f"(~{max(missing, 1)} slice(s) missing; nominal spacing {nominal:.3g} mm)"
        )
    if len(gap_idx) > 10:
        problems.append(f"gap: {len(gap_idx) - 10} more gaps not listed")
    regular = np.delete(steps, gap_idx)
    # Positions are written with ~3 decimals; 1 % + 5 um tolerates that rounding only.
    tol = 0.01 * nominal + 0.005
    if regular.size and float(np.max(np.abs(regular - nominal))) > tol:
        problems.append(
            f"non-uniform spacing: steps from {regular.min():.4g} to {regular.max():.4g} mm "
            f"(nominal {nominal:.4g} mm)"
        )
    return nominal, problems


def in_plane_shear(positions: np.ndarray, normal: np.ndarray) -> float:
    """Largest in-plane displacement (mm) between consecutive slice origins (gantry tilt)."""
    if len(positions) < 2:
        return 0.0
    d = np.diff(positions, axis=0)
    inplane = d - np.outer(d @ normal, normal)
    return float(np.max(np.linalg.norm(inplane, axis=1)))
