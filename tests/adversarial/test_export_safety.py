"""Exports leak nothing and destroy nothing (issue 14, items 3 and 4).

Item 3: a source CT carries a unique marker in every identifying or free-text attribute (names,
IDs, dates, descriptions, institution, comments) and in its UIDs. It is opened in a real napari
viewer and saved through EVERY exporter: the npe2 DICOM and TIFF writers (3-D, 2-D and 4-D
layers named and tagged like the CT) and the latent navigator's five formats after encoding a
slice of it. No marker may occur in any byte of any file written.

Item 4: a folder export never overwrites, mixes with, or writes through what is already there,
and a series appears complete or not at all (also under a real SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from napari_latentdirs.analysis import export as ex
from napari_latentdirs.dicom.dciodvfy import dciodvfy_errors
from napari_latentdirs.dicom.series import read_series

sys.path.insert(0, str(Path(__file__).parents[1] / "dicom"))
from dcmfactory import ct_dataset, random_raw, save  # noqa: E402

# Every text attribute a CT file commonly carries that can identify a person or a visit.
MARKED_TEXT = [
    "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers", "EthnicGroup", "Occupation",
    "AdditionalPatientHistory", "PatientComments", "MilitaryRank", "BranchOfService", "MedicalRecordLocator",
    "StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianName", "PerformingPhysicianName",
    "OperatorsName", "NameOfPhysiciansReadingStudy", "RequestingPhysician", "StationName", "AccessionNumber",
    "StudyID", "DeviceSerialNumber", "Manufacturer", "ManufacturerModelName", "RequestedProcedureDescription",
    "PerformedProcedureStepDescription", "AdmittingDiagnosesDescription", "DerivationDescription",
]
SECRET_DATE = "19130517"
SECRET_TIME = "231719"


def _marker(kw: str) -> str:
    return f"ZQ{kw.upper()[:12]}Q"


def _markers() -> list[str]:
    return [_marker(kw) for kw in MARKED_TEXT] + [SECRET_DATE]


@pytest.fixture
def marked_series(tmp_path):
    """Three CT slices with markers everywhere; returns (folder, strings that must not leak)."""
    folder = tmp_path / "source"
    uids = {"study": "1.2.826.0.1.3680043.10.1234.77001", "series": "1.2.826.0.1.3680043.10.1234.77002",
            "frame": "1.2.826.0.1.3680043.10.1234.77003"}
    sop_uids = []
    raw = random_raw((3, 32, 32), seed=9, lo=-1000, hi=1200)
    for k in range(3):
        ds = ct_dataset(raw[k], ipp=(-20.0, -20.0, 2.5 * k), spacing=(1.25, 1.25), instance=k + 1,
                        series_uid=uids["series"], study_uid=uids["study"], patient_id=_marker("PatientID"))
        for kw in MARKED_TEXT:
            setattr(ds, kw, _marker(kw))
        ds.FrameOfReferenceUID = uids["frame"]
        for kw in ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            setattr(ds, kw, SECRET_DATE)
        for kw in ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"):
            setattr(ds, kw, SECRET_TIME)
        ds.PatientAge = "077Y"
        sop_uids.append(ds.SOPInstanceUID)
        save(ds, folder / f"{k}.dcm")
    return folder, _markers() + list(uids.values()) + sop_uids


def _assert_clean(files: list[Path], secrets: list[str]) -> None:
    assert files, "nothing was written"
    for f in files:
        data = f.read_bytes()
        low = data.lower()
        for s in secrets:
            for enc in (s.encode("ascii"), s.encode("utf-16-le")):
                assert enc.lower() not in low, f"{f.name} contains {s!r}"


def _check_dicom(files: list[Path], secrets: list[str]) -> None:
    _assert_clean(files, secrets)
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        assert "DERIVED" in ds.ImageType
        assert str(ds.PatientName) == "" and str(ds.PatientID) == "" and not ds.get("PatientBirthDate")
        if i in (0, len(files) - 1):
            assert dciodvfy_errors(f) == [], f


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_every_exporter_drops_every_identifier(make_napari_viewer, marked_series, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTDIRS_SYNC_WORKERS", "1")
    src, secrets = marked_series
    viewer = make_napari_viewer()
    [ct] = viewer.open(str(src), plugin="napari-latentdirs")
    assert _marker("PatientID") in ct.name  # the viewer shows who it is; exports must not
    out = tmp_path / "out"

    # npe2 writers on the CT layer itself.
    files = ct.save(str(out / "ct.dcmdir"), plugin="napari-latentdirs")
    dcm = [Path(f) for f in files]
    assert len(dcm) == 3
    _check_dicom(dcm, secrets)
    np.testing.assert_allclose(read_series(dcm).hu, np.asarray(ct.data), atol=0.5)
    ct.save(str(out / "ct.tif"), plugin="napari-latentdirs")
    _assert_clean([out / "ct.tif"], secrets)

    # Layers derived in the viewer that kept the CT's name and metadata: 2-D and 4-D.
    slice2d = viewer.add_image(np.asarray(ct.data)[1], name=ct.name, metadata=dict(ct.metadata), scale=ct.scale[1:])
    stack4d = viewer.add_image(np.stack([np.asarray(ct.data)] * 2), name=ct.name + " stack", metadata=dict(ct.metadata))
    for layer, stem in ((slice2d, "slice"), (stack4d, "stack")):
        written = [Path(f) for f in layer.save(str(out / f"{stem}.dcmdir"), plugin="napari-latentdirs")]
        _check_dicom(written, secrets)
        layer.save(str(out / f"{stem}.tif"), plugin="napari-latentdirs")
        _assert_clean([out / f"{stem}.tif"], secrets)
    assert (out / "stack.dcmdir" / "latent_001").is_dir()

    # The navigator's five formats, its latents encoded from a slice of the marked CT.
    from napari_latentdirs.directions.set import DirectionSet
    from napari_latentdirs.models.vae import VAE, vae_config

    torch.manual_seed(0)
    vae = VAE(vae_config("tiny", image_size=32)).eval().requires_grad_(False)
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    nav.set_model(vae, DirectionSet(np.eye(vae.latent_dim, 2, dtype=np.float32), "unit", labels=["width", "size"]), "vae")
    nav.ct_combo.setCurrentText(ct.name)
    nav.source_combo.setCurrentIndex(1)
    nav.set_latents_from_source()
    assert nav.inversion_error is not None  # the latents really came from the marked CT
    nav_out = tmp_path / "nav"
    for kind in (".tif", ".gif", ".mp4", ".png"):
        nav.export(nav_out / f"d{kind}", kind)
    nav.export(nav_out / "d.dcmdir", ".dcmdir")
    written = _all_files(nav_out)
    assert {p.suffix for p in written} == {".tif", ".gif", ".mp4", ".png", ".json", ".dcm"}
    _assert_clean(written, secrets)
    _check_dicom(sorted((nav_out / "d.dcmdir").glob("*.dcm")), secrets)
    nav.shutdown()

    # Nothing anywhere under the export folders, temporary files included.
    _assert_clean(_all_files(out), secrets)


# -- item 4: folders ------------------------------------------------------------------------------

VOL = np.round(np.random.default_rng(0).uniform(-1000, 1000, (4, 16, 16))).astype(np.float32)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_export_refuses_a_folder_holding_a_series(tmp_path):
    target = tmp_path / "exp.dcmdir"
    ex.write_dicom_series(target, VOL, pixel_mm=(0.7, 0.7))
    before = _snapshot(target)
    with pytest.raises(ex.ExportTargetError, match=r"exp\.dcmdir is not empty \(4 entries: 000001\.dcm.*new or empty folder"):
        ex.write_dicom_series(target, VOL[:2] + 5, pixel_mm=(0.7, 0.7))
    assert _snapshot(target) == before  # nothing overwritten, no second series mixed in
    assert {pydicom.dcmread(p).SeriesInstanceUID for p in target.iterdir()}.__len__() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.dcmdir"]  # no temporary left


def test_export_into_an_empty_or_new_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    files = ex.write_dicom_series(tmp_path / "empty", VOL)
    assert [f.parent for f in files] == [tmp_path / "empty"] * 4 and all(f.is_file() for f in files)
    assert all(dciodvfy_errors(f) == [] for f in (files[0], files[-1]))
    files = ex.write_dicom_series(tmp_path / "a" / "b" / "new", VOL)
    assert len(read_series(files).hu) == 4
    mode = (tmp_path / "a" / "b" / "new").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask  # not the 0700 of a private temp folder


def test_export_does_not_write_through_symlinks(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (victim / "000001.dcm").write_bytes(b"original")
    # A link named like the target folder, and a folder holding a link named like an output file.
    os.symlink(victim, tmp_path / "link.dcmdir")
    trap = tmp_path / "trap.dcmdir"
    trap.mkdir()
    os.symlink(victim / "000001.dcm", trap / "000001.dcm")
    for target in (tmp_path / "link.dcmdir", trap):
        with pytest.raises(ex.ExportTargetError):
            ex.write_dicom_series(target, VOL)
    assert (victim / "000001.dcm").read_bytes() == b"original" and (victim / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("suffix", [".tif", ".gif", ".mp4", ".png"])
def test_file_exports_replace_a_symlink_instead_of_following_it(tmp_path, suffix):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    out = tmp_path / f"d{suffix}"
    os.symlink(victim, out)
    frames = VOL[:3]
    if suffix == ".tif":
        ex.write_tiff(out, frames)
    elif suffix == ".gif":
        ex.write_gif(out, frames)
    elif suffix == ".mp4":
        # Also plant links at every name the encoder's temporary file could once have had.
        for pid in {os.getpid()}:
            os.symlink(victim, tmp_path / f".d.{pid}.partial.mp4")
        ex.write_mp4(out, frames)
    else:
        ex.write_png_grid(out, frames[None], ["x"], [-1.0, 0.0, 1.0])
    assert victim.read_bytes() == b"precious"
    assert out.is_file() and not out.is_symlink() and out.stat().st_size > 100


def test_failed_export_leaves_no_folder(tmp_path):
    # The fourth file cannot be created: the first three were written, then the error.
    with pytest.raises(OSError):
        ex.write_dicom_series(tmp_path / "t.dcmdir", VOL, file_names=["1.dcm", "2.dcm", "3.dcm", "missing/4.dcm"])
    assert list(tmp_path.iterdir()) == []


def test_sigkill_during_export_leaves_no_half_series(tmp_path):
    """A real SIGKILL while the files are being written: the target never appears half-full."""
    target = tmp_path / "big.dcmdir"
    script = textwrap.dedent(f"""
        import numpy as np
        from napari_latentdirs.analysis import export as ex
        vol = np.zeros((400, 256, 256), np.float32)
        ex.write_dicom_series({str(target)!r}, vol)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 120
    partial: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in tmp_path.glob(".big.dcmdir.*.partial") if len(list(p.iterdir())) >= 5]
        if partial:
            break
        time.sleep(0.02)
    assert partial, "the export never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    # What a kill leaves: one hidden partial folder, removed by the next export to that name.
    files = ex.write_dicom_series(target, VOL)
    assert len(files) == 4 and not list(tmp_path.glob(".big.dcmdir.*.partial"))


