"""``prepare`` against stale inputs, foreign folders, empty roots, bad rescale and kill -9
(issue 14, items 6, 8, 11, 12 and 15)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_latentdirs.cli import main as cli_main
from napari_latentdirs.data.cache import CACHE_MARKER, CacheFolderError, SliceCache, build_cache
from napari_latentdirs.data.prepare import NoUsableSlicesError, PrepareConfig, prepare
from napari_latentdirs.data.preprocess import Preprocessing
from napari_latentdirs.utils.folderlock import LOCK_NAME

sys.path.insert(0, str(Path(__file__).parents[1] / "dicom"))
from dcmfactory import random_raw, write_volume  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _procs import descendants, running  # noqa: E402

CFG = PrepareConfig(size=32, test_fraction=0.5, seed=0, dtype="float32")


def _tree(root: Path, n_series: int = 2, n: int = 3, size: int = 128) -> Path:
    for k in range(n_series):
        write_volume(root / f"P{k}" / "s", random_raw((n, size, size), seed=k, lo=-900, hi=900),
                     series_uid=f"9.9.{k}", patient_id=f"P{k}", intercept=-1024)
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- item 6: a changed file is never reused ---------------------------------------------------------

def test_same_size_header_edit_with_mtime_put_back_redoes_the_series(tmp_path):
    root = _tree(tmp_path / "dicom")
    cache = tmp_path / "cache"
    first = prepare(root, cache, workers=1, config=CFG, progress=False)
    target = sorted((root / "P1" / "s").glob("*.dcm"))[0]
    data = target.read_bytes()
    st = target.stat()
    assert data.count(b"-1024") == 1  # RescaleIntercept, as DS text
    target.write_bytes(data.replace(b"-1024", b"-1000"))  # +24 HU, same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    second = prepare(root, cache, workers=1, config=CFG, progress=False)
    assert (second.processed, second.reused) == (1, 1)
    assert second.fingerprint != first.fingerprint
    sc = SliceCache(cache)
    t = sc.table
    rows = np.flatnonzero((t.series_uid == "9.9.1") & (t.slice_index == 0))
    prep = Preprocessing(size=32)
    raw = random_raw((3, 128, 128), seed=1, lo=-900, hi=900)[0].astype(np.float32)
    expected = prep.resize(prep.hu_to_model(raw[None] - 1000.0))[0]
    np.testing.assert_allclose(np.asarray(sc.read(int(rows[0])), np.float32), expected, atol=1e-6)
    sc.close()


def test_same_size_pixel_edit_redoes_the_series(tmp_path):
    root = _tree(tmp_path / "dicom")
    cache = tmp_path / "cache"
    first = prepare(root, cache, workers=1, config=CFG, progress=False)
    target = sorted((root / "P0" / "s").glob("*.dcm"))[2]
    data = bytearray(target.read_bytes())
    assert len(data) - 2000 > 16384
    data[-2000] ^= 0x7F  # a pixel far beyond the header bytes
    time.sleep(0.01)
    target.write_bytes(bytes(data))
    second = prepare(root, cache, workers=1, config=CFG, progress=False)
    assert (second.processed, second.reused) == (1, 1)
    # The resumed cache is the one a fresh prepare of the edited tree gives.
    fresh = prepare(root, tmp_path / "fresh", workers=1, config=CFG, progress=False)
    assert second.fingerprint == fresh.fingerprint
    np.testing.assert_array_equal(np.load(cache / "slices.npy"), np.load(tmp_path / "fresh" / "slices.npy"))
    assert first.n_slices == second.n_slices


# -- item 11: folders that are not ours --------------------------------------------------------------

@pytest.mark.parametrize("foreign", [
    {"table.csv": b"name,score\nalice,3\n", "notes.txt": b"mine"},
    {"index.json": b'{"project": "someone else"}'},
    {"slices.npy": b"not ours"},
    {"table.csv": b"name,score\n"},
])
def test_prepare_refuses_a_folder_it_did_not_write(tmp_path, capsys, foreign):
    root = _tree(tmp_path / "dicom", n_series=1)
    cache = tmp_path / "cache"
    cache.mkdir()
    for name, data in foreign.items():
        (cache / name).write_bytes(data)
    before = _snapshot(cache)
    with pytest.raises(CacheFolderError, match="was not written by `latentdirs prepare`; nothing was changed"):
        prepare(root, cache, workers=1, config=CFG, progress=False)
    with pytest.raises(SystemExit, match="error: cache folder .* is not empty"):
        cli_main(["prepare", str(root), str(cache), "--workers", "1", "--no-progress", "--size", "32"])
    assert _snapshot(cache) == before and sorted(p.name for p in cache.iterdir()) == sorted(foreign)


def test_own_caches_old_and_new_are_resumed(tmp_path):
    root = _tree(tmp_path / "dicom")
    cache = tmp_path / "cache"
    first = prepare(root, cache, workers=1, config=CFG, progress=False)
    assert json.loads((cache / CACHE_MARKER).read_text())["format"] == "napari-latentdirs/cache/1"
    again = prepare(root, cache, workers=1, config=CFG, progress=False)
    assert (again.reused, again.fingerprint) == (2, first.fingerprint)
    (cache / CACHE_MARKER).unlink()  # a cache written before the marker existed
    legacy = prepare(root, cache, workers=1, config=CFG, progress=False)
    assert (legacy.reused, legacy.fingerprint) == (2, first.fingerprint)


def test_build_cache_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "table.csv").write_text("mine")
    with pytest.raises(CacheFolderError):
        build_cache(tmp_path, np.zeros((2, 8, 8), np.float32), patient_ids=["a", "b"])
    assert (tmp_path / "table.csv").read_text() == "mine" and not (tmp_path / "index.json").exists()


def test_a_second_prepare_on_the_same_cache_is_refused_while_the_first_runs(tmp_path):
    import fcntl

    root = _tree(tmp_path / "dicom", n_series=1)
    cache = tmp_path / "cache"
    prepare(root, cache, workers=1, config=CFG, progress=False)
    with open(cache / LOCK_NAME, "w") as held:  # what a running prepare (or train into RUN/cache) holds
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(CacheFolderError, match="is in use by"):
            prepare(root, cache, workers=1, config=CFG, progress=False)


# -- item 15 and 8: nothing usable is an error, a bad rescale a named skip -----------------------------

def test_root_without_dicom_fails_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "notdicom"
    root.mkdir()
    (root / "readme.txt").write_text("hello")
    (root / "scan.xml").write_text("<LidcReadMessage/>")
    cache = tmp_path / "cache"
    with pytest.raises(NoUsableSlicesError, match="no CT series under .*notdicom"):
        prepare(root, cache, workers=1, config=CFG, progress=False)
    assert not cache.exists()
    with pytest.raises(SystemExit, match="error: no CT series"):
        cli_main(["prepare", str(root), str(cache), "--workers", "1", "--no-progress"])
    assert not cache.exists()


def test_root_whose_every_series_is_unusable_fails_without_index(tmp_path):
    root = tmp_path / "dicom"
    write_volume(root / "a", random_raw((3, 16, 16)), series_uid="9.8.1", slope=1e300)
    write_volume(root / "b", random_raw((1, 16, 16)), series_uid="9.8.2")
    cache = tmp_path / "cache"
    with pytest.raises(NoUsableSlicesError, match=r"none of the 2 CT series could be used .*non-finite HU"):
        prepare(root, cache, workers=1, config=CFG, progress=False)
    assert not (cache / "index.json").exists()


def test_overflowing_rescale_is_a_skip_naming_the_file(tmp_path, capsys):
    root = _tree(tmp_path / "dicom", n_series=1)
    write_volume(root / "bad", random_raw((3, 16, 16)), series_uid="9.8.3", patient_id="P9", slope=1e300)
    cache = tmp_path / "cache"
    assert cli_main(["prepare", str(root), str(cache), "--workers", "1", "--no-progress", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "skipped 9.8.3: InvalidAttributeError: img0000.dcm: RescaleSlope=1e+300" in out and "non-finite HU" in out
    sc = SliceCache(cache)
    assert set(sc.table.series_uid) == {"9.9.0"} and np.all(np.isfinite(np.asarray(sc.array)))
    sc.close()


def test_corrupt_file_is_named_in_the_prepare_output(tmp_path, capsys):
    root = _tree(tmp_path / "dicom", n_series=1, n=4)
    victim = sorted((root / "P0" / "s").glob("*.dcm"))[1]
    data = bytearray(victim.read_bytes())
    data[400:] = np.random.default_rng(0).integers(0, 256, len(data) - 400, dtype=np.uint8).tobytes()
    victim.write_bytes(bytes(data))
    assert cli_main(["prepare", str(root), str(tmp_path / "c"), "--workers", "1", "--no-progress", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert f"corrupt or unreadable DICOM file {victim.name}" in out and "no SeriesInstanceUID" not in out


# -- item 12: kill -9 of prepare leaves no workers ------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_prepare_takes_its_workers_along(tmp_path):
    root = _tree(tmp_path / "dicom", n_series=8, n=40, size=320)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "napari_latentdirs.cli", "prepare", str(root), str(cache), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = descendants(proc.pid)
            if len(workers) >= 2:
                break
            time.sleep(0.005)
        assert len(workers) >= 2, "prepare never started its workers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(running(w) for w in workers):
            time.sleep(0.05)
        assert not [w for w in workers if running(w)], "workers outlived their parent"
    finally:
        for w in workers:  # never leave orphans behind, even when the test fails
            if running(w):
                os.kill(w, signal.SIGKILL)
    # What the kill left: finished parts and perhaps temporary files; the next run completes
    # the same cache, removes the temporary files, and reuses what was finished.
    res = prepare(root, cache, workers=2, config=CFG, progress=False)
    assert res.n_series == 8 and res.processed + res.reused == 8
    assert not list(cache.rglob("*.tmp"))
