"""Read one CT series into an exact HU volume in the standard axial radiological view.

Rules (each one a known pitfall of CT archives such as LIDC-IDRI):

* HU = stored value x RescaleSlope + RescaleIntercept, per slice (slopes and
  intercepts may change within a series). Stored values are read with their
  real signedness, so PixelPaddingValue -2000 becomes -3024 HU with intercept
  -1024 and -2000 HU with intercept 0; padded pixels are counted in ``meta``.
* Slices are sorted by ImagePositionPatient projected on the slice normal:
  never by file name, InstanceNumber or the text of IPP.
* Spacing comes from positions (median step), never from SliceThickness.
* Duplicate positions keep the lower InstanceNumber; duplicates, gaps,
  non-uniform steps, obliquity and shear are reported in ``problems`` and the
  caller decides.
* Every axial orientation is flipped/transposed (no resampling) so that the
  patient's anterior is at the top and the patient's left on the image's right.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from . import geometry
from .errors import (
    CompressedNoDecoderError,
    DicomReadError,
    EmptySeriesError,
    ImplausibleGeometryError,
    InconsistentSeriesError,
    InvalidAttributeError,
    MissingAttributeError,
    MissingPixelDataError,
    MixedSeriesError,
    NotCTImageError,
    PixelDataLengthError,
    PixelDecodeError,
    UnsupportedImageError,
)
from .fastparse import FastParser, Unsupported
from .files import (
    ENHANCED_CT_STORAGE,
    LEGACY_ENHANCED_CT_STORAGE,
    dataset_values,
    non_ct_reason,
    read_dataset,
)

log = logging.getLogger(__name__)

#: Default CT display window for lungs (W 1500, L -600) as napari contrast limits.
LUNG_WINDOW = (-1350.0, 150.0)


@dataclass(frozen=True)
class SliceInfo:
    """Per-slice metadata; ``rel_z`` in [0, 1] is a free weak label for the z-position direction."""

    patient_id: str
    series_uid: str
    z_mm: float
    index: int
    rel_z: float
    instance_number: int | None
    sop_uid: str
    path: str


@dataclass
class CTVolume:
    """A CT series as HU voxels (Z, Y, X), z inferior->superior, axial radiological view.

    ``hu`` is float32 HU (None only inside :class:`LazySeries` until filled);
    ``spacing`` (z, y, x) mm with z from positions; ``problems`` lists duplicates,
    gaps, non-uniform spacing, obliquity...; ``slices`` per-slice metadata;
    ``meta`` series information (JSON-serialisable).
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    problems: list[str] = field(default_factory=list)
    slices: list[SliceInfo] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def series_uid(self) -> str:
        return self.meta.get("series_uid", "")

    @property
    def patient_id(self) -> str:
        return self.meta.get("patient_id", "")

    @property
    def origin(self) -> tuple[float, float, float]:
        """Patient position (z, y, x) in mm of voxel (0, 0, 0); napari ``translate``."""
        return tuple(self.meta.get("origin_zyx_mm", (0.0, 0.0, 0.0)))

    @property
    def z_mm(self) -> np.ndarray:
        return np.array([s.z_mm for s in self.slices], dtype=np.float64)

    def __repr__(self) -> str:
        return (
            f"CTVolume(series={self.series_uid!r}, patient={self.patient_id!r}, shape={self.hu.shape}, "
            f"spacing={tuple(round(s, 4) for s in self.spacing)}, problems={len(self.problems)})"
        )


@dataclass
class _Slice:
    path: Path
    series_uid: str
    study_uid: str
    patient_id: str
    sop_uid: str
    instance_number: int | None
    rows: int
    cols: int
    iop: tuple[float, ...]
    ipp: np.ndarray
    pixel_spacing: tuple[float, float]
    slope: float
    intercept: float
    rescale_missing: bool
    padding: tuple[float, float] | None  # raw [lo, hi] padding range, stored-value domain
    raw: np.ndarray
    hdr: dict  # a few header values for series-level meta


