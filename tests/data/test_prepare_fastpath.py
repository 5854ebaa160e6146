"""The short integer route of ``prepare`` equals the paper's preprocessing bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from napari_latentdirs.data.preprocess import DEFAULT, Preprocessing


def _every_value(dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int8, np.uint8])
@pytest.mark.parametrize("intercept", [-1024.0, 0.0, -1000.0, 1000.0, -3000.0, 24.0])
@pytest.mark.parametrize("prep", [DEFAULT, Preprocessing(hu_min=-1350.0, hu_max=150.0)])
def test_int_route_is_bit_identical_to_hu_to_model(dtype, intercept, prep):
    raw = _every_value(dtype)
    hu = (raw.astype(np.float64) * 1.0 + intercept).astype(np.float32)  # as the reader rescales
    expected = prep.hu_to_model(hu)
    out = np.full(raw.shape, np.nan, dtype=np.float32)
    if prep.stored_to_model_into(raw, 1.0, intercept, out):
        np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))
    else:  # the fallback the caller then uses must agree too
        prep.hu_to_model_inplace(hu)
        np.testing.assert_array_equal(hu, expected)


def test_int_route_taken_for_ct_and_reoriented_views():
    rng = np.random.default_rng(0)
    raw = rng.integers(-2000, 4000, (64, 48)).astype(np.int16)
    view = np.swapaxes(raw, 0, 1)[::-1, ::-1]  # what a reorientation plan hands over
    out = np.empty(view.shape, dtype=np.float32)
    assert DEFAULT.stored_to_model_into(view, 1.0, -1024.0, out)
    np.testing.assert_array_equal(out, DEFAULT.hu_to_model(view.astype(np.float32) - 1024))
    # Not applicable: a non-unit slope or a non-integer intercept keep the general route.
    assert not DEFAULT.stored_to_model_into(view, 0.5, -1024.0, out)
    assert not DEFAULT.stored_to_model_into(view, 1.0, -1024.5, out)


def test_parallel_interrupt_leaves_no_temp_files_and_resumes(tmp_path):
    import sys
    from pathlib import Path

    from napari_latentdirs.data.prepare import PrepareConfig, prepare

    sys.path.insert(0, str(Path(__file__).parents[1] / "dicom"))
    from dcmfactory import random_raw, write_volume

    root = tmp_path / "tree"
    for k in range(4):
        write_volume(root / f"P{k}" / "s", random_raw((3, 32, 32), seed=k, lo=-1500, hi=3000), series_uid=f"9.{k}.1", patient_id=f"P{k}")
    cfg = PrepareConfig(size=16, test_fraction=0.25)
    ref = prepare(root, tmp_path / "ref", workers=1, config=cfg, progress=False)

    def interrupt(result):
        raise KeyboardInterrupt  # after the first committed series, others still in flight

    with pytest.raises(KeyboardInterrupt):
        prepare(root, tmp_path / "c", workers=2, config=cfg, progress=False, on_series_done=interrupt)
    parts = tmp_path / "c" / "parts"
    assert not [f.name for f in parts.iterdir() if f.name.endswith(".tmp")]
    assert 1 <= len(list(parts.glob("*.json"))) < 4
    res = prepare(root, tmp_path / "c", workers=2, config=cfg, progress=False)
    assert res.fingerprint == ref.fingerprint and res.reused >= 1
    assert not [f.name for f in parts.iterdir() if f.name.endswith(".tmp")]
