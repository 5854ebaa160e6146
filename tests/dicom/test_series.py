"""Round trips of hand-written CT series: HU, padding, ordering, orientation, spacing, problems."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_rescale
from pydicom.uid import JPEG2000Lossless, RLELossless

from napari_latentdirs.dicom.series import load_ct, read_series

sys.path.insert(0, str(Path(__file__).parent))
from dcmfactory import ct_dataset, random_raw, save, write_volume  # noqa: E402


def sitk_read(folder: Path, series_uid: str | None = None) -> sitk.Image:
    """SimpleITK's reading, reoriented to LPS (= our axial radiological view, z ascending)."""
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid or "")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return sitk.DICOMOrient(reader.Execute(), "LPS")


def assert_matches_sitk(vol, folder: Path) -> None:
    img = sitk_read(folder)
    ref = sitk.GetArrayFromImage(img).astype(np.float32)
    np.testing.assert_array_equal(vol.hu, ref)
    np.testing.assert_allclose(vol.spacing, img.GetSpacing()[::-1], rtol=0, atol=1e-4)
    np.testing.assert_allclose(vol.origin, img.GetOrigin()[::-1], rtol=0, atol=1e-3)


def fov_raw(shape, seed, padding):
    """HU-like stored values inside a circular field of view, ``padding`` outside."""
    raw = random_raw(shape, seed=seed, lo=-1000, hi=1500)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    outside = (yy - shape[1] / 2 + 0.5) ** 2 + (xx - shape[2] / 2 + 0.5) ** 2 > (min(shape[1:]) / 2) ** 2
    raw[:, outside] = padding
    return raw, outside


@pytest.mark.parametrize("intercept, expected_pad_hu", [(0.0, -2000.0), (-1024.0, -3024.0)])
def test_intercept_and_padding_exact(tmp_path, intercept, expected_pad_hu):
    raw, outside = fov_raw((4, 12, 10), seed=1, padding=-2000)
    write_volume(tmp_path, raw, intercept=intercept, padding=-2000)
    vol = read_series(sorted(tmp_path.glob("*.dcm")))
    np.testing.assert_array_equal(vol.hu, raw.astype(np.float64) + intercept)
    assert np.all(vol.hu[:, outside] == expected_pad_hu)
    assert vol.meta["padding_hu"] == [expected_pad_hu]
    assert vol.meta["padded_fraction"] == pytest.approx(outside.mean())
    assert vol.hu.dtype == np.float32 and vol.problems == []
    assert_matches_sitk(vol, tmp_path)


def test_unsigned_storage_with_intercept(tmp_path):
    raw = random_raw((3, 8, 8), seed=2, lo=0, hi=4096)
    write_volume(tmp_path, raw, intercept=-1024.0, signed=False)
    vol = read_series(sorted(tmp_path.glob("*.dcm")))
    np.testing.assert_array_equal(vol.hu, raw.astype(np.float64) - 1024)
    assert_matches_sitk(vol, tmp_path)


def test_rescale_applied_per_slice(tmp_path):
    raw = random_raw((3, 6, 6), seed=3, lo=0, hi=3000)
    params = [(1.0, -1024.0), (2.0, -2048.0), (0.5, 10.0)]
    paths = [
        save(ct_dataset(raw[k], ipp=(0, 0, 3.0 * k), slope=s, intercept=i, instance=k + 1, signed=False), tmp_path / f"{k}.dcm")
        for k, (s, i) in enumerate(params)
    ]
    vol = read_series(paths)
    for k, (s, i) in enumerate(params):
        np.testing.assert_array_equal(vol.hu[k], (raw[k].astype(np.float64) * s + i).astype(np.float32))
    assert vol.meta["rescale_slopes"] == [0.5, 1.0, 2.0]


def test_sorted_by_position_not_name_instance_or_text(tmp_path):
    """Positions crossing zero (text order differs), shuffled files, names and InstanceNumbers."""
    raw = random_raw((7, 5, 6), seed=4)
    zs = [-12.5, -10.0, -7.5, -5.0, -2.5, 0.0, 2.5]
    order = [5, 0, 6, 2, 4, 1, 3]
    names = [f"{n}.dcm" for n in ["b", "z", "a", "10", "9", "c", "1"]]
    paths = write_volume(tmp_path, raw, z_positions=zs, order=order, names=names, intercept=0)
    # Shuffle InstanceNumber against position too.
    for p, inst in zip(paths, [3, 1, 7, 2, 6, 5, 4]):
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = inst
        ds.save_as(p)
    vol = read_series(paths)
    np.testing.assert_array_equal(vol.hu, raw.astype(np.float32))
    np.testing.assert_allclose(vol.z_mm, zs)
    assert vol.spacing[0] == pytest.approx(2.5)  # SliceThickness says 99: ignored
    assert [s.index for s in vol.slices] == list(range(7))
    np.testing.assert_allclose([s.rel_z for s in vol.slices], np.linspace(0, 1, 7))
    assert {s.patient_id for s in vol.slices} == {"P1"}
    assert_matches_sitk(vol, tmp_path)


