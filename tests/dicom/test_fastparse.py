"""The fast native parser must agree with pydicom wherever it accepts a file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from napari_latentdirs.dicom.errors import DicomReadError
from napari_latentdirs.dicom.files import read_header
from napari_latentdirs.dicom.series import _read_values, read_series

sys.path.insert(0, str(Path(__file__).parent))
from dcmfactory import ct_dataset, random_raw, save, write_volume  # noqa: E402


def _plain(value):
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, float) or type(value).__name__ in ("DSfloat", "DSdecimal"):
        return float(value)
    if type(value).__name__ == "IS":
        return int(value)
    if isinstance(value, bytes):
        return value
    return value if value is None or isinstance(value, (int, float)) else str(value)


def assert_same_values(path: Path) -> bool:
    """True if the fast path took the file; then its values equal pydicom's."""
    fast, ds = _read_values(path, fast=True)
    if ds is not None:
        return False
    slow, _ = _read_values(path, fast=False)
    for kw in slow:
        a, b = _plain(fast.get(kw)), _plain(slow.get(kw))
        if kw in ("PixelPaddingValue", "PixelPaddingRangeLimit") and a is not None and b is not None:
            # Ambiguous US/SS: both are reinterpreted with PixelRepresentation downstream.
            a, b = int(a) & 0xFFFF, int(b) & 0xFFFF
        assert a == b, (path.name, kw, a, b)
    return True


def _sequence_dataset(tmp_path: Path, implicit: bool) -> Path:
    ds = ct_dataset(random_raw((8, 8)), padding=-2000)
    item = Dataset()
    item.CodeValue = "X"
    item.CodeMeaning = "nested"
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3"
    item.ReferencedImageSequence = Sequence([inner])
    ds.ProcedureCodeSequence = Sequence([item, Dataset()])  # written with undefined length
    p = tmp_path / ("implicit.dcm" if implicit else "explicit.dcm")
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(p, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    return p


@pytest.mark.parametrize("implicit", [False, True])
def test_fast_path_matches_pydicom_with_sequences(tmp_path, implicit):
    p = _sequence_dataset(tmp_path, implicit)
    raw = pydicom.dcmread(p)
    assert raw.ProcedureCodeSequence  # the sequence is there to be skipped
    assert assert_same_values(p)
    assert read_header(p)["SeriesInstanceUID"] == raw.SeriesInstanceUID


def test_fast_path_matches_pydicom_on_bundled_pydicom_files():
    """Every file bundled with pydicom (no downloads) that the fast path accepts."""
    folder = Path(get_testdata_file("CT_small.dcm")).parent
    taken = 0
    for p in sorted(folder.glob("*.dcm")):
        try:
            taken += assert_same_values(p)
        except DicomReadError:
            continue  # pydicom itself cannot read it strictly: nothing to compare
    assert taken >= 10  # 14 of the bundled files are native little endian with pixel data


def test_fast_and_pydicom_paths_give_identical_volumes(tmp_path, monkeypatch):
    raw = random_raw((4, 10, 12), seed=3)
    write_volume(tmp_path, raw, intercept=-1024, padding=-2000, iop=(1, 0, 0, 0, -1, 0))
    paths = sorted(tmp_path.glob("*.dcm"))
    fast = read_series(paths)
    from napari_latentdirs.dicom import series as series_mod

    monkeypatch.setattr(series_mod, "_read_values", lambda p: _read_values(p, fast=False))
    slow = read_series(paths)
    np.testing.assert_array_equal(fast.hu, slow.hu)
    assert fast.meta == slow.meta and fast.slices == slow.slices


def test_header_fast_path_matches_pydicom(tmp_path):
    p = save(ct_dataset(random_raw((8, 8)), patient_id="LIDC-IDRI-0042"), tmp_path / "a.dcm")
    h = read_header(p)
    ds = pydicom.dcmread(p, stop_before_pixels=True)
    assert h["PatientID"] == ds.PatientID and h["SeriesInstanceUID"] == ds.SeriesInstanceUID
    assert h["SOPClassUID"] == ds.SOPClassUID and list(h["ImageType"]) == list(ds.ImageType)
