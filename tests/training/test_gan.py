"""Tiny DCGAN training: finite losses, events, exports, and real instance noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _gen_helpers import phantom_or_ellipses, run_all, tiny_cfg

from napari_latentdirs.events import CheckpointSaved, EpochEnd, Finished, Samples, Started, Step
from napari_latentdirs.models.dcgan import Generator
from napari_latentdirs.models.registry import load_generator
from napari_latentdirs.training.gan import GANTrainer, instance_noise_sd, train_gan
from napari_latentdirs.training.state import read_metrics


def test_tiny_gan_trains_on_phantom(tmp_path):
    data = phantom_or_ellipses(32)
    cfg = tiny_cfg("gan", epochs=3, sample_every=10)  # 8 steps/epoch of 4 -> 24 iterations
    events = run_all(train_gan, cfg, data, tmp_path)
    assert isinstance(events[0], Started) and events[0].total_steps == 24
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.step for s in steps] == list(range(1, 25))
    for s in steps:
        assert set(s.losses) >= {"loss_d", "loss_g", "d_real", "d_fake", "noise_sd"}
        assert all(math.isfinite(v) for v in s.losses.values())
    assert sum(isinstance(e, EpochEnd) for e in events) == 3
    assert sum(isinstance(e, CheckpointSaved) for e in events) >= 3
    samples = [e for e in events if isinstance(e, Samples)]
    assert samples and samples[0].images.shape == (4, 128, 128) and np.abs(samples[0].images).max() <= 1
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.step == 24
    G = load_generator(fin.output)
    assert isinstance(G, Generator) and G.meta["epoch"] == 3 and G.meta["data_fingerprint"] == data.fingerprint
    assert G.generate(torch.randn(2, 32)).shape == (2, 1, 128, 128)
    logged = read_metrics(tmp_path / "metrics.csv")
    assert len(logged["train/loss_d"]) == 24 and "epoch/loss_g" in logged
    assert any((tmp_path / "tb").iterdir())


def test_instance_noise_schedule():
    assert instance_noise_sd(0, 100, 0.1) == pytest.approx(0.1)
    assert instance_noise_sd(25, 100, 0.1) == pytest.approx(0.05)
    assert 0 < instance_noise_sd(49, 100, 0.1) < instance_noise_sd(10, 100, 0.1)
    assert instance_noise_sd(50, 100, 0.1) == 0.0 and instance_noise_sd(99, 100, 0.1) == 0.0


def test_instance_noise_really_reaches_the_discriminator(tmp_path):
    """Hook D's input: noisy before the midpoint, exactly clean from it on."""
    data = phantom_or_ellipses(8)
    cfg = tiny_cfg("gan", epochs=10, batch_size=8, augment=False)  # 10 steps, midpoint 5
    trainer = GANTrainer(cfg, data, tmp_path)
    seen: list[torch.Tensor] = []
    fakes: list[torch.Tensor] = []
    trainer.modules["D"].register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    trainer.modules["G"].register_forward_hook(lambda m, a, out: fakes.append(out.detach().clone()))
    x = torch.stack([data[i] for i in range(8)])
    for step, expect_noise in [(0, True), (3, True), (5, False), (9, False)]:
        seen.clear()
        fakes.clear()
        trainer.train_step(x, step)
        assert len(seen) == 3 and len(fakes) == 1  # D(real), D(fake) for D, D(fake) for G
        deltas = [seen[0] - x, seen[1] - fakes[0], seen[2] - fakes[0]]
        sd = trainer.noise_sd(step)
        for d in deltas:
            if expect_noise:
                assert abs(d.std().item() - sd) < 0.1 * sd and abs(d.mean().item()) < 0.1 * sd
            else:
                assert sd == 0.0 and torch.equal(d, torch.zeros_like(d))
        if expect_noise:  # three independent draws
            assert not torch.equal(deltas[0], deltas[1]) and not torch.equal(deltas[1], deltas[2])