@pytest.mark.parametrize(
    "iop, stored",
    [
        ((1, 0, 0, 0, 1, 0), lambda t: t),
        ((1, 0, 0, 0, -1, 0), lambda t: t[:, ::-1, :]),  # anterior at the bottom, normal points inferior
        ((-1, 0, 0, 0, 1, 0), lambda t: t[:, :, ::-1]),  # patient left on the image's left
        ((-1, 0, 0, 0, -1, 0), lambda t: t[:, ::-1, ::-1]),  # prone-like, both flipped
        ((0, 1, 0, 1, 0, 0), lambda t: np.swapaxes(t, 1, 2)),  # rows run posterior: transposed
    ],
)
def test_orientation_normalised_to_radiological_view(tmp_path, iop, stored):
    """``truth`` is the image in the standard view; the file stores it in another orientation."""
    truth = random_raw((3, 6, 9), seed=5)
    data = np.ascontiguousarray(stored(truth))
    normal = np.cross(iop[:3], iop[3:])
    # Slice k must sit at patient z = 2k whatever the normal's sign.
    write_volume(tmp_path, data, z0=0.0, dz=2.0, iop=iop, intercept=0, spacing=(0.5, 0.75))
    vol = read_series(sorted(tmp_path.glob("*.dcm")))
    np.testing.assert_array_equal(vol.hu, truth.astype(np.float32))
    transposed = iop[0] == 0
    assert vol.spacing == pytest.approx((2.0, 0.75, 0.5) if transposed else (2.0, 0.5, 0.75))
    assert vol.meta["reorientation"]["transpose"] is transposed
    assert np.all(np.diff(vol.z_mm) > 0) and normal[2] in (1, -1)
    assert_matches_sitk(vol, tmp_path)


def test_duplicates_keep_lower_instance_and_are_reported(tmp_path):
    raw = random_raw((4, 5, 5), seed=6)
    write_volume(tmp_path, raw, z0=0, dz=1.25, intercept=0)
    dup = ct_dataset(raw[2] + 7, ipp=(-50.0, -60.0, 2.5), instance=40, intercept=0)
    save(dup, tmp_path / "zz_dup.dcm")
    vol = read_series(sorted(tmp_path.glob("*.dcm")))
    assert vol.hu.shape[0] == 4
    np.testing.assert_array_equal(vol.hu[2], raw[2].astype(np.float32))  # InstanceNumber 3 beats 40
    assert len(vol.problems) == 1
    assert vol.problems[0].startswith("duplicate position z=2.50 mm: kept InstanceNumber 3")
    assert "dropped InstanceNumber 40 (zz_dup.dcm)" in vol.problems[0]


def test_gap_reported_where_simpleitk_is_silent(tmp_path):
    raw = random_raw((6, 5, 5), seed=7)
    zs = [0.0, 2.0, 4.0, 10.0, 12.0, 14.0]
    write_volume(tmp_path, raw, z_positions=zs, intercept=0)
    vol = read_series(sorted(tmp_path.glob("*.dcm")))
    assert vol.spacing[0] == pytest.approx(2.0)
    assert vol.problems == ["gap: 6 mm between z=4.00 and z=10.00 mm (~2 slice(s) missing; nominal spacing 2 mm)"]
    np.testing.assert_allclose(vol.z_mm, zs)
    # SimpleITK reads the same files without any complaint and without the gap in its geometry.
    img = sitk_read(tmp_path)
    assert img.GetSize()[2] == 6
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img).astype(np.float32), vol.hu)


def test_non_uniform_spacing_reported(tmp_path):
    raw = random_raw((5, 4, 4), seed=8)
    write_volume(tmp_path, raw, z_positions=[0.0, 1.0, 2.0, 3.3, 4.3], intercept=0)
    vol = read_series(sorted(tmp_path.glob("*.dcm")))
    assert vol.problems == ["non-uniform spacing: steps from 1 to 1.3 mm (nominal 1 mm)"]


def test_single_slice(tmp_path):
    raw = random_raw((1, 6, 6), seed=9)
    (path,) = write_volume(tmp_path, raw, intercept=-1024)
    [vol] = load_ct(path)
    assert vol.hu.shape == (1, 6, 6)
    assert vol.problems == ["single slice: z spacing is undefined (1.0 mm used for display)"]
    assert vol.slices[0].rel_z == 0.0


def test_pydicom_ct_small_matches_apply_rescale():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    expected = apply_rescale(ds.pixel_array, ds).astype(np.float32)
    vol = read_series([path])
    np.testing.assert_array_equal(vol.hu[0], expected)
    assert vol.spacing[1:] == pytest.approx([float(v) for v in ds.PixelSpacing])
    assert vol.patient_id == ds.PatientID
    assert vol.hu.min() > -1100 and vol.hu.max() < 3500  # plausible HU, not raw offsets


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_series_read_identically(tmp_path, syntax):
    raw, _ = fov_raw((3, 64, 64), seed=10, padding=-2000)  # J2K needs >= 64 px for its levels
    write_volume(tmp_path / "plain", raw, intercept=-1024, padding=-2000)
    for p in sorted((tmp_path / "plain").glob("*.dcm")):
        ds = pydicom.dcmread(p)
        ds.compress(syntax)
        save(ds, tmp_path / "comp" / p.name)
    plain = read_series(sorted((tmp_path / "plain").glob("*.dcm")))
    comp = read_series(sorted((tmp_path / "comp").glob("*.dcm")))
    np.testing.assert_array_equal(plain.hu, comp.hu)
    assert comp.meta["transfer_syntax"] == syntax
