"""The generic CT writer: dciodvfy-clean, deterministic, exact round trip."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from napari_latentdirs.dicom.dciodvfy import dciodvfy_errors
from napari_latentdirs.dicom.write import DicomWriteError, SeriesInfo, write_ct_series


def _volume(seed=0, shape=(4, 40, 48)):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1100, 2500, shape).astype(np.float32)


@pytest.mark.parametrize("derived", [False, True])
def test_writer_output_passes_dciodvfy(tmp_path, derived):
    paths = write_ct_series(tmp_path, _volume(), (0.7, 0.8), [10.0, 8.75, 7.5, 6.25], info=SeriesInfo(patient_id="P1"), seed=3, derived=derived)
    for p in (paths[0], paths[-1]):
        assert dciodvfy_errors(p) == []


def test_required_attributes(tmp_path):
    paths = write_ct_series(tmp_path, _volume(), 0.7, [0.0, -1.25, -2.5, -3.75], seed=1, slice_thickness=1.25)
    ds = pydicom.dcmread(paths[1])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert str(getattr(ds, kw)).startswith("2.25.")
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert float(ds.ImagePositionPatient[2]) == pytest.approx(-1.25)
    assert float(ds.SliceLocation) == pytest.approx(-1.25)
    assert float(ds.SliceThickness) == pytest.approx(1.25)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.7, 0.7])
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 1
    assert len({pydicom.dcmread(p).SOPInstanceUID for p in paths}) == len(paths)


def test_same_seed_same_bytes(tmp_path):
    hu = _volume()
    a = write_ct_series(tmp_path / "a", hu, 0.7, [0, 1, 2, 3], seed=9)
    b = write_ct_series(tmp_path / "b", hu, 0.7, [0, 1, 2, 3], seed=9)
    c = write_ct_series(tmp_path / "c", hu, 0.7, [0, 1, 2, 3], seed=10)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != c[0].read_bytes()


def test_round_trip_pydicom_and_simpleitk(tmp_path):
    hu = _volume(2)
    z = [5.0, 2.5, 0.0, -2.5]
    paths = write_ct_series(tmp_path, hu, (0.6, 0.9), z, seed=0)
    back = np.stack([pydicom.dcmread(p).pixel_array * 1.0 - 1024.0 for p in paths])
    assert np.abs(back - hu).max() <= 0.5
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(tmp_path)))
    img = r.Execute()
    arr = sitk.GetArrayFromImage(img)  # sorted by position: ascending z
    assert np.abs(arr[::-1] - hu).max() <= 0.5
    assert img.GetSpacing() == pytest.approx((0.9, 0.6, 2.5))


def test_round_trip_project_reader(tmp_path):
    series = pytest.importorskip("napari_latentdirs.dicom.series")
    hu = _volume(4)
    z = [5.0, 2.5, 0.0, -2.5]
    paths = write_ct_series(tmp_path, hu, (0.6, 0.9), z, seed=0)
    vol = series.read_series(paths)
    order = np.argsort([s.z_mm for s in vol.slices]) if vol.slices else None
    zs = np.array([s.z_mm for s in vol.slices])
    expected = hu[[z.index(float(v)) for v in zs]]
    assert np.abs(vol.hu - expected).max() <= 0.5
    assert vol.spacing == pytest.approx((2.5, 0.6, 0.9))
    assert order is not None


def test_derived_mode_has_new_uids_and_no_patient_identity(tmp_path):
    hu = _volume()
    info = SeriesInfo(patient_id="SECRET-ID", patient_name="Doe^Jane", study_uid="1.2.3.4", series_uid="1.2.3.4.5")
    paths = write_ct_series(tmp_path, hu, 0.7, [0, 1, 2, 3], info=info, seed=1, derived=True)
    ds = pydicom.dcmread(paths[0])
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert ds.StudyInstanceUID != "1.2.3.4" and ds.SeriesInstanceUID != "1.2.3.4.5"
    assert str(ds.PatientName) == "" and ds.PatientID == ""
    raw = b"".join(p.read_bytes() for p in paths)
    assert b"SECRET-ID" not in raw and b"Doe" not in raw


def test_bad_input_raises(tmp_path):
    with pytest.raises(DicomWriteError):
        write_ct_series(tmp_path, np.zeros((2, 4, 4)), 0.7, [0.0])
    with pytest.raises(DicomWriteError):
        write_ct_series(tmp_path, np.full((1, 4, 4), np.nan), 0.7, [0.0])
    with pytest.raises(DicomWriteError):
        write_ct_series(tmp_path, np.zeros((1, 4, 4)), -1.0, [0.0])
