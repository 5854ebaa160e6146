"""prepare -> cache -> dataset: patient split, counts, value range, interruption, re-runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_latentdirs.cli import main
from napari_latentdirs.data.cache import CacheIncompleteError, SliceCache, split_patients
from napari_latentdirs.data.dataset import SliceDataset
from napari_latentdirs.data.prepare import PrepareConfig, prepare
from napari_latentdirs.dicom.series import read_series

sys.path.insert(0, str(Path(__file__).parents[1] / "dicom"))
from dcmfactory import ct_dataset, random_raw, save, write_volume  # noqa: E402

SLICES = {"LIDC-IDRI-0001": 5, "LIDC-IDRI-0002": 4, "LIDC-IDRI-0003": 6, "LIDC-IDRI-0004": 3}
CFG = PrepareConfig(size=32, test_fraction=0.25, seed=3)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("lidc")
    for k, (pid, n) in enumerate(SLICES.items()):
        folder = root / pid / "study" / "series"
        write_volume(folder, random_raw((n, 48, 48), seed=k, lo=-1500, hi=3000), series_uid=f"9.{k}.1", patient_id=pid, order=list(range(n))[::-1])
    # Left out, each for its reason: a single slice, a CR, and a series with a damaged file.
    write_volume(root / "LIDC-IDRI-0001" / "study" / "scout", random_raw((1, 48, 48)), series_uid="9.0.7", patient_id="LIDC-IDRI-0001")
    save(ct_dataset(random_raw((48, 48)), series_uid="9.0.8", patient_id="LIDC-IDRI-0001", modality="CR", sop_class="1.2.840.10008.5.1.4.1.1.1"), root / "LIDC-IDRI-0001" / "cr" / "1.dcm")
    bad = write_volume(root / "LIDC-IDRI-0002" / "study" / "broken", random_raw((3, 48, 48)), series_uid="9.1.9", patient_id="LIDC-IDRI-0002")
    bad[1].write_bytes(bad[1].read_bytes()[:-100])
    (root / "LIDC-IDRI-0001" / "study" / "series" / "069.xml").write_text("<LidcReadMessage/>")
    return root


@pytest.fixture(scope="module")
def clean_cache(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    res = prepare(tree, out, workers=1, config=CFG, progress=False)
    return out, res


def test_prepare_counts_split_and_range(tree, clean_cache):
    out, res = clean_cache
    cache = SliceCache(out)
    assert len(cache) == res.n_slices == sum(SLICES.values())
    assert res.n_series == 4 and res.n_patients == 4
    reasons = sorted(s["reason"].split(":")[0] for s in res.skipped)
    assert reasons == ["CR radiograph", "TruncatedFileError", "only 1 slice(s) (< 2)"]
    t = cache.table
    # Patient-level split: each patient entirely in one split, 1 of 4 patients in test.
    for pid in SLICES:
        assert len(set(t.split[t.patient_id == pid])) == 1
    assert len(cache.patients("test")) == 1 and len(cache.patients("train")) == 3
    assert cache.patients("test") == [p for p, s in split_patients(list(SLICES), 3, 0.25).items() if s == "test"]
    train, test = SliceDataset(cache, "train"), SliceDataset(out, "test")
    assert len(train) + len(test) == len(cache)
    assert len(test) == SLICES[cache.patients("test")[0]]
    x = torch.stack([train[i] for i in range(len(train))])
    assert x.shape == (len(train), 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.9  # documented range [-1, 1], air present
    assert set(train.patient_id) == set(cache.patients("train"))


def test_cached_slices_are_the_papers_preprocessing(tree, clean_cache):
    out, _ = clean_cache
    cache = SliceCache(out)
    t = cache.table
    pid = "LIDC-IDRI-0003"
    vol = read_series(sorted((tree / pid).rglob("*.dcm")))
    rows = np.flatnonzero(t.patient_id == pid)
    expected = CFG.preprocessing(vol.hu).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(cache.read_many(rows), expected)
    np.testing.assert_allclose(t.z_mm[rows], vol.z_mm)
    np.testing.assert_allclose(t.rel_z[rows], np.linspace(0, 1, len(rows)), atol=1e-6)
    assert list(t.slice_index[rows]) == list(range(len(rows)))
    # HU round trip through the exact inverse, within float16 storage error.
    hu = cache.preprocessing.model_to_hu(cache.read(int(rows[0])))
    assert hu.min() >= -1000 and hu.max() <= 2000


def test_parallel_run_equals_serial_and_rerun_is_a_no_op(tree, clean_cache, tmp_path):
    ref, ref_res = clean_cache
    res = prepare(tree, tmp_path, workers=2, config=CFG, progress=False)
    assert res.fingerprint == ref_res.fingerprint
    np.testing.assert_array_equal(SliceCache(tmp_path).array, SliceCache(ref).array)
    again = prepare(tree, tmp_path, workers=2, config=CFG, progress=False)
    assert again.processed == 0 and again.reused == 6 and again.fingerprint == res.fingerprint


def test_interrupted_run_resumes_to_the_same_cache(tree, clean_cache, tmp_path):
    _, ref_res = clean_cache
    seen = []

    def interrupt(result):
        seen.append(result)
        if len(seen) == 2:
            raise KeyboardInterrupt  # as if Ctrl-C arrived after two series

    with pytest.raises(KeyboardInterrupt):
        prepare(tree, tmp_path, workers=1, config=CFG, progress=False, on_series_done=interrupt)
    with pytest.raises(CacheIncompleteError, match="no index.json"):
        SliceCache(tmp_path)
    # Debris of a crash mid-write: a temp file and an array whose json never landed.
    parts = tmp_path / "parts"
    (parts / ".9.3.1.npy.abc.tmp").write_bytes(b"partial")
    np.save(parts / "9.3.1.npy", np.zeros((2, 32, 32), np.float16))
    res = prepare(tree, tmp_path, workers=1, config=CFG, progress=False)
    assert res.reused == 2 and res.processed == 4  # 6 series: 4 good, 1 single-slice, 1 damaged
    assert res.fingerprint == ref_res.fingerprint
    # A changed setting redoes everything instead of mixing sizes.
    res16 = prepare(tree, tmp_path, workers=1, config=PrepareConfig(size=16, test_fraction=0.25, seed=3), progress=False)
    assert res16.processed == 6 and SliceCache(tmp_path).size == 16


def test_split_is_by_patient_and_seeded():
    patients = [f"P{i:03d}" for i in range(50)]
    a = split_patients(patients, seed=1, test_fraction=0.2)
    assert a == split_patients(list(reversed(patients)), seed=1, test_fraction=0.2)
    assert sum(v == "test" for v in a.values()) == 10
    assert a != split_patients(patients, seed=2, test_fraction=0.2)
    assert set(split_patients(["A"], 0, 0.5).values()) == {"train"}


def test_cli_prepare(tree, tmp_path, capsys):
    assert main(["prepare", str(tree), str(tmp_path / "c"), "--workers", "1", "--size", "16", "--test-fraction", "0.5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{sum(SLICES.values())} slices, 4 series, 4 patients" in out
    assert "skipped 9.0.8: CR radiograph" in out
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    assert index["counts"]["train"] + index["counts"]["test"] == sum(SLICES.values())
    assert index["value_range"] == [-1.0, 1.0]


def test_training_job_prepares_a_dicom_folder(tree, tmp_path):
    """The training dock's "DICOM folder" source: prepare into the run's cache, then train on it."""
    from napari_latentdirs.jobs import open_training_data

    gen = open_training_data("DICOM folder", str(tree), 0, 0, tmp_path / "run")
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as done:
        data = done.value
    assert "preparing a slice cache" in events[0].text
    assert len(data) > 0 and (tmp_path / "run" / "cache" / "index.json").is_file()