#: Attributes read from each file (everything else is skipped unparsed, which is much faster).
READ_KEYWORDS = [
    "ImageType", "SOPClassUID", "SOPInstanceUID", "Modality", "Manufacturer", "SeriesDescription",
    "PatientID", "SliceThickness", "StudyInstanceUID", "SeriesInstanceUID", "InstanceNumber",
    "ImagePositionPatient", "ImageOrientationPatient", "SamplesPerPixel", "PhotometricInterpretation",
    "NumberOfFrames", "Rows", "Columns", "PixelSpacing", "BitsAllocated", "BitsStored",
    "PixelRepresentation", "PixelPaddingValue", "PixelPaddingRangeLimit", "RescaleIntercept",
    "RescaleSlope", "PixelData", "FloatPixelData", "DoubleFloatPixelData",
]


def _required(v: dict, keyword: str, path: Path, n: int | None = None):
    value = v.get(keyword)
    if value is None or value == "" or (n is not None and (not hasattr(value, "__len__") or len(value) != n)):
        from pydicom.datadict import tag_for_keyword

        tag = tag_for_keyword(keyword)
        where = f" ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else ""
        got = "absent" if value is None else f"got {value!r}"
        raise MissingAttributeError(f"missing {keyword}{where} ({got})", path)
    return value


def _finite(values, keyword: str, path: Path) -> list[float]:
    try:
        out = [float(x) for x in values]
    except (TypeError, ValueError) as e:
        raise InvalidAttributeError(f"{keyword} is not numeric: {values!r}", path) from e
    if not all(math.isfinite(x) for x in out):
        raise InvalidAttributeError(f"{keyword} has non-finite values: {out}", path)
    return out


def _check_pixel_format(v: dict, path: Path) -> None:
    if v.get("SOPClassUID") in (ENHANCED_CT_STORAGE, LEGACY_ENHANCED_CT_STORAGE):
        raise UnsupportedImageError("Enhanced CT (multi-frame) storage is not supported", path)
    reason = non_ct_reason(v)
    if reason is not None:
        raise NotCTImageError(f"not a CT image: {reason}", path)
    spp = int(v.get("SamplesPerPixel") or 1)
    if spp != 1:
        raise UnsupportedImageError(f"SamplesPerPixel={spp} (colour); CT must be grayscale", path)
    photometric = str(v.get("PhotometricInterpretation") or "MONOCHROME2")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedImageError(f"PhotometricInterpretation {photometric!r}; CT must be MONOCHROME", path)
    frames = int(v.get("NumberOfFrames") or 1)
    if frames != 1:
        raise UnsupportedImageError(f"multi-frame image ({frames} frames) is not supported", path)


def _native_pixels(data: bytes, v: dict, rows: int, cols: int, bits: int, big_endian: bool) -> np.ndarray:
    """Uncompressed stored values, like pydicom's native decoder (plus sign extension)."""
    signed = int(v.get("PixelRepresentation") or 0) == 1
    dtype = np.dtype(f"{'>' if big_endian else '<'}{'i' if signed else 'u'}{bits // 8}")
    arr = np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)
    stored = int(v.get("BitsStored") or bits)
    if signed and stored < bits:
        # Two's complement in BitsStored bits: move the sign bit to the top and shift back.
        shift = bits - stored
        arr = (arr << shift) >> shift
    return arr.astype(dtype.newbyteorder("="), copy=False)


