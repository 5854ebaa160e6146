"""Baseline direction methods (random, SeFa, GANSpace, PCA of encoded slices) as direction sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_latentdirs.directions.baselines import (
    compute_baseline,
    encoded_pca_directions,
    first_layer_matrix,
    ganspace_directions,
    random_directions,
    sefa_directions,
)
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.models.analytic import AnalyticEllipseGenerator, best_abs_cosines
from napari_latentdirs.models.dcgan import Generator, dcgan_config
from napari_latentdirs.models.vae import VAE, vae_config


def _unit(A):
    np.testing.assert_allclose(np.linalg.norm(A, axis=0), 1.0, atol=1e-5)


def test_random_is_seeded_unit_and_round_trips(tmp_path):
    a = random_directions(32, 40, seed=1)
    _unit(a.A)
    assert np.array_equal(a.A, random_directions(32, 40, seed=1).A)
    assert not np.array_equal(a.A, random_directions(32, 40, seed=2).A)
    b = DirectionSet.load(a.save(tmp_path / "r.safetensors"))
    assert b.method == "random" and np.array_equal(a.A, b.A)


def test_sefa_on_the_analytic_generator_finds_exactly_the_live_subspace():
    G = AnalyticEllipseGenerator()
    ds = sefa_directions(G, 8)
    ev = ds.meta["eigenvalues"]
    assert ev[:6] == pytest.approx([1.0] * 6) and ev[6:] == pytest.approx([0.0, 0.0], abs=1e-9)
    live = ds.A[list(G.live_coords)]
    np.testing.assert_allclose(np.linalg.norm(live[:, :6], axis=0), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="at most 32"):
        sefa_directions(G, 33)


def test_sefa_reads_a_conv_transpose_first_layer_as_its_weight_matrix():
    G = Generator(dcgan_config("tiny"))
    W = G.first_layer.weight.detach().double().reshape(G.latent_dim, -1).T  # (F, d)
    torch.testing.assert_close(first_layer_matrix(G), W)
    ds = sefa_directions(G, 5)
    _, _, vh = torch.linalg.svd(W)
    cos = np.abs(np.sum(ds.A * vh[:5].T.float().numpy(), axis=0))
    np.testing.assert_allclose(cos, 1.0, atol=1e-4)


def test_ganspace_equals_sefa_for_a_linear_first_layer_with_a_clear_spectrum():
    G = AnalyticEllipseGenerator()
    q, _ = torch.linalg.qr(torch.randn(32, 6, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():  # six well-separated singular values along random latent directions
        G.first_layer.weight.copy_(torch.diag(torch.tensor([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])) @ q.T)
    gs = ganspace_directions(G, 4, n_samples=4000, seed=3)
    sf = sefa_directions(G, 4)
    _unit(gs.A)
    cos = np.abs(np.sum(gs.A * sf.A, axis=0))
    assert cos.min() > 0.99, cos
    assert gs.meta["explained_variance"] == sorted(gs.meta["explained_variance"], reverse=True)


def test_ganspace_recovers_the_analytic_live_subspace():
    G = AnalyticEllipseGenerator()
    gs = ganspace_directions(G, 6, n_samples=2000)
    # Degenerate spectrum: any rotation of the live subspace is right, so test the subspace.
    # The regression leaves sampling noise of about 26 dead dims / 2000 samples ~ 0.013 outside it.
    live_energy = (gs.A[list(G.live_coords)] ** 2).sum(axis=0)
    assert live_energy.min() > 0.95, live_energy
    assert best_abs_cosines(torch.from_numpy(gs.A), G.factor_directions()).min() > 0.2


def test_pca_of_encoded_slices_matches_the_encoded_covariance():
    torch.manual_seed(0)
    vae = VAE(vae_config("tiny")).eval()
    yy, xx = np.mgrid[-1:1:128j, -1:1:128j]
    rng = np.random.default_rng(0)
    slices = np.stack([np.where((xx / rng.uniform(0.3, 0.9)) ** 2 + (yy / rng.uniform(0.3, 0.9)) ** 2 < 1, 0.5, -1.0)
                       for _ in range(40)]).astype(np.float32)
    ds = encoded_pca_directions(vae, slices, 3, batch_size=16)
    assert ds.method == "pca-encoded"
    with torch.no_grad():
        mu = vae.encode(torch.from_numpy(slices)[:, None]).double().numpy()
    cov = np.cov(mu, rowvar=False)
    evals, evecs = np.linalg.eigh(cov)
    top = evecs[:, ::-1][:, :3]
    np.testing.assert_allclose(np.abs(np.sum(top * ds.A, axis=0)), 1.0, atol=1e-3)
    np.testing.assert_allclose(ds.meta["explained_variance"], evals[::-1][:3], rtol=1e-3)
    with pytest.raises(TypeError, match="encode"):
        encoded_pca_directions(AnalyticEllipseGenerator(), slices)


def test_dispatch_and_errors():
    G = AnalyticEllipseGenerator()
    assert compute_baseline("sefa", G, 3).method == "sefa"
    assert compute_baseline("random", G, 3, generator="abc").generator == "abc"
    with pytest.raises(ValueError, match="unknown baseline"):
        compute_baseline("ica", G)
    with pytest.raises(ValueError, match="slices"):
        compute_baseline("pca-encoded", G)
