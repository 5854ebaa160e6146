"""The DICOM reader contribution, through napari's own viewer.open."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_latentdirs._napari.reader import get_reader

sys.path.insert(0, str(Path(__file__).parents[1] / "dicom"))
from dcmfactory import random_raw, write_volume  # noqa: E402


@pytest.fixture
def series_dir(tmp_path):
    """Two series in one folder; the first stored upside down (IOP [1,0,0,0,-1,0]) with a gap."""
    truth = random_raw((5, 12, 10), seed=1, lo=-1000, hi=1500)
    truth[:, 0, :] = -2000  # padding row at the top (anterior) in the standard view
    stored = np.ascontiguousarray(truth[:, ::-1, :])
    write_volume(tmp_path, stored, z_positions=[0, 2, 4, 8, 10], iop=(1, 0, 0, 0, -1, 0), intercept=-1024, padding=-2000, spacing=(0.6, 0.8), names=[f"a{k}.dcm" for k in range(5)], series_uid="1.2.3.4.1")
    other = random_raw((3, 12, 10), seed=2)
    write_volume(tmp_path, other, z0=0, dz=1.5, intercept=0, series_uid="1.2.3.4.2", names=[f"b{k}.dcm" for k in range(3)])
    return tmp_path, truth, other


def test_viewer_opens_one_hu_layer_per_series(make_napari_viewer, series_dir):
    folder, truth, other = series_dir
    viewer = make_napari_viewer()
    layers = viewer.open(str(folder), plugin="napari-latentdirs", stack=False)
    assert len(layers) == 2
    by_uid = {ly.metadata["series_uid"]: ly for ly in layers}
    first, second = by_uid["1.2.3.4.1"], by_uid["1.2.3.4.2"]
    # HU exactly (raw + intercept), anterior row at the top, padding -2000 raw -> -3024 HU.
    np.testing.assert_array_equal(first.data, truth.astype(np.float32) - 1024)
    assert np.all(first.data[:, 0, :] == -3024)
    np.testing.assert_allclose(first.scale, (2.0, 0.6, 0.8))
    np.testing.assert_allclose(second.scale, (1.5, 0.7, 0.8))
    np.testing.assert_array_equal(second.data, other.astype(np.float32))
    # Lung window W1500 / L-600.
    assert tuple(first.contrast_limits) == (-1350.0, 150.0)
    assert first.metadata["problems"] == ["gap: 4 mm between z=4.00 and z=8.00 mm (~1 slice(s) missing; nominal spacing 2 mm)"]
    assert first.metadata["reorientation"]["flip_y"] is True
    assert [s["z_mm"] for s in first.metadata["slices"]] == [0, 2, 4, 8, 10]


def test_single_file_opens_as_one_slice(make_napari_viewer, series_dir):
    folder, truth, _ = series_dir
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(folder / "a2.dcm"), plugin="napari-latentdirs")
    assert layer.data.shape == (1, 12, 10)
    np.testing.assert_array_equal(layer.data[0], truth[2].astype(np.float32) - 1024)


def test_reader_declines_folders_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader([str(tmp_path)]) is None


def test_series_problems_are_a_napari_notification(make_napari_viewer, series_dir):
    from napari.utils.notifications import notification_manager

    folder, _, _ = series_dir
    viewer = make_napari_viewer()
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        viewer.open(str(folder), plugin="napari-latentdirs", stack=False)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    warnings = [str(n.message) for n in seen if "gap: 4 mm" in str(n.message)]
    assert len(warnings) == 1 and warnings[0].startswith("DICOM series ")  # only the series with a gap