def _decode(ds: Dataset | None, v: dict, path: Path, rows: int, cols: int) -> np.ndarray:
    data = v.get("PixelData")
    if data is None:
        other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if v.get(k) is not None]
        extra = f" (has {other[0]}, unsupported for CT)" if other else ""
        raise MissingPixelDataError(f"no Pixel Data (7FE0,0010) element{extra}", path)
    ts = UID(v.get("TransferSyntaxUID") or "1.2.840.10008.1.2")
    if not ts.is_transfer_syntax:
        raise CompressedNoDecoderError(f"unknown transfer syntax {ts}; no pixel-data decoder for it", path)
    bits = int(_required(v, "BitsAllocated", path))
    if bits not in (8, 16, 32):
        raise UnsupportedImageError(f"BitsAllocated={bits} is not supported for CT", path)
    if not ts.is_compressed:
        expected = rows * cols * bits // 8
        actual = len(data)
        # One trailing pad byte keeps odd lengths even; anything else is a real mismatch.
        if actual not in (expected, expected + 1):
            raise PixelDataLengthError(
                f"Pixel Data has {actual} bytes but Rows x Columns x BitsAllocated = "
                f"{rows}x{cols}x{bits} needs {expected}",
                path,
            )
        return _native_pixels(data, v, rows, cols, bits, not ts.is_little_endian)
    from pydicom.pixels.decoders.base import get_decoder

    if ds is None:  # the fast parser only accepts native syntaxes; re-read with pydicom
        ds = read_dataset(path, specific_tags=READ_KEYWORDS)
    try:
        available = get_decoder(ts).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise CompressedNoDecoderError(
            f"pixel data is compressed ({ts.name}) and no installed decoder handles it "
            "(install pylibjpeg with its plugins)",
            path,
        )
    try:
        arr = ds.pixel_array
    except Exception as e:  # decoders raise assorted types on corrupt streams
        raise PixelDecodeError(f"cannot decode {ts.name} pixel data ({type(e).__name__}: {e})", path) from e
    if arr.shape != (rows, cols):
        raise PixelDataLengthError(f"decoded pixel array has shape {arr.shape}, expected {(rows, cols)}", path)
    return arr


def _padding_range(v: dict) -> tuple[float, float] | None:
    """Raw padding [lo, hi] in the stored-value domain, signedness-corrected."""
    if v.get("PixelPaddingValue") is None:
        return None
    signed = int(v.get("PixelRepresentation") or 0) == 1
    bits = int(v.get("BitsAllocated") or 16)

    def fix(x) -> int:
        if isinstance(x, (bytes, list, tuple)):
            x = x[0]
        x = int(x)
        # An ambiguous US/SS value read as unsigned: -2000 arrives as 63536.
        if signed and x >= 2 ** (bits - 1):
            x -= 2**bits
        return x

    lo = fix(v["PixelPaddingValue"])
    hi = fix(v["PixelPaddingRangeLimit"]) if v.get("PixelPaddingRangeLimit") is not None else lo
    return (float(min(lo, hi)), float(max(lo, hi)))


_PARSER = FastParser([k for k in READ_KEYWORDS if k not in ("FloatPixelData", "DoubleFloatPixelData")])


def _read_values(path: Path, *, fast: bool = True) -> tuple[dict, Dataset | None]:
    """Attribute values of one file: the fast parser when it can, else strict pydicom."""
    if fast:
        try:
            with open(path, "rb") as fh:
                buf = fh.read()
            vals, meta = _PARSER.parse(buf)
            if "PixelData" in vals:
                v = {kw: vals.get(kw) for kw in READ_KEYWORDS}
                v["SOPClassUID"] = v["SOPClassUID"] or meta.get("MediaStorageSOPClassUID") or None
                v["TransferSyntaxUID"] = meta["TransferSyntaxUID"]
                return v, None
        except (Unsupported, OSError, UnicodeDecodeError):
            pass
    ds = read_dataset(path, specific_tags=READ_KEYWORDS)
    if "PixelData" not in ds:
        # Rare error path: re-read everything so truncation is told apart from absence.
        ds = read_dataset(path)
    return dataset_values(ds, READ_KEYWORDS), ds


