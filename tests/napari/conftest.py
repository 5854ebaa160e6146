"""Fixtures for the napari widget tests: tiny generators and direction sets, sync switch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_latentdirs.directions.set import DirectionSet


@pytest.fixture
def sync_workers(monkeypatch):
    monkeypatch.setenv("LATENTDIRS_SYNC_WORKERS", "1")


@pytest.fixture
def threaded_workers(monkeypatch):
    monkeypatch.setenv("LATENTDIRS_SYNC_WORKERS", "0")


@pytest.fixture(scope="session")
def tiny_gan():
    from napari_latentdirs.models.dcgan import Generator, dcgan_config

    torch.manual_seed(0)
    g = Generator(dcgan_config("tiny", image_size=32)).eval().requires_grad_(False)
    # DCGAN's N(0, 0.02) init gives near-constant images; larger weights give an
    # untrained generator visible structure that changes along a direction
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.ConvTranspose2d):
                m.weight.mul_(12)
    return g


@pytest.fixture(scope="session")
def tiny_dirs(tiny_gan):
    A = np.random.default_rng(0).standard_normal((tiny_gan.latent_dim, 3)).astype(np.float32)
    A /= np.linalg.norm(A, axis=0, keepdims=True)
    return DirectionSet(A, method="unit", labels=["width", "", "rotation"])


@pytest.fixture
def saved_model(tmp_path, tiny_gan, tiny_dirs):
    from napari_latentdirs.models.registry import generator_fingerprint, save_generator

    g = save_generator(tmp_path / "gen.safetensors", tiny_gan)
    ds = DirectionSet(tiny_dirs.A, tiny_dirs.method, generator_fingerprint(g), tiny_dirs.labels)
    d = ds.save(tmp_path / "dirs.safetensors")
    return g, d


@pytest.fixture(autouse=True)
def private_settings(tmp_path_factory, monkeypatch):
    """Docks remember settings: never in the real user's config folder during tests."""
    monkeypatch.setenv("LATENTDIRS_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
