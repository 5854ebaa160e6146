"""Every export format round-trips: TIFF (with spacing), GIF/MP4 sweeps, PNG grid, derived DICOM."""

from __future__ import annotations

import numpy as np
import pytest

from napari_latentdirs.analysis import export as ex


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    base = rng.uniform(-1000, 1500, (2, 5, 32, 32)).astype(np.float32)
    return base


def test_tiff_round_trip_with_spacing(tmp_path, stack):
    p = ex.write_tiff(tmp_path / "s.tif", stack, pixel_mm=(0.7, 0.8), frame_step=0.5, metadata={"direction": 3})
    back = ex.read_tiff(p)
    np.testing.assert_array_equal(back.data, stack)
    assert back.pixel_mm == pytest.approx((0.7, 0.8)) and back.frame_step == 0.5
    assert back.metadata == {"direction": 3}


def test_gif_and_mp4_are_ping_pong_sweeps(tmp_path):
    # distinct frames (a GIF encoder merges identical neighbours)
    frames = np.linspace(-1300, 100, 6, dtype=np.float32)[:, None, None] * np.ones((6, 32, 32), np.float32)
    expected = ex.ping_pong(ex.to_uint8(frames, "lung"))
    assert len(expected) == 10 and np.array_equal(expected[6], expected[4])
    gif = ex.read_animation(ex.write_gif(tmp_path / "d.gif", frames, "lung"))
    np.testing.assert_array_equal(gif, expected)
    mp4 = ex.read_animation(ex.write_mp4(tmp_path / "d.mp4", frames, "lung", scale=2))
    assert mp4.shape == (10, 64, 64)
    assert np.abs(mp4[:, ::2, ::2].astype(int) - expected.astype(int)).max() <= 3  # lossy codec
    out = ex.write_sweeps(tmp_path / "sweeps", frames[None], ["z-position"], formats=("gif",))
    assert [p.name for p in out] == ["z-position_z00.gif"]


def test_png_grid_has_the_paper_layout(tmp_path, stack):
    shifts = [-4.0, -2.0, 0.0, 2.0, 4.0]
    p = ex.write_png_grid(tmp_path / "fig.png", stack, ["rotation", "size"], shifts, window="bone")
    tiles, layout = ex.read_png_grid(p)
    np.testing.assert_array_equal(tiles, ex.to_uint8(stack, "bone"))
    assert layout["rows"] == ["rotation", "size"] and layout["shifts"][2] == 0.0
    # rows go down, columns go right, the unshifted column is the centre one
    (y0, x0), (y1, x1) = layout["origins"][0][0], layout["origins"][1][2]
    assert y1 > y0 and x1 > x0


def test_dicom_series_round_trip(tmp_path, stack):
    import SimpleITK as sitk

    from napari_latentdirs.dicom.dciodvfy import dciodvfy_errors

    vol = np.round(stack[0])
    files = ex.write_dicom_series(tmp_path / "out.dcmdir", vol, pixel_mm=(0.7, 0.7), slice_mm=2.0)
    assert len(files) == 5
    for f in files:
        assert dciodvfy_errors(f) == []
    import pydicom

    ds = pydicom.dcmread(files[0])
    assert "DERIVED" in ds.ImageType and "SECONDARY" in ds.ImageType
    assert str(ds.PatientName) == "" and str(ds.PatientID) == "" and not ds.get("PatientBirthDate")
    assert float(ds.RescaleSlope) == 1.0 and "RescaleIntercept" in ds
    # every export gets its own identity
    again = ex.write_dicom_series(tmp_path / "again.dcmdir", vol)
    ds2 = pydicom.dcmread(again[0])
    assert ds2.StudyInstanceUID != ds.StudyInstanceUID and ds2.SeriesInstanceUID != ds.SeriesInstanceUID
    assert ds2.SOPInstanceUID != ds.SOPInstanceUID
    reader = sitk.ImageSeriesReader()
    img = sitk.ReadImage(reader.GetGDCMSeriesFileNames(str(tmp_path / "out.dcmdir")))
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), vol, atol=0.5)
    assert img.GetSpacing() == pytest.approx((0.7, 0.7, 2.0))
    from napari_latentdirs.dicom.series import read_series

    v = read_series(files)
    np.testing.assert_allclose(v.hu, vol, atol=0.5)
    assert tuple(v.spacing) == pytest.approx((2.0, 0.7, 0.7))