def read_slice(path: str | os.PathLike) -> _Slice:
    """Read and validate one single-frame CT file (internal record incl. stored pixels)."""
    path = Path(path)
    v, ds = _read_values(path)
    _check_pixel_format(v, path)
    series_uid = str(_required(v, "SeriesInstanceUID", path))
    rows = int(_required(v, "Rows", path))
    cols = int(_required(v, "Columns", path))
    if rows < 1 or cols < 1:
        raise InvalidAttributeError(f"Rows x Columns = {rows}x{cols}", path)
    _required(v, "PixelRepresentation", path)
    ipp_values = _finite(_required(v, "ImagePositionPatient", path, 3), "ImagePositionPatient", path)
    geometry.check_position(ipp_values, path)
    ipp = np.asarray(ipp_values)
    iop = tuple(_finite(_required(v, "ImageOrientationPatient", path, 6), "ImageOrientationPatient", path))
    geometry.check_orientation(iop, path)
    ps = _finite(_required(v, "PixelSpacing", path, 2), "PixelSpacing", path)
    if min(ps) <= 0:
        raise InvalidAttributeError(f"PixelSpacing must be positive, got {ps}", path)
    geometry.check_spacing(ps, "PixelSpacing", path)
    slope_v, intercept_v = v.get("RescaleSlope"), v.get("RescaleIntercept")
    rescale_missing = slope_v is None or intercept_v is None
    slope = float(slope_v) if slope_v is not None else 1.0
    intercept = float(intercept_v) if intercept_v is not None else 0.0
    if not math.isfinite(slope) or slope == 0 or not math.isfinite(intercept):
        raise InvalidAttributeError(f"unusable rescale: RescaleSlope={slope}, RescaleIntercept={intercept}", path)
    raw = _decode(ds, v, path, rows, cols)
    _check_hu_finite(raw, slope, intercept, path)
    inst = v.get("InstanceNumber")
    hdr = {k: v.get(k) for k in ("Modality", "SeriesDescription", "Manufacturer", "SliceThickness", "TransferSyntaxUID")}
    return _Slice(
        path=path,
        series_uid=series_uid,
        study_uid=str(v.get("StudyInstanceUID") or ""),
        patient_id=str(v.get("PatientID") or ""),
        sop_uid=str(v.get("SOPInstanceUID") or ""),
        instance_number=int(inst) if inst not in (None, "") else None,
        rows=rows,
        cols=cols,
        iop=iop,
        ipp=ipp,
        pixel_spacing=(ps[0], ps[1]),
        slope=slope,
        intercept=intercept,
        rescale_missing=rescale_missing,
        padding=_padding_range(v),
        raw=raw,
        hdr=hdr,
    )


_F32_MAX = float(np.finfo(np.float32).max)


def _check_hu_finite(raw: np.ndarray, slope: float, intercept: float, path: Path) -> None:
    """Raise if stored x slope + intercept leaves float32 for some pixel of this slice.

    The bound over the whole dtype range settles the usual case without touching the
    pixels; only a rescale that *could* overflow pays for a min/max pass.
    """
    if raw.dtype.kind in "iu":
        info = np.iinfo(raw.dtype)
        lo, hi = float(info.min), float(info.max)
    else:
        lo, hi = float(np.min(raw)), float(np.max(raw))
    if max(abs(lo * slope), abs(hi * slope)) + abs(intercept) < _F32_MAX:
        return
    if raw.size == 0:
        return
    lo, hi = float(np.min(raw)), float(np.max(raw))
    ends = (lo * slope + intercept, hi * slope + intercept)
    if not all(math.isfinite(h) and abs(h) < _F32_MAX for h in ends):
        raise InvalidAttributeError(
            f"RescaleSlope={slope:g}, RescaleIntercept={intercept:g} give non-finite HU for stored values "
            f"{lo:g}..{hi:g} (beyond float32)",
            path,
        )


