"""The HU window a cache is prepared with travels with the data (issue #13).

A cache prepared from a phantom DICOM tree with a non-default window (-1000..400)
records it; a tiny generator trained on it records it in its checkpoint and its
exported file; direction sets copy it; and the navigator's frames and the DICOM
export decode to HU with it, not with the default [-1000, 2000].
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from _gen_helpers import run_all, tiny_cfg

from napari_latentdirs.analysis import export as ex
from napari_latentdirs.analysis.navigation import StackRequest, StackStreamer, stack
from napari_latentdirs.data.cache import SliceCache
from napari_latentdirs.data.dataset import SliceDataset
from napari_latentdirs.data.prepare import PrepareConfig, prepare
from napari_latentdirs.data.preprocess import DEFAULT, Preprocessing
from napari_latentdirs.directions.baselines import compute_baseline
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.models.registry import (
    FORMAT,
    describe,
    load_generator,
    preprocessing_of,
    save_generator,
)
from napari_latentdirs.training.gan import train_gan
from napari_latentdirs.utils.weights import save_weights

WINDOW = Preprocessing(hu_min=-1000.0, hu_max=400.0, size=32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from napari_latentdirs.phantom.tree import write_phantom_tree

    base = tmp_path_factory.mktemp("travels")
    write_phantom_tree(base / "tree", patients=2, seed=3, matrix=48, n_slices=6, workers=1)
    cfg = PrepareConfig(size=32, hu_min=WINDOW.hu_min, hu_max=WINDOW.hu_max, test_fraction=0.5)
    prepare(base / "tree", base / "cache", workers=1, config=cfg, progress=False)
    cache = SliceCache(base / "cache")
    data = SliceDataset(cache, split="train")
    run = base / "run"
    run_all(train_gan, tiny_cfg("gan", epochs=1, max_steps=1, n_samples=2, model={"image_size": 32}), data, run)
    return cache, run


def test_cache_and_generator_record_the_window(trained):
    cache, run = trained
    assert cache.preprocessing == WINDOW
    assert json.loads((cache.path / "index.json").read_text())["preprocessing"] == WINDOW.to_dict()
    # the cached values are the window's model space: soft tissue (~40 HU) sits high in [-1, 1]
    hu = cache.preprocessing.model_to_hu(cache.read_many(np.arange(len(cache))).astype(np.float32))
    assert hu.min() >= -1000.5 and hu.max() <= 400.5
    ckpt = json.loads((run / "checkpoints" / "last.json").read_text())
    assert ckpt["preprocessing"] == WINDOW.to_dict()
    G = load_generator(run)
    assert G.meta["preprocessing"] == WINDOW.to_dict()
    assert preprocessing_of(G) == WINDOW == preprocessing_of(run) == preprocessing_of(G.meta)
    assert load_generator(run / "checkpoints" / "last.safetensors").meta["preprocessing"] == WINDOW.to_dict()
    # saving a loaded generator again keeps its record
    again = save_generator(run.parent / "again.safetensors", G)
    assert preprocessing_of(again) == WINDOW


def test_direction_sets_copy_the_window(trained, tmp_path):
    _, run = trained
    G = load_generator(run)
    ds = compute_baseline("random", G, 3, seed=1)
    assert ds.preprocessing == WINDOW.to_dict()
    loaded = DirectionSet.load(ds.save(tmp_path / "dirs.safetensors"))
    assert loaded.preprocessing == WINDOW.to_dict() and preprocessing_of(loaded) == WINDOW


def test_navigator_frames_and_dicom_export_decode_with_the_window(trained, tmp_path):
    _, run = trained
    G = load_generator(run)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, G.latent_dim)).astype(np.float32)
    d = rng.standard_normal(G.latent_dim).astype(np.float32)
    shifts = np.array([-2.0, 0.0, 2.0], np.float32)
    frames = stack(G, z, d, shifts)  # what the navigator streams (StackStreamer, output "hu")
    assert StackStreamer(G).preprocessing == WINDOW
    with torch.inference_mode():
        x = G.generate(torch.from_numpy(z[:1] + shifts[:, None] * d[None]))[:, 0].numpy()
    want = WINDOW.model_to_hu(x)
    np.testing.assert_allclose(frames[0], want, atol=1e-3)
    # the default window would be far off (1600 HU per model unit instead of 700)
    assert np.abs(frames[0] - DEFAULT.model_to_hu(x)).max() > 100
    assert frames.min() >= -1000.5 and frames.max() <= 400.5
    # streamed chunks agree with the blocking stack
    chunks = list(StackStreamer(G, chunk_size=2).stream(StackRequest(z, d, shifts)))
    got = np.empty_like(frames)
    for c in chunks:
        got[c.latent_idx, c.shift_idx] = c.frames
    np.testing.assert_array_equal(got, frames)
    # the DICOM export of a sweep holds those HU (integers through rescale slope/intercept)
    from napari_latentdirs.dicom.series import read_series

    files = ex.write_dicom_series(tmp_path / "sweep.dcmdir", frames[0], slice_mm=1.0)
    np.testing.assert_allclose(read_series(files).hu, want, atol=0.51)


def test_an_older_generator_file_without_a_record_falls_back_to_the_default(trained, tmp_path, caplog):
    _, run = trained
    G = load_generator(run)
    old = tmp_path / "old.safetensors"
    save_weights(old, dict(G.state_dict()), {"format": FORMAT, **describe(G), "epoch": 1})  # no "preprocessing"
    G_old = load_generator(old)
    assert "preprocessing" not in G_old.meta
    with caplog.at_level(logging.INFO, logger="napari_latentdirs.models.registry"):
        assert preprocessing_of(G_old) == DEFAULT
        assert preprocessing_of(old) == DEFAULT
        streamer = StackStreamer(G_old)
    assert streamer.preprocessing == DEFAULT
    notes = [r for r in caplog.records if "records no preprocessing" in r.getMessage()]
    assert len(notes) == 3 and str(old) in notes[1].getMessage()
    # a malformed record is an error, not a silent default
    with pytest.raises(ValueError, match="HU window"):
        preprocessing_of({"preprocessing": {"hu_min": 400.0, "hu_max": -1000.0}})


def test_prepare_cli_hu_window(tmp_path):
    from napari_latentdirs.cli import main as cli_main
    from napari_latentdirs.phantom.tree import write_phantom_tree

    write_phantom_tree(tmp_path / "tree", patients=1, seed=2, matrix=32, n_slices=3, workers=1)
    args = ["prepare", str(tmp_path / "tree"), str(tmp_path / "c"), "--workers", "1", "--no-progress", "--size", "16"]
    for bad in (["400", "-1000"], ["10", "10"], ["nan", "10"]):
        with pytest.raises(SystemExit, match="--hu-window needs two finite numbers MIN < MAX"):
            cli_main([*args, "--hu-window", *bad])
    assert not (tmp_path / "c").exists()
    assert cli_main([*args, "--hu-window", "-1350", "150"]) == 0
    assert SliceCache(tmp_path / "c").preprocessing == Preprocessing(hu_min=-1350.0, hu_max=150.0, size=16)


def test_voynov_direction_set_records_the_generators_window(trained, tmp_path):
    from napari_latentdirs.directions.voynov import DirectionsConfig, train_directions
    from napari_latentdirs.events import Finished, Samples

    _, run = trained
    cfg = DirectionsConfig(K=2, steps=2, batch_size=4, eval_batches=1, log_every=1, checkpoint_every=0,
                           sample_every=1, generator_kind="gan", generator_path=str(run), device="cpu", seed=1)
    events = list(train_directions(cfg, load_generator(run), tmp_path / "dirs"))
    assert all(e.preprocessing == WINDOW.to_dict() for e in events if isinstance(e, Samples))
    fin = events[-1]
    assert isinstance(fin, Finished)
    assert DirectionSet.load(fin.output).preprocessing == WINDOW.to_dict()