def test_sweeps_go_into_a_new_folder(tmp_path):
    frames = np.linspace(-1300, 100, 4, dtype=np.float32)[:, None, None] * np.ones((4, 16, 16), np.float32)
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "z-position_z00.gif").write_bytes(b"mine")
    with pytest.raises(ex.ExportTargetError):
        ex.write_sweeps(tmp_path / "sw", frames[None], ["z-position"], formats=("gif",))
    assert (tmp_path / "sw" / "z-position_z00.gif").read_bytes() == b"mine"
    out = ex.write_sweeps(tmp_path / "sw2", frames[None], ["z-position"], formats=("gif",))
    assert out == [tmp_path / "sw2" / "z-position_z00.gif"] and out[0].stat().st_size > 100


def test_ct_writer_replaces_a_symlink_instead_of_following_it(tmp_path):
    """The generic CT writer (phantom trees, exports) writes every file by temp file + rename."""
    from napari_latentdirs.dicom.write import write_ct_series

    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    os.symlink(victim, tmp_path / "000001.dcm")
    paths = write_ct_series(tmp_path, VOL[:2], 0.8, [0.0, 2.0])
    assert victim.read_bytes() == b"precious"
    assert not paths[0].is_symlink() and dciodvfy_errors(paths[0]) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000001.dcm", "000002.dcm", "victim.bin"]
