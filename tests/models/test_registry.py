"""Generator files: round trip, frozen eval models, fingerprints, refusal of pickles."""

from __future__ import annotations

import pickle

import pytest
import torch

from napari_latentdirs.models import registry
from napari_latentdirs.models.dcgan import Generator, dcgan_config
from napari_latentdirs.models.vae import VAE, vae_config
from napari_latentdirs.utils.weights import IncompleteCheckpointError, UnsafeWeightsError


@pytest.mark.parametrize("kind", ["dcgan", "vae"])
def test_round_trip_frozen(tmp_path, kind):
    model = Generator(dcgan_config("tiny")) if kind == "dcgan" else VAE(vae_config("tiny"))
    # move BatchNorm running stats away from their defaults so they must be saved too
    model.train()
    with torch.no_grad():
        model.generate(torch.randn(8, 32))
    path = registry.save_generator(tmp_path / "g.safetensors", model, {"epoch": 3})
    loaded = registry.load_generator(path)
    assert type(loaded) is type(model) and loaded.latent_dim == 32
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.meta["kind"] == kind and loaded.meta["epoch"] == 3
    assert loaded.meta["preprocessing"]["hu_min"] == -1000.0
    model.eval()
    z = torch.randn(4, 32)
    assert torch.equal(loaded.generate(z), model.generate(z))
    if kind == "vae":
        x = torch.rand(2, 1, 128, 128) * 2 - 1
        assert torch.equal(loaded.encode(x), model.encode(x))


def test_fingerprint_and_run_folder(tmp_path):
    g1 = Generator(dcgan_config("tiny"))
    g2 = Generator(dcgan_config("tiny"))
    p1 = registry.save_generator(tmp_path / "a.safetensors", g1)
    p2 = registry.save_generator(tmp_path / "run" / registry.GENERATOR_FILE, g2)
    f1, f2 = registry.generator_fingerprint(p1), registry.generator_fingerprint(p2)
    assert len(f1) == 64 and f1 != f2
    assert registry.generator_fingerprint(tmp_path / "run") == f2
    assert isinstance(registry.load_generator(tmp_path / "run"), Generator)
    with pytest.raises(FileNotFoundError, match="generator.safetensors"):
        registry.load_generator(tmp_path)


def test_pickles_and_tampering_refused(tmp_path):
    bad = tmp_path / "g.pt"
    bad.write_bytes(pickle.dumps({"x": 1}, protocol=4))
    with pytest.raises(UnsafeWeightsError):
        registry.load_generator(bad)
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(pickle.dumps({"x": 1}, protocol=4))
    with pytest.raises(UnsafeWeightsError):
        registry.load_generator(disguised)
    p = registry.save_generator(tmp_path / "ok.safetensors", Generator(dcgan_config("tiny")))
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(IncompleteCheckpointError):
        registry.load_generator(p)
