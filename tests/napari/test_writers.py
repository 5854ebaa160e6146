"""The navigator's exports and the npe2 writers round-trip through their readers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_latentdirs.analysis import export as ex


@pytest.fixture
def navigator(make_napari_viewer, sync_workers, saved_model):
    viewer = make_napari_viewer()
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    nav.n_spin.setValue(2)
    nav.load(*saved_model)
    nav.frames_spin.setValue(7)
    return viewer, nav


def test_navigator_exports_round_trip(navigator, tmp_path):
    viewer, nav = navigator
    stack = np.array(nav.layer.data)[:, :, 0]  # (latent, shift, z=1, y, x): the z plane is for display
    nav.export(tmp_path / "s.tif", ".tif")
    t = ex.read_tiff(tmp_path / "s.tif")
    np.testing.assert_array_equal(t.data, stack)
    assert t.pixel_mm == pytest.approx((ex.DEFAULT_PIXEL_MM,) * 2)
    assert t.frame_step == pytest.approx(float(np.diff(nav.shifts()).mean()))
    nav.scale_spin.setValue(1)  # model pixels, as the reference below
    nav.export(tmp_path / "s.gif", ".gif")
    from napari_latentdirs.analysis.annotate import stamp_alpha

    # the frames of the sweep, each stamped with its shift α (issue 12, part 4)
    want = ex.ping_pong(stamp_alpha(ex.to_uint8(stack[0], "lung"), nav.shifts().tolist()))
    np.testing.assert_array_equal(ex.read_animation(tmp_path / "s.gif"), want)
    nav.export(tmp_path / "s.mp4", ".mp4")
    assert ex.read_animation(tmp_path / "s.mp4").shape[0] == 2 * 7 - 2
    nav.export(tmp_path / "g.png", ".png")
    tiles, layout = ex.read_png_grid(tmp_path / "g.png")
    assert tiles.shape[:2] == (3, 7) and layout["rows"][0] == "width"
    # the grid's centre column is G(z) for every direction, the same image in every row
    c = layout["shifts"].index(0.0)
    assert all(np.array_equal(tiles[0, c], tiles[r, c]) for r in range(3))
    np.testing.assert_array_equal(tiles[nav.direction_index(), c], ex.to_uint8(stack[0, 3], "lung"))
    copy = nav.copy_to_layer()
    np.testing.assert_array_equal(copy.data[:, :, 0], stack)


def test_tiff_writer_contribution(navigator, tmp_path):
    viewer, nav = navigator
    out = nav.layer.save(str(tmp_path / "stack.tif"), plugin="napari-latentdirs")
    assert out
    back = ex.read_tiff(tmp_path / "stack.tif")
    np.testing.assert_array_equal(back.data, np.asarray(nav.layer.data)[:, :, 0])


def test_dicom_writer_contribution_and_export(navigator, tmp_path):
    import SimpleITK as sitk

    from napari_latentdirs.dicom.dciodvfy import dciodvfy_errors
    from napari_latentdirs.dicom.series import read_series

    viewer, nav = navigator
    nav.export(tmp_path / "sweep.dcmdir", ".dcmdir")
    files = sorted((tmp_path / "sweep.dcmdir").glob("*.dcm"))
    assert len(files) == 7 and dciodvfy_errors(files[0]) == []
    vol = read_series(files)
    np.testing.assert_allclose(vol.hu, np.round(np.asarray(nav.layer.data)[0, :, 0]), atol=1.0)
    img = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "sweep.dcmdir")))
    assert sitk.GetArrayFromImage(img).shape == (7, 32, 32)
    out = nav.layer.save(str(tmp_path / "all.dcmdir"), plugin="napari-latentdirs")
    assert len(out) == 2 * 7 and (tmp_path / "all.dcmdir" / "latent_001").is_dir()