def to_hu_into(s: _Slice, plan: geometry.Reorientation, out: np.ndarray) -> None:
    """Write the reoriented HU of slice ``s`` into ``out`` (float32), in one pass when possible.

    Bit-identical to pydicom's float64 ``apply_rescale`` cast to float32.
    """
    raw = plan.apply(s.raw)  # a view
    if s.slope == 1.0 and s.intercept == int(s.intercept) and s.raw.itemsize <= 2:
        # Integers below 2**24 are exact in float32: skip the float64 detour (the common case).
        np.add(raw, np.float32(s.intercept), out=out, dtype=np.float32)
    else:
        out[...] = raw.astype(np.float64) * s.slope + s.intercept


def _check_consistent(slices: Sequence[_Slice]) -> None:
    first = slices[0]
    uids = {s.series_uid for s in slices}
    if len(uids) > 1:
        sample = sorted(uids)[:3]
        raise MixedSeriesError(f"{len(uids)} different SeriesInstanceUIDs given as one series: {sample}")
    patients = {s.patient_id for s in slices}
    if len(patients) > 1:
        raise MixedSeriesError(f"one series UID but {len(patients)} PatientIDs: {sorted(patients)[:3]}")
    for s in slices[1:]:
        if (s.rows, s.cols) != (first.rows, first.cols):
            raise InconsistentSeriesError(
                f"Rows/Columns differ within the series: {first.rows}x{first.cols} in {first.path.name} "
                f"vs {s.rows}x{s.cols} in {s.path.name}"
            )
        if np.max(np.abs(np.subtract(s.iop, first.iop))) > 1e-4:
            raise InconsistentSeriesError(
                f"ImageOrientationPatient differs within the series: {list(first.iop)} in {first.path.name} "
                f"vs {list(s.iop)} in {s.path.name}"
            )
        if np.max(np.abs(np.subtract(s.pixel_spacing, first.pixel_spacing))) > 1e-4:
            raise InconsistentSeriesError(
                f"PixelSpacing differs within the series: {list(first.pixel_spacing)} in {first.path.name} "
                f"vs {list(s.pixel_spacing)} in {s.path.name}"
            )
        if s.raw.dtype != first.raw.dtype:
            raise InconsistentSeriesError(
                f"pixel format differs within the series: {first.raw.dtype} in {first.path.name} "
                f"vs {s.raw.dtype} in {s.path.name}"
            )


def _dedupe(ordered: list[_Slice], z: np.ndarray) -> tuple[list[_Slice], np.ndarray, list[str]]:
    """Collapse slices at the same position, keeping the lower InstanceNumber."""
    keep: list[_Slice] = []
    keep_z: list[float] = []
    problems: list[str] = []
    i = 0
    n_groups = 0
    while i < len(ordered):
        j = i + 1
        while j < len(ordered) and z[j] - z[i] < geometry.DUPLICATE_TOL_MM:
            j += 1
        group = ordered[i:j]
        if len(group) > 1:
            group = sorted(group, key=lambda s: (s.instance_number is None, s.instance_number or 0, str(s.path)))
            n_groups += 1
            if n_groups <= 10:
                dropped = ", ".join(f"InstanceNumber {s.instance_number} ({s.path.name})" for s in group[1:])
                problems.append(
                    f"duplicate position z={z[i]:.2f} mm: kept InstanceNumber {group[0].instance_number} "
                    f"({group[0].path.name}), dropped {dropped}"
                )
        keep.append(group[0])
        keep_z.append(float(z[i]))
        i = j
    if n_groups > 10:
        problems.append(f"duplicate position: {n_groups - 10} more duplicated positions not listed")
    return keep, np.asarray(keep_z), problems


