"""Phantom DICOM trees: layout, determinism, ground truth, validity, messy pitfalls."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from napari_latentdirs.dicom.dciodvfy import dciodvfy_errors
from napari_latentdirs.phantom import write_phantom_tree
from napari_latentdirs.phantom.anatomy import fov_mask
from napari_latentdirs.phantom.tree import PITFALLS, plan_patients
from napari_latentdirs.phantom.volume import render_volume, scan_geometry

TINY = {"matrix": 96, "n_slices": 8, "workers": 1}


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    return out, write_phantom_tree(out, patients=2, seed=11, **TINY)


@pytest.fixture(scope="module")
def messy_tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("messy")
    return out, write_phantom_tree(out, patients=2, seed=12, messy=True, **TINY)


def test_layout_and_ground_truth(clean_tree):
    out, manifest = clean_tree
    series_dirs = sorted({p.parent for p in out.rglob("*.dcm")})
    assert len(series_dirs) == 2
    for d in series_dirs:
        rel = d.relative_to(out).parts
        assert len(rel) == 3 and rel[0].startswith("LIDC-IDRI-")
    rows = list(csv.DictReader((out / "ground_truth.csv").open()))
    files = {str(p.relative_to(out)) for p in out.rglob("*.dcm")}
    assert {r["file"] for r in rows} == files
    for r in rows[:3]:
        ds = pydicom.dcmread(out / r["file"])
        assert ds.PatientID == r["patient_id"] and ds.SeriesInstanceUID == r["series_uid"]
        assert float(ds.ImagePositionPatient[2]) == pytest.approx(float(r["z_mm"]), abs=1e-3)
        for k in ("width_mm", "size", "rotation_deg", "fat_mm", "breast_mm", "t", "eff_width_mm", "eff_width_px"):
            assert r[k] != ""
    assert json.loads((out / "phantom_manifest.json").read_text())["seed"] == 11
    assert manifest["pitfalls"] == []


def test_same_seed_same_bytes(clean_tree, tmp_path):
    out, _ = clean_tree
    write_phantom_tree(tmp_path, patients=2, seed=11, **TINY)
    assert _digest(tmp_path) == _digest(out)


def test_parallel_workers_give_identical_output(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    write_phantom_tree(a, patients=2, seed=5, matrix=48, n_slices=3, workers=1)
    write_phantom_tree(b, patients=2, seed=5, matrix=48, n_slices=3, workers=2)
    assert _digest(a) == _digest(b)


def test_round_trip_equals_generated_hu(clean_tree):
    out, manifest = clean_tree
    plans = plan_patients(2, 11, False, TINY["matrix"], TINY["n_slices"])
    inside = fov_mask(TINY["matrix"])
    for plan, ser in zip(plans, manifest["series"]):
        geom = scan_geometry(plan.subject, plan.acq, TINY["n_slices"])
        hu = render_volume(plan.subject, plan.acq, geom.t, np.random.default_rng(plan.noise_seed))
        files = sorted((out / ser["series_dir"]).glob("*.dcm"))
        # SimpleITK (sorts by position, inferior first).
        r = sitk.ImageSeriesReader()
        r.SetFileNames(r.GetGDCMSeriesFileNames(str(files[0].parent)))
        img = r.Execute()
        arr = sitk.GetArrayFromImage(img)[::-1]
        assert np.abs(arr[:, inside] - hu[:, inside]).max() <= 0.5
        ps = plan.acq.pixel_spacing_mm
        assert img.GetSpacing() == pytest.approx((ps, ps, geom.spacing_mm), rel=1e-4)
        # The project's reader.
        from napari_latentdirs.dicom.series import read_series

        vol = read_series(files)
        zs = np.array([s.z_mm for s in vol.slices])
        idx = [int(np.argmin(np.abs(geom.z_mm - z))) for z in zs]
        assert np.abs(vol.hu[:, inside] - hu[idx][:, inside]).max() <= 0.5
        assert vol.spacing == pytest.approx((geom.spacing_mm, ps, ps), rel=1e-4)
        assert vol.problems == []


def test_files_pass_dciodvfy(clean_tree, messy_tree):
    # First and last file of every series (CT and CR) in both trees, duplicates included.
    sample = []
    for out, _ in (clean_tree, messy_tree):
        for d in sorted({p.parent for p in out.rglob("*.dcm")}):
            files = sorted(d.glob("*.dcm"))
            sample += [files[0], files[-1]] + [f for f in files if "_dup" in f.name][:1]
    modalities = {pydicom.dcmread(p, stop_before_pixels=True).Modality for p in sample}
    assert modalities == {"CT", "CR"}
    for p in sample:
        assert dciodvfy_errors(p) == [], p


def test_messy_tree_has_every_pitfall(messy_tree):
    out, manifest = messy_tree
    kinds = {p["kind"] for p in manifest["pitfalls"]}
    assert kinds == set(PITFALLS)
    by = {p["kind"]: p for p in manifest["pitfalls"]}
    # Duplicates are byte-identical copies.
    for d in by["duplicate_slices"]["duplicates"]:
        assert (out / d["file"]).read_bytes() == (out / d["copy_of"]).read_bytes()
    # Missing slice: one fewer file than planned, a gap in positions.
    miss_dir = out / by["missing_slice"]["series_dir"]
    zs = sorted(float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in miss_dir.glob("*.dcm") if "_dup" not in p.name)
    steps = np.diff(zs)
    assert steps.max() > 1.5 * np.median(steps)
    # Reversed order: file name order runs inferior -> superior.
    rev = sorted((out / by["reversed_file_order"]["series_dir"]).glob("0*.dcm"))
    rz = [float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in rev if "_dup" not in p.name]
    assert rz == sorted(rz)
    # Intercept 0 with padding -2000 outside the FOV circle.
    ds = pydicom.dcmread(next((out / by["intercept_zero_padding"]["series_dir"]).glob("*.dcm")))
    assert float(ds.RescaleIntercept) == 0 and ds.PixelPaddingValue == -2000
    assert ds.pixel_array[0, 0] == -2000
    # CR series and the XML file.
    assert pydicom.dcmread(out / by["cr_series"]["file"]).Modality == "CR"
    assert (out / by["xml_annotation"]["file"]).read_text().lstrip().startswith("<?xml")
    # Irregular spacing: two different steps.
    assert len(by["irregular_spacing"]["spacings_mm"]) >= 2


def test_reader_reports_messy_pitfalls(messy_tree):
    discover = pytest.importorskip("napari_latentdirs.dicom.discover")
    from napari_latentdirs.dicom.series import read_series

    out, manifest = messy_tree
    d = discover.discover_series(out)
    skipped = " ".join(f"{s.what} {s.reason} {[str(p) for p in s.paths]}" for s in d.skipped)
    assert "CR" in skipped or "CHEST2V" in skipped
    by_dir = {}
    for s in d.series:
        vol = read_series(s.paths)
        by_dir[str(Path(s.paths[0]).parent.relative_to(out))] = vol
    by = {p["kind"]: p for p in manifest["pitfalls"]}
    probs = {k: " | ".join(by_dir[by[k]["series_dir"]].problems) for k in ("duplicate_slices", "missing_slice", "irregular_spacing")}
    assert "duplicate" in probs["duplicate_slices"]
    assert "gap" in probs["missing_slice"]
    assert "non-uniform" in probs["irregular_spacing"] or "gap" in probs["irregular_spacing"]
    pad = by_dir[by["intercept_zero_padding"]["series_dir"]]
    assert pad.meta.get("padding_hu") == [-2000.0]
