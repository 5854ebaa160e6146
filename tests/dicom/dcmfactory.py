"""Small CT series written with plain pydicom for the reader tests.

Deliberately independent of the project's own writer (dicom/write.py) so the
reader is tested against files built from the standard directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = "1.2.826.0.1.3680043.10.1234."


def ct_dataset(
    raw: np.ndarray,
    *,
    ipp=(0.0, 0.0, 0.0),
    iop=(1, 0, 0, 0, 1, 0),
    spacing=(0.7, 0.8),
    slope=1.0,
    intercept=-1024.0,
    signed=True,
    series_uid="1.2.3.4.1",
    study_uid="1.2.3.4",
    patient_id="P1",
    instance=1,
    padding=None,
    modality="CT",
    sop_class=CTImageStorage,
) -> Dataset:
    """One single-frame CT image data set with stored values ``raw`` (rows, cols)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    sop_uid = generate_uid(prefix=ROOT)
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = f"Test^{patient_id}"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDescription = "test series"
    ds.InstanceNumber = instance
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [float(v) for v in ipp]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.SliceThickness = 99.0  # deliberately wrong: spacing must come from positions
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.RescaleType = "HU"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = raw.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    if padding is not None:
        ds.PixelPaddingValue = int(padding)
    arr = raw.astype(np.int16 if signed else np.uint16)
    ds.PixelData = arr.tobytes()
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_volume(
    folder: Path,
    raw: np.ndarray,
    *,
    z0: float = -100.0,
    dz: float = 2.5,
    z_positions=None,
    order=None,
    names=None,
    iop=(1, 0, 0, 0, 1, 0),
    origin_xy=(-50.0, -60.0),
    **kw,
) -> list[Path]:
    """Write ``raw`` (Z, rows, cols), slice k at z0 + k*dz, in file order ``order``.

    InstanceNumber follows slice index. Returns paths in writing order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n = raw.shape[0]
    zs = [z0 + k * dz for k in range(n)] if z_positions is None else list(z_positions)
    order = list(range(n)) if order is None else list(order)
    paths = []
    for w, k in enumerate(order):
        name = names[w] if names else f"img{w:04d}.dcm"
        ds = ct_dataset(raw[k], ipp=(origin_xy[0], origin_xy[1], zs[k]), iop=iop, instance=k + 1, **kw)
        paths.append(save(ds, folder / name))
    return paths


def random_raw(shape, seed=0, lo=-1000, hi=2000) -> np.ndarray:
    """Stored values with HU-like range (intercept 0)."""
    return np.random.default_rng(seed).integers(lo, hi, size=shape).astype(np.int16)
