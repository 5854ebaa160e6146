"""Bad inputs to the training engines and the weight loaders are refused early, by name.

Issue 14, items 7 (NaN data, non-finite losses), 11 (foreign run folders,
training side), 13 (forged architecture metadata), 14 (non-finite direction
matrices) and 15 (malformed sidecars, bad --fid-weights, wrong slice size,
--size 0). Names new in the fix are imported inside the tests, so each test
fails on the code before it for its own reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import zipfile

import numpy as np
import pytest
import torch
from _tiny_runs import ENV, PY, SlicesWithNaN, drain, ellipses, tiny
from safetensors.torch import load_file, save_file

from napari_latentdirs.directions.set import FORMAT as DIRECTION_FORMAT
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.events import CheckpointSaved, Step, Stopped
from napari_latentdirs.models import registry
from napari_latentdirs.models.dcgan import Generator, dcgan_config
from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses
from napari_latentdirs.training.gan import GANTrainer, train_gan
from napari_latentdirs.utils.weights import save_weights, sidecar


def _train_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "napari_latentdirs.training", *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


TINY_CLI = ("--preset", "tiny", "--epochs", "1", "--batch", "4", "--device", "cpu", "--no-fid")


# -- item 7: NaN in the data, non-finite losses ------------------------------------------------

def test_npy_with_one_nan_pixel_is_refused_when_opened(tmp_path):
    x = synthetic_ellipses(16, 0)
    x[5, 64, 64] = np.nan
    npy = tmp_path / "bad.npy"
    np.save(npy, x)
    out = tmp_path / "run"
    res = _train_cli("gan", "--data", str(npy), "--out", str(out), *TINY_CLI)
    assert res.returncode != 0, res.stdout[-2000:]
    assert f"--data {npy}" in res.stderr and "slice 5" in res.stderr and "non-finite" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert not out.exists()  # refused before anything was written
    from napari_latentdirs.training.data import BadSlicesError

    with pytest.raises(BadSlicesError, match=r"in memory: slice 5 has non-finite"):
        TensorSlices(x, name="in memory")
    x[5, 64, 64] = np.inf
    with pytest.raises(BadSlicesError, match="slice 5 has non-finite"):
        TensorSlices(x)


@pytest.mark.parametrize("sync_every", [1, 4])
def test_non_finite_loss_stops_the_run_before_anything_is_written_from_it(tmp_path, sync_every):
    """Data that no opening check sees (like a slice cache) with one NaN pixel, met at step 3."""
    from napari_latentdirs.training.engine import NonFiniteLossError

    run = tmp_path / "run"
    data = SlicesWithNaN(ellipses(16), bad=())
    # log_every = sync_every: 1 is the CPU default; 4 is the GPU path (losses fetched every 4 steps)
    trainer = GANTrainer(tiny("gan", epochs=2, checkpoint_every=2, log_every=sync_every), data, run)
    trainer.sync_every = sync_every
    bad = trainer.epoch_batches(0, 0)[2][1]  # an item of the third batch
    data.bad = {bad}
    events: list = []
    with pytest.raises(NonFiniteLossError, match=rf"loss_d.*item\(s\) \[{bad}\]"):
        for ev in trainer.run():
            events.append(ev)
    assert not (run / "generator.safetensors").exists()
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [2]  # before the NaN, not after
    tensors = load_file(str(run / "checkpoints" / "last.safetensors"))
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())
    steps = [e for e in events if isinstance(e, Step)]
    assert [e.step for e in steps] == ([1, 2] if sync_every == 1 else [1, 2, 3])
    # on the GPU path only the sync steps carry losses
    assert [bool(e.losses) for e in steps] == ([True, True] if sync_every == 1 else [False, False, False])


# -- item 11: a run folder that is not ours ------------------------------------------------------

def test_training_refuses_a_folder_that_is_not_one_of_ours(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "metrics.csv").write_text("date,weight_kg\n2024-01-01,71\n")
    (foreign / "notes.txt").write_text("my notes")
    before = {p.name: p.read_bytes() for p in foreign.iterdir()}
    with pytest.raises(ValueError, match="not a napari-latentdirs run folder.*notes.txt"):
        drain(train_gan, tiny(), ellipses(), foreign)
    assert {p.name: p.read_bytes() for p in foreign.iterdir()} == before  # untouched, nothing added

    (foreign / "notes.txt").unlink()  # a foreign metrics.csv alone is enough to refuse
    with pytest.raises(ValueError, match=r"metrics.csv \(not one of our metric logs\)"):
        drain(train_gan, tiny(), ellipses(), foreign)
    assert (foreign / "metrics.csv").read_bytes() == before["metrics.csv"]

    res = _train_cli("gan", "--data", "phantom:32", "--out", str(foreign), *TINY_CLI)
    assert res.returncode != 0 and "not a napari-latentdirs run folder" in res.stderr
    assert "Traceback" not in res.stderr


def test_training_accepts_new_empty_and_its_own_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert isinstance(drain(train_gan, tiny(epochs=2), ellipses(), empty, stop_after=2)[-1], Stopped)
    events = drain(train_gan, tiny(epochs=2), ellipses(), empty)  # our own stopped run: resumed
    assert events[0].start_step == 2 and (empty / "generator.safetensors").exists()
    drain(train_gan, tiny(epochs=1), ellipses(), tmp_path / "new" / "nested")


def test_direction_training_refuses_a_foreign_folder(tmp_path):
    from napari_latentdirs.directions.voynov import DirectionsConfig, train_directions
    from napari_latentdirs.models.analytic import AnalyticEllipseGenerator

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("\\documentclass{article}")
    cfg = DirectionsConfig(K=4, steps=2, batch_size=4, eval_batches=1, device="cpu", generator_kind="analytic")
    with pytest.raises(ValueError, match="not a napari-latentdirs run folder.*thesis.tex"):
        list(train_directions(cfg, AnalyticEllipseGenerator().eval(), foreign))
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]
    res = subprocess.run([PY, "-m", "napari_latentdirs.cli", "directions", "--generator", "analytic", "--out",
                          str(foreign), "--steps", "2", "--K", "4", "--batch-size", "4", "--device", "cpu"],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "not a napari-latentdirs run folder" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]


def test_a_labelled_direction_run_is_still_ours_and_resumes(tmp_path):
    """Labelling writes <set>.labels.json into the run (the directions dock labels every run it
    finishes); Resume on that run must continue it, not call the folder foreign."""
    from napari_latentdirs.analysis.label_set import label_set, labels_path_of
    from napari_latentdirs.directions.voynov import DirectionsConfig, train_directions
    from napari_latentdirs.events import Started
    from napari_latentdirs.models.analytic import AnalyticEllipseGenerator

    run = tmp_path / "run"
    gen = AnalyticEllipseGenerator().eval()
    cfg = DirectionsConfig(K=3, steps=2, batch_size=4, eval_batches=1, device="cpu", generator_kind="analytic",
                           checkpoint_every=1)
    list(train_directions(cfg, gen, run))
    label_set(gen, run / "directions.safetensors", n_latents=8)
    labels = labels_path_of(run / "directions.safetensors")
    assert labels.parent == run and labels.is_file()
    cfg4 = DirectionsConfig(K=3, steps=4, batch_size=4, eval_batches=1, device="cpu", generator_kind="analytic",
                            checkpoint_every=1)
    events = list(train_directions(cfg4, gen, run))
    assert next(e for e in events if isinstance(e, Started)).start_step == 2


# -- item 13: the architecture in the metadata is checked against the tensors -------------------

PEAK = r"""
import json, sys
def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
import torch
from napari_latentdirs.models import registry
registry.load_generator(sys.argv[1]).generate(torch.zeros(1, 32))  # warm up: torch's own allocations
base = peak_kb()
try:
    registry.load_generator(sys.argv[2])
    out = {"error": None}