def read_series(paths: Sequence[str | os.PathLike]) -> CTVolume:
    """Read the files of ONE CT series into a :class:`CTVolume` (see module doc for the rules).

    Raises a :class:`~napari_latentdirs.dicom.errors.DicomReadError` subclass for
    any unusable file or an inconsistent series; never returns a partial volume.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise EmptySeriesError("no files given for the series")
    slices = [read_slice(p) for p in paths]
    return assemble(slices)


@dataclass
class LazySeries:
    """A validated, sorted, de-duplicated series whose HU are produced on demand.

    ``volume`` has all metadata and ``hu=None``; :meth:`fill` writes HU of a range of
    slices into a caller-owned buffer (so :func:`prepare` can reuse one warm buffer).
    """

    volume: CTVolume
    kept: list[_Slice]
    plan: geometry.Reorientation

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.volume.meta["shape"])

    def fill(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """HU of slices [start, stop) into ``out[: stop - start]`` (float32); returns that view."""
        view = out[: stop - start]
        for k in range(start, stop):
            to_hu_into(self.kept[k], self.plan, view[k - start])
        return view

    def materialize(self) -> CTVolume:
        hu = np.empty(self.shape, dtype=np.float32)
        self.fill(0, self.shape[0], hu)
        self.volume.hu = hu
        self.kept = []  # the stored pixels are no longer needed
        return self.volume


def read_series_lazy(paths: Sequence[str | os.PathLike], *, padding_stats: bool = True) -> LazySeries:
    """Like :func:`read_series` (same checks and errors) but HU are filled on demand.

    ``padding_stats=False`` leaves ``meta["padded_fraction"]`` as None: counting
    padding pixels is a full pass over the pixels that ``prepare`` does not need.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise EmptySeriesError("no files given for the series")
    return plan_series([read_slice(p) for p in paths], padding_stats=padding_stats)


def assemble(slices: list[_Slice]) -> CTVolume:
    """Sort, de-duplicate, check and stack validated slices into a CTVolume."""
    return plan_series(slices).materialize()


