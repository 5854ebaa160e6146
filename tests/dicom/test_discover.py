"""Series discovery over LIDC-style and NBIA-style trees."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import SegmentationStorage

from napari_latentdirs.dicom.discover import contains_dicom, discover_series
from napari_latentdirs.dicom.series import load_ct, read_series

sys.path.insert(0, str(Path(__file__).parent))
from dcmfactory import ct_dataset, random_raw, save, write_volume  # noqa: E402

CR_SOP = "1.2.840.10008.5.1.4.1.1.1"


@pytest.fixture
def lidc_tree(tmp_path):
    root = tmp_path / "LIDC-IDRI"
    # Patient 1: one CT series with its XML annotation, plus a CR study (LIDC has these).
    s1 = root / "LIDC-IDRI-0001" / "1.3.6.1.4.1.14519.5.2.1.6279.6001.1" / "1.3.6.1.4.1.14519.5.2.1.6279.6001.11"
    write_volume(s1, random_raw((4, 8, 8), seed=1), series_uid="9.1.1", patient_id="LIDC-IDRI-0001", order=[2, 0, 3, 1])
    (s1 / "069.xml").write_text("<?xml version='1.0'?><LidcReadMessage></LidcReadMessage>")
    cr = root / "LIDC-IDRI-0001" / "1.3.6.1.4.1.14519.5.2.1.6279.6001.2" / "1.3.6.1.4.1.14519.5.2.1.6279.6001.21"
    for k in range(2):
        save(ct_dataset(random_raw((8, 8)), series_uid="9.1.2", patient_id="LIDC-IDRI-0001", modality="CR", sop_class=CR_SOP, instance=k + 1), cr / f"{k}.dcm")
    # Patient 2, NBIA-style names: CT plus a SEG in the same study, and a zero-length download.
    s2 = root / "LIDC-IDRI-0002" / "01-01-2000-NA-NA-30178" / "3000566.000000-NA-03192"
    write_volume(s2, random_raw((3, 8, 8), seed=2), series_uid="9.2.1", patient_id="LIDC-IDRI-0002", names=["1-001.dcm", "1-002.dcm", "1-003.dcm"])
    (s2 / "1-004.dcm").write_bytes(b"")
    seg = root / "LIDC-IDRI-0002" / "01-01-2000-NA-NA-30178" / "300.000000-Segmentation-07.00"
    save(ct_dataset(random_raw((8, 8)), series_uid="9.2.9", patient_id="LIDC-IDRI-0002", modality="SEG", sop_class=SegmentationStorage), seg / "1-1.dcm")
    # Two series sharing one folder; one single-slice series.
    mixed = root / "LIDC-IDRI-0003" / "study" / "mixed"
    write_volume(mixed, random_raw((2, 8, 8), seed=3), series_uid="9.3.1", patient_id="LIDC-IDRI-0003", names=["a.dcm", "b.dcm"])
    write_volume(mixed, random_raw((1, 8, 8), seed=4), series_uid="9.3.2", patient_id="LIDC-IDRI-0003", names=["c.dcm"])
    (root / "README.txt").write_text("not dicom")
    return root


def test_lidc_tree_discovery(lidc_tree, caplog):
    with caplog.at_level(logging.INFO, logger="napari_latentdirs.dicom.discover"):
        found = discover_series(lidc_tree)
    assert [s.series_uid for s in found.series] == ["9.1.1", "9.2.1", "9.3.1", "9.3.2"]
    assert [s.n_files for s in found.series] == [4, 3, 2, 1]
    reasons = {(k.what.rsplit("/", 1)[-1], k.reason) for k in found.skipped}
    assert reasons == {("9.1.2", "CR radiograph"), ("9.2.9", "SEG segmentation"), ("1-004.dcm", "zero-length file")}
    assert sorted(p.name for p in found.ignored) == ["069.xml", "README.txt"]
    for text in ("CR radiograph", "SEG segmentation", "zero-length file"):
        assert text in caplog.text
    vols = [read_series(s.paths) for s in found.series]
    assert [v.hu.shape[0] for v in vols] == [4, 3, 2, 1]
    assert vols[0].patient_id == "LIDC-IDRI-0001"


def test_load_ct_folder_and_file(lidc_tree):
    vols = load_ct(lidc_tree / "LIDC-IDRI-0003")
    assert sorted(v.series_uid for v in vols) == ["9.3.1", "9.3.2"]
    single = next((lidc_tree / "LIDC-IDRI-0002").rglob("1-002.dcm"))
    [vol] = load_ct(single)
    assert vol.hu.shape == (1, 8, 8)


def test_contains_dicom_is_bounded(tmp_path, lidc_tree):
    assert contains_dicom(lidc_tree)
    big = tmp_path / "photos"
    big.mkdir()
    for i in range(300):
        (big / f"{i:04d}.txt").write_bytes(np.random.default_rng(i).bytes(200))
    assert not contains_dicom(big)
    # A DICOM file sorted after 300 others is beyond the default budget: the scan stops early.
    save(ct_dataset(random_raw((8, 8))), big / "zzz.dcm")
    assert not contains_dicom(big)
    assert contains_dicom(big, max_files=1000)
    assert not contains_dicom(tmp_path / "does-not-exist")
