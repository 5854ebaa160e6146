"""The phantom helper's ``--messy`` LIDC-like tree: every planted pitfall is reported by the reader."""

from __future__ import annotations

import csv
import re
from collections import defaultdict

import numpy as np
import pytest
import SimpleITK as sitk

from napari_latentdirs.dicom.discover import discover_series
from napari_latentdirs.dicom.series import read_series

phantom = pytest.importorskip("napari_latentdirs.phantom")  # written by another helper


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    out = tmp_path_factory.mktemp("messy")
    manifest = phantom.write_phantom_tree(out, patients=3, seed=0, messy=True, matrix=48, n_slices=12, workers=1)
    found = discover_series(out)
    vols = {}
    for s in found.series:
        v = read_series(s.paths)
        vols[v.patient_id] = (s, v)
    return out, manifest, found, vols


def _pitfalls(manifest, kind):
    hits = [p for p in manifest["pitfalls"] if p["kind"] == kind]
    assert hits, f"phantom planted no {kind}"
    return hits


def test_every_pitfall_kind_is_covered(messy):
    _, manifest, _, _ = messy
    assert {p["kind"] for p in manifest["pitfalls"]} == set(phantom.tree.PITFALLS)


def test_duplicates_reported(messy):
    _, manifest, _, vols = messy
    for p in _pitfalls(manifest, "duplicate_slices"):
        _, vol = vols[p["patient_id"]]
        dup_problems = [q for q in vol.problems if q.startswith("duplicate position")]
        assert len(dup_problems) == len(p["duplicates"])
        reported = {float(re.match(r"duplicate position z=(-?[\d.]+) mm", q)[1]): q for q in dup_problems}
        for d in p["duplicates"]:
            z = min(reported, key=lambda r: abs(r - d["z_mm"]))
            assert abs(z - d["z_mm"]) < 0.01  # IPP is written with limited decimals
            assert "dropped InstanceNumber" in reported[z] and d["file"].rsplit("/", 1)[-1] in reported[z]


def test_missing_slice_reported_as_gap(messy):
    _, manifest, _, vols = messy
    for p in _pitfalls(manifest, "missing_slice"):
        _, vol = vols[p["patient_id"]]
        gaps = [q for q in vol.problems if q.startswith("gap:")]
        assert len(gaps) == 1 and "~1 slice(s) missing" in gaps[0]
        z = vol.z_mm
        k = np.searchsorted(z, p["z_mm"])
        assert z[k - 1] < p["z_mm"] < z[k]  # the gap is where the slice was removed
        assert f"z={z[k - 1]:.2f}" in gaps[0]


def test_irregular_spacing_reported(messy):
    _, manifest, _, vols = messy
    for p in _pitfalls(manifest, "irregular_spacing"):
        _, vol = vols[p["patient_id"]]
        assert any(q.startswith("non-uniform spacing") for q in vol.problems)
        steps = np.round(np.diff(vol.z_mm), 2)
        assert set(np.round(p["spacings_mm"], 2)) <= set(steps) | {0.0}


def test_padding_with_intercept_zero(messy):
    _, manifest, _, vols = messy
    planted = {p["patient_id"] for p in _pitfalls(manifest, "intercept_zero_padding")}
    for pid, (_, vol) in vols.items():
        expected = -2000.0 if pid in planted else -3024.0
        assert vol.meta["padding_hu"] == [expected]
        assert vol.hu.min() == expected  # outside-FOV pixels carry the padding HU exactly


def test_reversed_file_order_read_in_position_order(messy):
    out, manifest, _, vols = messy
    truth = defaultdict(dict)
    with open(out / "ground_truth.csv") as fh:
        for row in csv.DictReader(fh):
            if not row["duplicate_of"]:
                truth[row["patient_id"]][row["file"].rsplit("/", 1)[-1]] = float(row["z_mm"])
    for p in _pitfalls(manifest, "reversed_file_order"):
        series, vol = vols[p["patient_id"]]
        assert np.all(np.diff(vol.z_mm) > 0)
        np.testing.assert_allclose(vol.z_mm, sorted(truth[p["patient_id"]].values()), atol=1e-3)
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series.folder))
        img = sitk.ReadImage(files)
        ref = sitk.GetArrayFromImage(sitk.DICOMOrient(img, "LPS")).astype(np.float32)
        np.testing.assert_array_equal(vol.hu, ref)


def test_cr_skipped_and_xml_ignored(messy):
    _, manifest, found, _ = messy
    for p in _pitfalls(manifest, "cr_series"):
        assert any(s.reason == "CR radiograph" and any(str(x).endswith(p["file"]) for x in s.paths) for s in found.skipped)
    for p in _pitfalls(manifest, "xml_annotation"):
        assert any(str(x).endswith(p["file"]) for x in found.ignored)
    assert len(found.series) == 3