def plan_series(slices: list[_Slice], *, padding_stats: bool = True) -> LazySeries:
    """Sort, de-duplicate and check validated slices; HU are produced later."""
    if not slices:
        raise EmptySeriesError("no slices to assemble")
    _check_consistent(slices)
    first = slices[0]
    row, col, normal = geometry.orientation_vectors(first.iop, first.path)
    plan = geometry.axial_reorientation(row, col, first.path)
    n_sup = geometry.superior_normal(normal)
    z_all = np.array([float(s.ipp @ n_sup) for s in slices])
    order = np.lexsort((np.array([str(s.path) for s in slices]), z_all))
    ordered = [slices[i] for i in order]
    z_sorted = z_all[order]
    kept, z, problems = _dedupe(ordered, z_sorted)

    if len(kept) > 1:
        dz, spacing_problems = geometry.analyse_spacing(z)
        if dz > geometry.MAX_SLICE_SPACING_MM:
            raise ImplausibleGeometryError(
                f"slice spacing {dz:.6g} mm (median step between slice positions) is outside the physical range "
                f"{geometry.DUPLICATE_TOL_MM:g}-{geometry.MAX_SLICE_SPACING_MM:g} mm",
                first.path,
            )
        problems += spacing_problems
    else:
        dz = 1.0
        problems.append("single slice: z spacing is undefined (1.0 mm used for display)")
    if plan.obliquity_deg > 0.5:
        problems.append(f"oblique slices: normal is {plan.obliquity_deg:.1f} deg from the patient z axis (not resampled)")
    shear = geometry.in_plane_shear(np.stack([s.ipp for s in kept]), normal)
    if shear > 0.01 * min(first.pixel_spacing) + 1e-3:
        problems.append(f"slice origins shift in-plane by up to {shear:.2f} mm (gantry tilt?); not resampled")
    n_missing_rescale = sum(s.rescale_missing for s in kept)
    if n_missing_rescale:
        problems.append(f"RescaleSlope/RescaleIntercept missing in {n_missing_rescale} slice(s); assumed 1 and 0")

    row_sp, col_sp = first.pixel_spacing  # PixelSpacing = [between rows (y), between columns (x)]
    sy, sx = (col_sp, row_sp) if plan.transpose else (row_sp, col_sp)
    ny, nx = (first.cols, first.rows) if plan.transpose else (first.rows, first.cols)
    n_voxels = len(kept) * ny * nx
    padded = 0
    for s in kept if padding_stats else ():
        if s.padding is not None:
            lo, hi = s.padding
            mask = (s.raw == lo) if lo == hi else ((s.raw >= lo) & (s.raw <= hi))
            padded += int(np.count_nonzero(mask))

    span = float(z[-1] - z[0]) if len(z) > 1 else 0.0
    patient_id, series_uid = first.patient_id, first.series_uid
    infos = [
        SliceInfo(
            patient_id=patient_id,
            series_uid=series_uid,
            z_mm=float(z[k]),
            index=k,
            rel_z=float((z[k] - z[0]) / span) if span > 0 else 0.0,
            instance_number=s.instance_number,
            sop_uid=s.sop_uid,
            path=str(s.path),
        )
        for k, s in enumerate(kept)
    ]
    # Patient position of output voxel (0,0,0): the stored pixel it came from, via the flips.
    r0 = (first.rows - 1) if (plan.flip_x if plan.transpose else plan.flip_y) else 0
    c0 = (first.cols - 1) if (plan.flip_y if plan.transpose else plan.flip_x) else 0
    p0 = kept[0].ipp + c0 * col_sp * row + r0 * row_sp * col
    hdr = first.hdr
    pad_hu = sorted({s.padding[0] * s.slope + s.intercept for s in kept if s.padding is not None})
    meta = {
        "series_uid": series_uid,
        "study_uid": first.study_uid,
        "patient_id": patient_id,
        "modality": str(hdr.get("Modality") or ""),
        "series_description": str(hdr.get("SeriesDescription") or ""),
        "manufacturer": str(hdr.get("Manufacturer") or ""),
        "transfer_syntax": hdr["TransferSyntaxUID"],
        "n_files": len(slices),
        "n_slices": len(kept),
        "spacing_zyx_mm": [float(dz), float(sy), float(sx)],
        "slice_thickness_mm": float(hdr["SliceThickness"]) if hdr.get("SliceThickness") not in (None, "") else None,
        "image_orientation_patient": [float(v) for v in first.iop],
        "reorientation": plan.to_dict(),
        "origin_zyx_mm": [float(z[0]), float(p0[1]), float(p0[0])],
        "rescale_slopes": sorted({s.slope for s in kept}),
        "rescale_intercepts": sorted({s.intercept for s in kept}),
        "padding_hu": pad_hu,
        "padded_fraction": (padded / n_voxels if n_voxels else 0.0) if padding_stats else None,
        "shape": [len(kept), ny, nx],
        "problems": list(problems),
    }
    for p in problems:
        log.debug("series %s: %s", series_uid, p)
    vol = CTVolume(hu=None, spacing=(float(dz), float(sy), float(sx)), problems=problems, slices=infos, meta=meta)
    return LazySeries(volume=vol, kept=kept, plan=plan)


def load_ct(path: str | os.PathLike, on_skip: Callable[[str], None] | None = None) -> list[CTVolume]:
    """Open a DICOM file (one slice) or every CT series under a folder.

    Series that fail to read are logged (and passed to ``on_skip`` as one line, so
    a viewer can show them) and left out; if none can be read, the first error is
    raised so the caller sees why.
    """
    from .discover import discover_series

    path = Path(path)
    if path.is_file():
        return [read_series([path])]
    found = discover_series(path)
    volumes: list[CTVolume] = []
    errors: list[DicomReadError] = []
    for s in found.series:
        try:
            volumes.append(read_series(s.paths))
        except DicomReadError as e:
            log.warning("cannot read series %s under %s: %s", s.series_uid, s.folder, e)
            errors.append(e)
            if on_skip is not None:
                on_skip(f"series {s.series_uid} under {s.folder} left out: {e}")
    if not volumes and errors:
        raise errors[0]
    if not volumes:
        reasons = "; ".join(f"{k.reason}" for k in found.skipped[:5])
        raise EmptySeriesError(f"no CT series under {path}" + (f" (skipped: {reasons})" if reasons else ""))
    return volumes
