"""Reverse latent search, interpolation and the memorization check on generators with known answers."""

from __future__ import annotations

import numpy as np
import torch

from napari_latentdirs.analysis.interpolation import interpolate, lerp, slerp
from napari_latentdirs.analysis.inversion import InversionConfig, embed, reverse_search
from napari_latentdirs.analysis.memorization import memorization, nearest_distances
from napari_latentdirs.models.analytic import analytic_generator


def test_reverse_search_recovers_generated_images():
    g = analytic_generator(size=32)
    z_true = torch.randn(4, g.latent_dim, generator=torch.Generator().manual_seed(3)) * 0.8
    x = g.generate(z_true)[:, 0].numpy()
    emb = reverse_search(g, x, InversionConfig(restarts=2, steps=60, lr=0.15))
    assert emb.method == "reverse-search"
    assert emb.restart_mse.shape == (2, 4)
    # The best restart is kept per image, and it reconstructs the image closely.
    np.testing.assert_allclose(emb.mse, emb.restart_mse.min(0), rtol=1e-5)
    start_mse = ((g.generate(torch.zeros(4, g.latent_dim))[:, 0].numpy() - x) ** 2).mean((1, 2))
    assert np.all(emb.mse < 0.05 * start_mse), (emb.mse, start_mse)
    # The six live coordinates are recovered; the dead ones do not matter to G.
    rec = g.factors(torch.from_numpy(emb.z))
    truth = g.factors(z_true)
    for name in ("x_position", "y_position", "width"):
        np.testing.assert_allclose(rec[name].numpy(), truth[name].numpy(), atol=0.03)


def test_embed_uses_the_encoder_when_there_is_one():
    class Enc:
        latent_dim = 2

        def encode(self, x):
            return x.flatten(1)[:, :2]

        def generate(self, z):
            return torch.nn.functional.pad(z, (0, 2))[:, None, None, :].expand(-1, 1, 2, 4)[:, :, :, :4].reshape(-1, 1, 2, 4)

    x = np.arange(16, dtype=np.float32).reshape(2, 2, 4) / 16
    emb = embed(Enc(), x)
    assert emb.method == "encoder"
    np.testing.assert_allclose(emb.z, x.reshape(2, -1)[:, :2])


def test_interpolation_paths():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    p = slerp(a, b, 5)
    np.testing.assert_allclose(p[0], a, atol=1e-6)
    np.testing.assert_allclose(p[-1], b, atol=1e-6)
    np.testing.assert_allclose(lerp(a, b, 3)[1], [0.5, 1.0])
    g = analytic_generator(size=32)
    z = torch.randn(2, g.latent_dim, generator=torch.Generator().manual_seed(1))
    pair = g.generate(z)[:, 0].numpy()
    it = interpolate(g, pair, steps=6, cfg=InversionConfig(restarts=1, steps=60, lr=0.15))
    assert it.frames.shape == (6, 32, 32)
    # The path starts and ends at the embedded slices.
    assert np.abs(it.frames[0] - pair[0]).mean() < 0.05 and np.abs(it.frames[-1] - pair[1]).mean() < 0.05
    assert 1.0 <= it.smoothness < 3.0


def test_memorization_detects_copies_and_not_fresh_samples():
    g = analytic_generator(size=32)
    gen = torch.Generator().manual_seed(0)
    train = g.generate(torch.randn(300, g.latent_dim, generator=gen))[:, 0].numpy()
    held = g.generate(torch.randn(60, g.latent_dim, generator=gen))[:, 0].numpy()
    fresh = g.generate(torch.randn(60, g.latent_dim, generator=gen))[:, 0].numpy()
    copies = train[:60] + np.random.default_rng(0).normal(0, 1e-3, train[:60].shape).astype(np.float32)
    m_copy = memorization(copies, train, held, size=32)
    m_fresh = memorization(fresh, train, held, size=32)
    assert m_copy.ratio < 0.1 and m_copy.copies > 0.9
    assert 0.6 < m_fresh.ratio < 1.6 and m_fresh.copies < 0.2
    np.testing.assert_array_equal(m_copy.nearest_index, np.arange(60))


def test_nearest_distances_matches_brute_force():
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(7, 8, 8)).astype(np.float32), rng.normal(size=(20, 8, 8)).astype(np.float32)
    d, i = nearest_distances(q, r, size=8)
    brute = np.sqrt(((q[:, None] - r[None]) ** 2).mean((2, 3)))
    np.testing.assert_allclose(d, brute.min(1), rtol=1e-4)
    np.testing.assert_array_equal(i, brute.argmin(1))
