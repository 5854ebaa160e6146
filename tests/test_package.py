"""The package installs as a napari plugin, lints clean, and its shared core behaves."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_latentdirs.data.preprocess import DEFAULT, HU_MAX, HU_MIN
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.utils.weights import (
    IncompleteCheckpointError,
    UnsafeWeightsError,
    load_weights,
    save_weights,
)

ROOT = Path(__file__).resolve().parents[1]


def test_npe2_manifest_validates():
    exe = shutil.which("npe2", path=str(Path(sys.executable).parent)) or "npe2"
    res = subprocess.run([exe, "validate", "napari_latentdirs"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout


def test_manifest_is_single_file_symlinked_into_package():
    link = ROOT / "src" / "napari_latentdirs" / "napari.yaml"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "napari.yaml").resolve()


def test_ruff_clean():
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
    res = subprocess.run([exe, "check", "src", "tests", "benchmarks", "training"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cli_lists_subcommands():
    res = subprocess.run([sys.executable, "-m", "napari_latentdirs.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "latentdirs" in res.stdout


def test_preprocessing_inverse_is_exact_on_the_clip_range():
    hu = np.arange(HU_MIN, HU_MAX + 1, 1.0, dtype=np.float32)
    back = DEFAULT.model_to_hu(DEFAULT.hu_to_model(hu))
    np.testing.assert_allclose(back, hu, atol=2e-3)
    x = DEFAULT.hu_to_model(np.array([-3024.0, -1000.0, 500.0, 2000.0, 3071.0]))
    np.testing.assert_allclose(x, [-1.0, -1.0, 0.0, 1.0, 1.0], atol=1e-6)


def test_resize_is_antialiased_and_sized():
    rng = np.random.default_rng(0)
    img = rng.choice([-1.0, 1.0], size=(512, 512)).astype(np.float32)  # pixel checkerboard noise
    small = DEFAULT.resize(img)
    assert small.shape == (128, 128)
    # Antialiasing averages 4x4 blocks: the noise std falls by about 4; naive sampling keeps it at 1.
    assert small.std() < 0.5


def test_weights_round_trip_and_refuse_pickles(tmp_path):
    t = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    p = save_weights(tmp_path / "m.safetensors", t, {"step": 7})
    got, meta = load_weights(p)
    assert meta["step"] == 7
    assert torch.equal(got["w"], t["w"]) and torch.equal(got["b"], t["b"])

    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(UnsafeWeightsError):
        load_weights(bad)
    torch.save(t, tmp_path / "m.pt")
    with pytest.raises(UnsafeWeightsError):
        load_weights(tmp_path / "m.pt")


def test_truncated_weights_never_load(tmp_path):
    p = save_weights(tmp_path / "m.safetensors", {"w": torch.randn(100, 100)}, {})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(IncompleteCheckpointError):
        load_weights(p)
    # The file is one unit (its metadata and data hash live in its own header): a missing
    # sidecar loses nothing and is written again from the header.
    p.write_bytes(data)
    (tmp_path / "m.json").unlink()
    tensors, _ = load_weights(p)
    assert torch.equal(tensors["w"], load_weights(p)[0]["w"])
    assert (tmp_path / "m.json").is_file()


def test_direction_set_round_trip(tmp_path):
    A = np.linalg.qr(np.random.default_rng(1).normal(size=(32, 32)))[0][:, :10]
    ds = DirectionSet(A=A, method="pca", generator="abc", labels=[f"d{i}" for i in range(10)], metrics={"rca": 0.5})
    ds.save(tmp_path / "d.safetensors")
    back = DirectionSet.load(tmp_path / "d.safetensors")
    np.testing.assert_array_equal(back.A, ds.A)
    assert back.labels == ds.labels and back.method == "pca" and back.K == 10
    assert json.loads((tmp_path / "d.json").read_text())["format"].startswith("napari-latentdirs")
