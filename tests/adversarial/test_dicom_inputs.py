"""Adversarial DICOM inputs (issue 14, items 5, 8 and 15): absurd geometry, overflowing rescale,
corrupt files and non-Latin text. Each case gets a specific error naming the file, or the right
value; nothing reaches a volume, a cache or a napari viewer half-read."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from napari_latentdirs.dicom import errors as E
from napari_latentdirs.dicom.discover import discover_series
from napari_latentdirs.dicom.files import read_header
from napari_latentdirs.dicom.series import _read_values, load_ct, read_series

sys.path.insert(0, str(Path(__file__).parents[1] / "dicom"))
from dcmfactory import ct_dataset, random_raw, save, write_volume  # noqa: E402


def _volume(folder: Path, n: int = 3, **kw) -> list[Path]:
    return write_volume(folder, random_raw((n, 12, 10), seed=4, lo=-1000, hi=1500), **kw)


# -- item 5: physical range of spacing and positions ----------------------------------------------

ABSURD_SPACING = [1e308, 1e20, 1e-30, 0.001, 51.0]


@pytest.mark.parametrize("spacing", ABSURD_SPACING)
def test_absurd_pixel_spacing_is_refused_with_the_file_named(tmp_path, spacing):
    paths = _volume(tmp_path, spacing=(spacing, 0.7))
    with pytest.raises(E.ImplausibleGeometryError, match=r"img0000\.dcm: PixelSpacing .*0\.01.*50 mm"):
        read_series(paths)


@pytest.mark.parametrize("z", [1e20, -1e12, 2e4])
def test_absurd_slice_position_is_refused(tmp_path, z):
    paths = _volume(tmp_path, z_positions=[0.0, 2.0, z])
    with pytest.raises(E.ImplausibleGeometryError, match=r"img0002\.dcm: ImagePositionPatient"):
        read_series(paths)


def test_absurd_slice_spacing_from_positions_is_refused(tmp_path):
    paths = _volume(tmp_path, z_positions=[0.0, 600.0, 1200.0])
    with pytest.raises(E.ImplausibleGeometryError, match=r"slice spacing 600 mm .*0\.01-500 mm"):
        read_series(paths)


def test_plausible_extremes_are_still_read(tmp_path):
    # Tiny and 50 mm pixels, sparse slices 80 mm apart and table positions near -1.8 m still read.
    vol = read_series(_volume(tmp_path, spacing=(0.01, 50.0), z_positions=[-1800.0, -1720.0, -1640.0]))
    assert vol.spacing == pytest.approx((80.0, 0.01, 50.0))


@pytest.mark.parametrize("spacing", [1e308, 1e20, 1e-30])
def test_napari_reports_absurd_spacing_and_keeps_working(make_napari_viewer, tmp_path, spacing):
    """The error reaches the caller of viewer.open; later opens and closing the viewer still work."""
    bad, good = tmp_path / "bad", tmp_path / "good"
    _volume(bad, spacing=(spacing, spacing))
    truth = random_raw((3, 12, 10), seed=5)
    write_volume(good, truth, intercept=0)
    viewer = make_napari_viewer()
    with pytest.raises(Exception) as info:  # napari wraps the reader's error in its own ReaderPluginError
        viewer.open(str(bad), plugin="napari-latentdirs")
    chain = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(x, E.ImplausibleGeometryError) for x in chain), chain
    assert len(viewer.layers) == 0
    for _ in range(2):  # not poisoned: the next opens work and draw
        [layer] = viewer.open(str(good), plugin="napari-latentdirs")
        np.testing.assert_array_equal(layer.data, truth.astype(np.float32))
        viewer.reset_view()
    viewer.screenshot(canvas_only=True)
    viewer.layers.clear()


def test_folder_with_one_absurd_series_opens_the_good_one(make_napari_viewer, tmp_path, caplog):
    _volume(tmp_path / "bad", spacing=(1e20, 1e20), series_uid="1.2.3.4.66")
    truth = random_raw((3, 12, 10), seed=6)
    write_volume(tmp_path / "good", truth, intercept=0, series_uid="1.2.3.4.77")
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    before = len(notification_manager.records)
    layers = viewer.open(str(tmp_path), plugin="napari-latentdirs", stack=False)
    assert [ly.metadata["series_uid"] for ly in layers] == ["1.2.3.4.77"]
    assert "1.2.3.4.66" in caplog.text and "PixelSpacing" in caplog.text
    # The user sees why a series is missing, not only the log.
    shown = [n.message for n in notification_manager.records[before:]]
    assert any("1.2.3.4.66" in m and "PixelSpacing" in m and "img0000.dcm" in m for m in shown), shown


# -- item 8: rescale that overflows HU --------------------------------------------------------------

@pytest.mark.parametrize(("slope", "intercept"), [(1e300, -1024.0), (-1e300, 0.0), (1.0, 1e300), (1e36, 0.0)])
def test_rescale_giving_non_finite_hu_is_an_error_naming_the_file(tmp_path, slope, intercept):
    paths = _volume(tmp_path, slope=slope, intercept=intercept)
    with pytest.raises(E.InvalidAttributeError, match=r"img0000\.dcm: .*non-finite HU"):
        read_series(paths)


def test_large_but_finite_rescale_still_reads_exactly(tmp_path):
    raw = random_raw((2, 6, 6), seed=1, lo=-10, hi=10)
    write_volume(tmp_path, raw, slope=1e30, intercept=0.0)
    vol = read_series(sorted(tmp_path.glob("*.dcm")))
    assert np.all(np.isfinite(vol.hu))
    np.testing.assert_array_equal(vol.hu, (raw.astype(np.float64) * 1e30).astype(np.float32))


# -- item 15: corrupt files, character sets ---------------------------------------------------------

def _garble_dataset(path: Path, seed: int = 0) -> None:
    """Keep preamble and file meta, replace the data set by random bytes (a damaged copy)."""
    data = bytearray(path.read_bytes())
    meta_end = 132 + 12 + int(pydicom.dcmread(path).file_meta.FileMetaInformationGroupLength)
    data[meta_end:] = np.random.default_rng(seed).integers(0, 256, len(data) - meta_end, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_corrupt_file_is_reported_as_corrupt_with_its_name(tmp_path, seed):
    paths = _volume(tmp_path / "s", n=3)
    _garble_dataset(paths[1], seed)
    found = discover_series(tmp_path)
    [bad] = [s for s in found.skipped if s.paths == [paths[1]]]
    assert bad.what == str(paths[1])
    assert "no SeriesInstanceUID" not in bad.reason
    assert "corrupt" in bad.reason and paths[1].name in bad.reason
    # The other two files are still one series.
    assert [len(s.paths) for s in found.series] == [2]


def test_readable_file_without_series_uid_still_says_so(tmp_path):
    ds = ct_dataset(random_raw((8, 8)))
    del ds.SeriesInstanceUID
    p = save(ds, tmp_path / "a.dcm")
    [skip] = discover_series(tmp_path).skipped
    assert skip.reason == "no SeriesInstanceUID" and skip.what == str(p)


CHARSETS = [
    ("ISO_IR 192", "Müller^Jürgen", "Thorax ñ 日本 Ærø"),
    ("ISO_IR 100", "Müller^Jürgen", "Thorax ñ Ærø"),
    ("ISO_IR 144", "Иванов^Иван", "Грудная клетка"),
    ("ISO_IR 126", "Παπαδόπουλος", "Θώρακας"),
    ("GB18030", "王^小明", "胸部 CT"),
]


@pytest.mark.parametrize(("charset", "name", "desc"), CHARSETS)
def test_text_follows_specific_character_set(tmp_path, charset, name, desc):
    ds = ct_dataset(random_raw((8, 8)), patient_id=name.replace("^", " "), series_uid="1.2.3.9")
    ds.SpecificCharacterSet = charset
    ds.SeriesDescription = desc
    ds.Manufacturer = desc[:10]
    p = save(ds, tmp_path / "a.dcm")
    ref = pydicom.dcmread(p)
    assert str(ref.SeriesDescription) == desc  # pydicom decodes it right: our reader must agree
    h = read_header(p)
    assert h["PatientID"] == ref.PatientID and h["SeriesDescription"] == desc
    fast, taken = _read_values(p, fast=True)
    slow, _ = _read_values(p, fast=False)
    for kw in ("PatientID", "SeriesDescription", "Manufacturer"):
        assert fast[kw] == str(slow[kw]) == str(ref.get(kw)), kw
    [series] = discover_series(tmp_path).series
    assert series.patient_id == ref.PatientID and series.description == desc
    vol = read_series([p])
    assert vol.patient_id == ref.PatientID and vol.meta["series_description"] == desc


def test_code_extension_character_sets_fall_back_to_pydicom(tmp_path):
    # ISO 2022 escape sequences switch sets mid-value: only pydicom's decoder handles them.
    ds = ct_dataset(random_raw((8, 8)), series_uid="1.2.3.10")
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientID = "Yamada"
    ds.PatientName = "Yamada^Tarou=山田^太郎"
    ds.SeriesDescription = "山田"
    p = tmp_path / "a.dcm"
    save(ds, p)
    ref = pydicom.dcmread(p)
    vol = read_series([p])
    assert vol.meta["series_description"] == str(ref.SeriesDescription) == "山田"
    assert read_header(p)["SeriesDescription"] == "山田"


def test_load_ct_of_only_absurd_series_raises_the_specific_error(tmp_path):
    _volume(tmp_path, spacing=(1e20, 1e20))
    with pytest.raises(E.ImplausibleGeometryError, match="PixelSpacing"):
        load_ct(tmp_path)
