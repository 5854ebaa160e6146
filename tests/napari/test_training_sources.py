"""Every data source and model the training dock offers, end to end in a real viewer;
input checked before Start; Resume only with a resumable checkpoint; the CLI's DICOM folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from napari_latentdirs.jobs import DATA_SOURCES

N_PATIENTS, N_SLICES = 2, 5


@pytest.fixture(scope="module")
def dicom_tree(tmp_path_factory):
    from napari_latentdirs.phantom.tree import write_phantom_tree

    out = tmp_path_factory.mktemp("dicom")
    write_phantom_tree(out, patients=N_PATIENTS, seed=3, matrix=48, n_slices=N_SLICES, workers=1)
    return out


@pytest.fixture(scope="module")
def slice_cache(dicom_tree, tmp_path_factory):
    from napari_latentdirs.data.prepare import prepare

    cache = tmp_path_factory.mktemp("cache")
    prepare(dicom_tree, cache, workers=1, progress=False)
    return cache


def _dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Train generator")
    return viewer, dock


def _settings(dock, tmp_path, source, path="", model="GAN (DCGAN)", steps=2):
    dock.data_combo.setCurrentIndex(DATA_SOURCES.index(source))
    if path:
        dock.data_edit.value = str(path)
    dock.phantom_n.setValue(16)
    dock.model_combo.setCurrentText(model)
    dock.preset_combo.setCurrentText("tiny")
    dock.epochs_spin.setValue(50)
    dock.batch_spin.setValue(4)
    dock.max_steps_spin.setValue(steps)
    dock.device_combo.setCurrentText("cpu")
    dock.out_edit.value = str(tmp_path / "runs")


@pytest.mark.parametrize("model", ["GAN (DCGAN)", "VAE (ResNet)"])
@pytest.mark.parametrize("source", DATA_SOURCES)
def test_every_source_and_model_trains_end_to_end(make_napari_viewer, sync_workers, tmp_path, dicom_tree,
                                                  slice_cache, source, model):
    from napari_latentdirs.data.cache import SliceCache
    from napari_latentdirs.models.registry import generator_meta

    viewer, dock = _dock(make_napari_viewer)
    path = {"synthetic phantom": "", "prepared cache": slice_cache, "DICOM folder": dicom_tree}[source]
    _settings(dock, tmp_path, source, path, model)
    dock.start()
    assert dock.state == "finished", dock.status.text()
    assert dock.output is not None and dock.output.is_file()
    assert generator_meta(dock.output)["kind"] == ("dcgan" if model.startswith("GAN") else "vae")
    assert "training samples" in viewer.layers
    if source == "DICOM folder":  # prepared inside the run, from every slice of the tree
        cache = SliceCache(dock.run_dir / "cache")
        assert len(cache) == N_PATIENTS * N_SLICES
        assert cache.fingerprint == SliceCache(slice_cache).fingerprint  # the same slices as `latentdirs prepare`
    else:
        assert not (dock.run_dir / "cache").exists()
    # The finished run is measured against the data it imitates (k-NN precision / recall over the
    # real-vs-real ceiling). The phantom always has held-out slices; these tiny caches have too few
    # test slices, which the dock says instead of a figure.
    if source == "synthetic phantom":
        metrics = dock.last_event.metrics
        for name in ("precision", "recall", "diversity"):
            assert metrics[f"quality/probes/{name}_ratio"] >= 0.0
        # a sentence with the ratio to the ceiling, not raw keys (issue 19, item 4)
        text = dock.metrics_label.text()
        assert "share of the real-vs-real ceiling" in text and "quality/" not in text
        assert f"probe space: precision {metrics['quality/probes/precision_ratio']:.2f}" in text
        assert dock.status.text().startswith("finished: ")
    else:
        assert not any(k.startswith("quality/") for k in dock.last_event.metrics)


def _bad_inputs(tmp_path, dicom_tree, slice_cache):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no DICOM here")
    half = tmp_path / "half-cache"
    half.mkdir()
    (half / "slices.npy").write_bytes(b"")  # an interrupted prepare: no index.json
    return {  # first: nothing chosen yet (the field of a fresh dock)
        ("prepared cache", ""): "choose the prepared cache",
        ("DICOM folder", tmp_path / "missing"): "does not exist",
        ("DICOM folder", empty): "no DICOM files",
        ("DICOM folder", slice_cache): "choose 'prepared cache'",
        ("prepared cache", half): "not a complete slice cache",
        ("prepared cache", dicom_tree): "choose 'DICOM folder'",
    }


def test_bad_input_is_a_message_before_start(make_napari_viewer, sync_workers, tmp_path, dicom_tree, slice_cache):
    _viewer, dock = _dock(make_napari_viewer)
    for (source, path), message in _bad_inputs(tmp_path, dicom_tree, slice_cache).items():
        _settings(dock, tmp_path, source, path)
        dock.start()
        assert dock.state == "failed" and message in dock.status.text(), (source, path, dock.status.text())
        assert dock.run_dir is None and not (tmp_path / "runs").exists()  # no job, no run folder
        assert not dock.resume_btn.isEnabled() and dock.start_btn.isEnabled()


def test_resume_only_with_a_resumable_checkpoint(make_napari_viewer, sync_workers, tmp_path, dicom_tree):
    _viewer, dock = _dock(make_napari_viewer)
    # a DICOM folder whose only series has one slice passes the quick check but trains on nothing:
    # the job fails before any checkpoint, so there is nothing to resume
    lone = tmp_path / "lone"
    lone.mkdir()
    first = sorted(dicom_tree.rglob("*.dcm"))[0]
    (lone / first.name).write_bytes(first.read_bytes())
    _settings(dock, tmp_path, "DICOM folder", lone)
    dock.start()
    assert dock.state == "failed" and "NoUsableSlicesError" in dock.status.text(), dock.status.text()
    assert dock.run_dir is not None and not dock.resume_btn.isEnabled()
    # a run stopped after its first checkpoint can be resumed
    _settings(dock, tmp_path, "synthetic phantom", steps=40)
    dock.runner._on_event = lambda ev, orig=dock.on_event: (orig(ev), dock.stop() if getattr(ev, "step", 0) == 3 else None)
    dock.start()
    assert dock.state == "stopped", dock.status.text()
    assert dock.resume_btn.isEnabled()
    (dock.run_dir / "checkpoints" / "last.safetensors").unlink()  # the checkpoint went away: nothing to resume
    dock._set_state("stopped")
    assert not dock.resume_btn.isEnabled()


def test_cli_train_on_a_dicom_folder_prepares_a_cache_in_the_run(tmp_path, dicom_tree):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "napari_latentdirs.cli", "train", "gan", "--data", str(dicom_tree),
                          "--out", str(out), "--preset", "tiny", "--batch", "4", "--max-steps", "2", "--epochs", "5",
                          "--device", "cpu", "--no-fid", "--workers", "0"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert (out / "cache" / "index.json").is_file() and (out / "generator.safetensors").is_file()
    assert "slice cache ready: 10 slices" in res.stdout
    assert "generator quality not measured" in res.stdout and "needed" in res.stdout  # 10 slices: no held-out pair
    empty = tmp_path / "empty"
    empty.mkdir()
    res = subprocess.run([sys.executable, "-m", "napari_latentdirs.cli", "train", "gan", "--data", str(empty),
                          "--out", str(tmp_path / "run2"), "--preset", "tiny"], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "neither a slice cache nor a DICOM folder" in res.stderr
    assert Path(tmp_path / "run2").exists() is False or not any((tmp_path / "run2").iterdir())
