"""Generic CT series writer (pydicom): CT Image Storage, dciodvfy-clean.

``write_ct_series(out_dir, hu, pixel_spacing, z_positions, ...)`` writes one
file per slice with every UID, the Image Plane module (ImagePositionPatient,
ImageOrientationPatient, PixelSpacing, SliceThickness, SliceLocation), signed
16-bit MONOCHROME2 pixels with RescaleIntercept -1024 (by default), and
deterministic bytes: UIDs, dates and times derive from ``seed``.

``derived=True`` is for exports of processed/generated images: ImageType
DERIVED\\SECONDARY, fresh UIDs, and no patient identifiers (type-2 patient
attributes present but empty).

The helpers ``base_dataset`` and ``save`` are shared with the phantom's CR
writer so all our files get the same file meta and SOP Common handling.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian

IMPLEMENTATION_VERSION = "LATENTDIRS_1"
MANUFACTURER = "napari-latentdirs"


class DicomWriteError(ValueError):
    """Raised for inputs that cannot be written as a valid series."""


def make_uid(*parts: object) -> str:
    """Deterministic ``2.25.<128-bit integer>`` UID from the given parts.

    (pydicom's ``generate_uid(prefix=None)`` ignores its entropy sources and
    returns a random UUID, so we hash ourselves.)
    """
    h = hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).digest()[:16]
    return f"2.25.{int.from_bytes(h, 'big')}"


def random_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def _date_time(seed: object) -> tuple[str, str]:
    h = int(hashlib.sha256(repr(seed).encode()).hexdigest()[:12], 16)
    year = 2000 + h % 20
    month = 1 + (h >> 8) % 12
    day = 1 + (h >> 12) % 28
    hour = 7 + (h >> 20) % 11
    minute = (h >> 24) % 60
    sec = (h >> 30) % 60
    return f"{year:04d}{month:02d}{day:02d}", f"{hour:02d}{minute:02d}{sec:02d}"


def base_dataset(sop_class_uid: str, modality: str) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.Modality = modality
    return ds


def save(ds: Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` through a fresh temporary file and a rename: a reader never
    sees half a file, and a symlink at ``path`` is replaced, never written through."""
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            dcmwrite(fh, ds, enforce_file_format=True)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@dataclass
class SeriesInfo:
    """Identifiers and descriptive attributes of one written series."""

    patient_id: str = "ANON"
    patient_name: str = "ANON"
    patient_sex: str = "O"
    patient_birth_date: str = ""
    study_uid: str | None = None
    series_uid: str | None = None
    frame_uid: str | None = None
    study_id: str = "1"
    accession: str = ""
    series_number: int = 1
    study_description: str = "Synthetic thorax CT"
    series_description: str = "Synthetic axial CT"
    body_part: str = "CHEST"
    kvp: float = 120.0
    convolution_kernel: str = "STANDARD"
    extra: dict = field(default_factory=dict)


