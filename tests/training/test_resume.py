"""An interrupted-and-resumed run equals an uninterrupted one, bit for bit (CPU)."""

from __future__ import annotations

import pytest
import torch
from _gen_helpers import ellipse_data, run_all, state_tensors, tiny_cfg

from napari_latentdirs.events import CheckpointSaved, Finished, Message, Started, Stopped
from napari_latentdirs.training.gan import train_gan
from napari_latentdirs.training.vae import train_vae

ENGINES = {"gan": train_gan, "vae": train_vae}


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_resume_is_bit_exact(tmp_path, kind):
    data = ellipse_data(16)  # 4 steps per epoch at batch 4; stop mid-epoch 2
    cfg = tiny_cfg(kind, epochs=2, sample_every=3)
    engine = ENGINES[kind]
    full = run_all(engine, cfg, data, tmp_path / "full")
    assert isinstance(full[-1], Finished) and full[-1].step == 8

    part = run_all(engine, cfg, data, tmp_path / "split", stop_after=5)
    assert isinstance(part[-1], Stopped) and part[-1].step == 5
    assert any(isinstance(e, CheckpointSaved) and e.step == 5 for e in part)
    rest = run_all(engine, cfg, data, tmp_path / "split")
    assert isinstance(rest[0], Started) and rest[0].start_step == 5
    assert any(isinstance(e, Message) and "resumed" in e.text for e in rest)
    assert isinstance(rest[-1], Finished) and rest[-1].step == 8

    a = state_tensors(tmp_path / "full" / "checkpoints" / "last.safetensors")
    b = state_tensors(tmp_path / "split" / "checkpoints" / "last.safetensors")
    model_opt = [k for k in a if k.startswith(("model/", "optim/"))]
    assert len(model_opt) > 20 and set(a) == set(b)
    for k in model_opt:  # weights, BatchNorm buffers, Adam moments and step counts
        assert torch.equal(a[k], b[k]), k
    ga = state_tensors(tmp_path / "full" / "generator.safetensors")
    gb = state_tensors(tmp_path / "split" / "generator.safetensors")
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    # the loss curves after the resume point agree too
    la = [e.losses for e in full if type(e).__name__ == "Step" and e.step > 5]
    lb = [e.losses for e in rest if type(e).__name__ == "Step"]
    assert la == lb


def test_resume_refuses_other_model(tmp_path):
    data = ellipse_data(16)
    run_all(train_gan, tiny_cfg("gan", epochs=1), data, tmp_path)
    with pytest.raises(ValueError, match="existing checkpoint"):
        run_all(train_vae, tiny_cfg("vae", epochs=1), data, tmp_path)
    with pytest.raises(ValueError, match="trained on data"):
        run_all(train_gan, tiny_cfg("gan", epochs=2), ellipse_data(16, seed=5), tmp_path)


def test_stop_before_first_step_leaves_valid_checkpoint(tmp_path):
    import threading

    from napari_latentdirs.models.registry import load_generator

    stop = threading.Event()
    stop.set()
    events = list(train_gan(tiny_cfg("gan"), ellipse_data(16), tmp_path, stop))
    assert isinstance(events[-1], Stopped) and events[-1].step == 0
    g = load_generator(events[-1].checkpoint)  # a training checkpoint loads as a generator
    assert g.generate(torch.randn(2, 32)).shape == (2, 1, 128, 128)


def test_shipped_configs_load():
    from pathlib import Path

    from napari_latentdirs.training.config import load_config

    root = Path(__file__).resolve().parents[2] / "training"
    gan = load_config(root / "gan_paper.yaml")
    vae = load_config(root / "vae_paper.yaml")
    assert (gan.epochs, gan.batch_size, gan.lr, gan.betas, gan.select_last) == (50, 128, 2e-4, (0.5, 0.999), 5)
    assert (vae.epochs, vae.batch_size, vae.lr, vae.beta) == (50, 128, 1e-4, 0.01)
    assert gan.model_config().g_width == 128 and vae.model_config().width == 64
    for name in ("gan_phantom.yaml", "vae_phantom.yaml"):
        assert load_config(root / name).preset == "tiny"
    with pytest.raises(ValueError, match="config is for .vae., not .gan."):
        load_config(root / "vae_paper.yaml", "gan")