except Exception as exc:
    out = {"error": type(exc).__name__, "message": str(exc)}
out["peak_mb"] = (peak_kb() - base) / 1024
print(json.dumps(out))
"""


def _forge(src, dst, legacy: bool, **config):
    """A copy of generator file ``src`` whose metadata claims another architecture.

    ``legacy``: metadata in the JSON sidecar only (with a matching sha256, as an attacker
    would write it); otherwise in the safetensors header, where current files keep it.
    """
    import hashlib

    tensors = load_file(str(src))
    meta = {k: v for k, v in json.loads(sidecar(src).read_text()).items()
            if k not in ("weights_sha256", "weights_file", "data_sha256")}
    meta["config"] = {**meta["config"], **config}
    if legacy:
        save_file(tensors, str(dst))
        meta["weights_sha256"] = hashlib.sha256(dst.read_bytes()).hexdigest()
    else:
        save_file(tensors, str(dst), metadata={"napari_latentdirs.meta": json.dumps(meta)})
    sidecar(dst).write_text(json.dumps(meta))
    return dst


@pytest.mark.parametrize("legacy", [False, True], ids=["header", "sidecar-only"])
def test_forged_architecture_is_refused_before_the_network_is_allocated(tmp_path, legacy):
    real = registry.save_generator(tmp_path / "g.safetensors", Generator(dcgan_config("tiny")))
    # g_width 256 would be ~180M parameters (~0.7 GB) if the loader believed it
    forged = _forge(real, tmp_path / "forged.safetensors", legacy, g_width=256)
    res = subprocess.run([PY, "-c", PEAK, str(real), str(forged)], env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] == "WeightsFormatError", out
    assert str(forged) in out["message"] and "does not match the tensors" in out["message"]
    assert out["peak_mb"] < 100, out  # nothing the size of the claimed network was allocated


def test_forged_reconstructor_metadata_is_refused(tmp_path):
    from napari_latentdirs.directions.voynov import load_reconstructor
    from napari_latentdirs.models.reconstructors import build_reconstructor
    from napari_latentdirs.utils.weights import WeightsFormatError

    path = save_weights(tmp_path / "r.safetensors", build_reconstructor("lenet", 8, 1).state_dict(),
                        {"format": "napari-latentdirs/reconstructor/1", "arch": "lenet", "K": 8})
    tensors = load_file(str(path))
    for meta, match in (({"K": 100000}, "does not match the tensors"), ({"K": "8"}, "positive integer 'K'"),
                        ({"arch": "vgg99"}, "invalid reconstructor metadata")):
        bad = tmp_path / "bad.safetensors"
        full = {"format": "napari-latentdirs/reconstructor/1", "arch": "lenet", "K": 8, **meta}
        save_file(tensors, str(bad), metadata={"napari_latentdirs.meta": json.dumps(full)})
        with pytest.raises(WeightsFormatError, match=match):
            load_reconstructor(bad)


# -- item 14: non-finite direction matrices --------------------------------------------------------

def _direction_file(path, A: np.ndarray):
    meta = {"format": DIRECTION_FORMAT, "method": "voynov-unit", "generator": "", "labels": None, "metrics": {},
            "latent_dim": A.shape[0], "K": A.shape[1], "meta": {}}
    return save_weights(path, {"A": torch.from_numpy(A)}, meta)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_direction_matrix_with_nan_or_inf_is_refused_naming_the_file(tmp_path, value):
    A = np.random.default_rng(0).standard_normal((32, 8)).astype(np.float32)
    ok = _direction_file(tmp_path / "ok.safetensors", A)
    assert DirectionSet.load(ok).K == 8
    A[3, 5] = value
    bad = _direction_file(tmp_path / "bad.safetensors", A)
    with pytest.raises(ValueError, match=re.escape(str(bad)) + r".*non-finite.*\[5\]"):
        DirectionSet.load(bad)
    with pytest.raises(ValueError, match="non-finite"):
        DirectionSet(A=A, method="random")


# -- item 15: malformed sidecars, bad --fid-weights, wrong slice size, --size 0 ---------------------

@pytest.mark.parametrize(("text", "what"), [("", "is empty"), ('{"kind": ', "not valid JSON"),
                                            ("[1, 2]", "holds an array"), ('"dcgan"', "holds a string")])
def test_malformed_sidecar_of_a_sidecar_only_file_is_named(tmp_path, text, what):
    """Files written before the metadata moved into the header depend on their sidecar."""
    legacy = tmp_path / "g.safetensors"
    save_file(Generator(dcgan_config("tiny")).state_dict(), str(legacy))
    sidecar(legacy).write_text(text)
    for load in (registry.load_generator, DirectionSet.load, registry.generator_meta):
        with pytest.raises(ValueError) as err:
            load(legacy)
        assert str(sidecar(legacy)) in str(err.value) and what in str(err.value), (load, err.value)


def test_current_files_carry_their_metadata_and_repair_a_broken_sidecar(tmp_path):
    p = registry.save_generator(tmp_path / "g.safetensors", Generator(dcgan_config("tiny")))
    sidecar(p).write_text("[garbage")
    assert registry.load_generator(p).meta["kind"] == "dcgan"  # the header is what counts
    assert json.loads(sidecar(p).read_text())["kind"] == "dcgan"  # and the readable copy is fixed
    sidecar(p).unlink()
    assert registry.generator_meta(p)["kind"] == "dcgan" and sidecar(p).is_file()


def test_malformed_metadata_in_the_header_is_named(tmp_path):
    from napari_latentdirs.utils.weights import WeightsFormatError

    p = tmp_path / "h.safetensors"
    save_file(Generator(dcgan_config("tiny")).state_dict(), str(p), metadata={"napari_latentdirs.meta": "[1]"})
    with pytest.raises(WeightsFormatError, match=re.escape(str(p)) + ".*holds an array"):
        registry.load_generator(p)


def _scripted_wrong_features(path):
    class TenFeatures(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3)).repeat(1, 4)[:, :10]

    torch.jit.save(torch.jit.script(TenFeatures()), str(path))
    return path


@pytest.mark.parametrize("kind", ["missing", "text", "zip", "wrong-output"])
def test_bad_fid_weights_are_refused_before_the_first_step(tmp_path, kind):
    bad = tmp_path / "inception.pt"
    if kind == "text":
        bad.write_text("not a network")
    elif kind == "zip":
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("readme.txt", "a zip, not TorchScript")
    elif kind == "wrong-output":
        _scripted_wrong_features(bad)
    events: list = []
    with pytest.raises(ValueError, match=re.escape(f"(--fid-weights) {bad}")):
        drain(train_gan, tiny(fid=True, fid_weights=str(bad)), ellipses(), tmp_path / "run", events=events)
    assert not any(isinstance(e, Step) for e in events)
    assert not (tmp_path / "run").exists()


def test_npy_of_64px_slices_is_refused_naming_the_argument(tmp_path):
    npy = tmp_path / "small.npy"
    np.save(npy, synthetic_ellipses(16, 0, size=64))
    res = _train_cli("gan", "--data", str(npy), "--out", str(tmp_path / "run"), *TINY_CLI)
    assert res.returncode != 0
    assert f"--data {npy}" in res.stderr and "64x64" in res.stderr and "128x128" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize("size", ["0", "-4", "100"])
def test_prepare_refuses_an_unusable_size(tmp_path, size):
    (tmp_path / "dicom").mkdir()
    res = subprocess.run([PY, "-m", "napari_latentdirs.cli", "prepare", str(tmp_path / "dicom"),
                          str(tmp_path / "cache"), "--size", size], env=ENV, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode != 0 and f"--size must be a power of two >= 16, got {size}" in res.stderr
    assert not (tmp_path / "cache").exists()