def write_ct_series(
    out_dir: str | Path,
    hu: np.ndarray,
    pixel_spacing: float | Sequence[float],
    z_positions: Sequence[float],
    *,
    info: SeriesInfo | None = None,
    seed: object = 0,
    slice_thickness: float | None = None,
    origin_xy: tuple[float, float] | None = None,
    intercept: float = -1024.0,
    padding_value: int | None = None,
    padding_mask: np.ndarray | None = None,
    derived: bool = False,
    file_names: Sequence[str] | None = None,
    instance_numbers: Sequence[int] | None = None,
    derivation_description: str = "",
) -> list[Path]:
    """Write ``hu`` (Z, Y, X) as a CT series into ``out_dir``; returns the paths.

    ``pixel_spacing`` is (row, col) mm or one number; ``z_positions`` are the
    patient z (mm) of each slice (ImagePositionPatient[2], SliceLocation).
    ``origin_xy`` is the patient (x, y) of the first pixel's centre; default
    centres the image on the isocentre. ``padding_value`` (stored value) is
    written into pixels where ``padding_mask`` (Y, X) is True and declared as
    PixelPaddingValue. Stored values are ``round(HU - intercept)`` (slope 1),
    clipped to int16.
    """
    hu = np.asarray(hu)
    if hu.ndim == 2:
        hu = hu[None]
    if hu.ndim != 3 or hu.shape[0] == 0:
        raise DicomWriteError(f"expected a (Z, Y, X) volume, got shape {hu.shape}")
    if not np.all(np.isfinite(hu)):
        raise DicomWriteError("volume contains NaN or infinite values")
    nz, ny, nx = hu.shape
    z_positions = [float(z) for z in z_positions]
    if len(z_positions) != nz:
        raise DicomWriteError(f"{len(z_positions)} z positions for {nz} slices")
    ps = (float(pixel_spacing), float(pixel_spacing)) if np.isscalar(pixel_spacing) else tuple(float(p) for p in pixel_spacing)
    if len(ps) != 2 or min(ps) <= 0:
        raise DicomWriteError(f"invalid pixel spacing {pixel_spacing!r}")
    if slice_thickness is None:
        slice_thickness = abs(z_positions[1] - z_positions[0]) if nz > 1 else 1.0
    if origin_xy is None:
        origin_xy = (-(nx - 1) / 2 * ps[1], -(ny - 1) / 2 * ps[0])
    info = info or SeriesInfo()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    if derived:
        # Fresh identity: nothing of the source study may leak into an export.
        salt = ("derived", seed) if seed is not None else ("derived", uuid.uuid4().hex)
        study_uid = make_uid(salt, "study")
        series_uid = make_uid(salt, "series")
        frame_uid = make_uid(salt, "frame")
        patient_name = patient_id = patient_birth = patient_sex = ""
    else:
        study_uid = info.study_uid or make_uid(seed, info.patient_id, "study")
        series_uid = info.series_uid or make_uid(seed, study_uid, info.series_number, "series")
        frame_uid = info.frame_uid or make_uid(seed, study_uid, "frame")
        patient_name, patient_id = info.patient_name, info.patient_id
        patient_birth, patient_sex = info.patient_birth_date, info.patient_sex
    date, time = _date_time((seed, study_uid))

    ds = base_dataset(CTImageStorage, "CT")
    # Patient
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = patient_birth
    ds.PatientSex = patient_sex
    if not derived:
        ds.PatientIdentityRemoved = "YES"  # synthetic: nobody's data
        ds.DeidentificationMethod = "Synthetic phantom, no real patient"
    # General Study
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = date
    ds.StudyTime = time
    ds.ReferringPhysicianName = ""
    ds.StudyID = info.study_id
    ds.AccessionNumber = info.accession
    ds.StudyDescription = info.study_description
    # General Series
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(info.series_number)
    ds.SeriesDate = date
    ds.SeriesTime = time
    ds.SeriesDescription = info.series_description
    ds.BodyPartExamined = info.body_part
    ds.PatientPosition = "HFS"
    # Frame of Reference
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    # General Equipment
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "synthetic"
    ds.SoftwareVersions = IMPLEMENTATION_VERSION
    # General Image / CT Image
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if derived else ["ORIGINAL", "PRIMARY", "AXIAL"]
    if derived:
        ds.DerivationDescription = derivation_description or "Derived by napari-latentdirs"
        ds.BurnedInAnnotation = "NO"
    ds.AcquisitionNumber = 1
    ds.ContentDate = date
    ds.ContentTime = time
    ds.KVP = f"{info.kvp:g}"
    ds.ConvolutionKernel = info.convolution_kernel
    # Image Plane
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [f"{ps[0]:.6g}", f"{ps[1]:.6g}"]
    ds.SliceThickness = f"{float(slice_thickness):.6g}"
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ny
    ds.Columns = nx
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "-600" if not derived else "40"
    ds.WindowWidth = "1600" if not derived else "400"
    if padding_value is not None:
        ds.PixelPaddingValue = int(padding_value)
    for k, v in info.extra.items():
        setattr(ds, k, v)

    names = list(file_names) if file_names is not None else [f"{i + 1:06d}.dcm" for i in range(nz)]
    inums = list(instance_numbers) if instance_numbers is not None else list(range(1, nz + 1))
    if len(names) != nz or len(inums) != nz:
        raise DicomWriteError("file_names / instance_numbers must have one entry per slice")
    paths = []
    for i in range(nz):
        raw = np.rint(hu[i].astype(np.float64) - intercept)
        raw = np.clip(raw, -32768, 32767).astype(np.int16)
        if padding_mask is not None and padding_value is not None:
            raw[padding_mask] = np.int16(padding_value)
        z = z_positions[i]
        ds.SOPInstanceUID = make_uid(series_uid, i, "sop")
        ds.InstanceNumber = int(inums[i])
        ds.ImagePositionPatient = [f"{origin_xy[0]:.6g}", f"{origin_xy[1]:.6g}", f"{z:.6g}"]
        ds.SliceLocation = f"{z:.6g}"
        ds.SmallestImagePixelValue = int(raw.min())
        ds.LargestImagePixelValue = int(raw.max())
        ds.PixelData = raw.tobytes()
        p = out_dir / names[i]
        save(ds, p)
        paths.append(p)
    return paths
