"""MIG, DCI and selectivity on constructed codes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import hadamard

from napari_latentdirs.analysis.disentanglement import dci, lasso, mig, selectivity


def _factors(n: int = 20000, k: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, k))


def test_mig_perfect_code_is_one():
    v = _factors()
    # Codes are the factors, permuted and rescaled: every factor lives in exactly one code.
    z = 3.0 * v[:, [2, 0, 3, 1]] + 1.0
    res = mig(z, v)
    # The plug-in MI of independent factors is biased up by ~(bins-1)^2 / 2N nats, so
    # the finite-sample MIG sits just below its exact value of 1.
    assert res.mig == pytest.approx(1.0, abs=0.01)
    assert list(res.best_code) == [1, 3, 0, 2]
    # The informative code carries the factor's full entropy.
    top = res.mi[res.best_code, np.arange(4)]
    assert top == pytest.approx([np.log(20)] * 4, abs=0.01)


def test_mig_fully_mixed_code_is_near_zero():
    v = _factors(k=4)
    z = v @ hadamard(4).astype(float)  # every code is an equal-magnitude mix of all factors
    res = mig(z, v)
    assert res.mig < 0.05
    # ... while the same factors in a clean code score high: the estimator is not just returning 0.
    assert mig(v, v).mig > 0.95


def test_mig_duplicated_code_has_zero_gap():
    v = _factors(k=2)
    z = np.concatenate([v, v[:, :1]], axis=1)  # factor 0 encoded twice: no gap
    res = mig(z, v)
    assert res.per_factor[0] == pytest.approx(0.0, abs=1e-9)
    assert res.per_factor[1] == pytest.approx(1.0, abs=0.01)


def test_dci_perfect_code():
    v = _factors()
    rng = np.random.default_rng(1)
    z = v[:, [1, 0, 3, 2]] * np.array([2.0, -1.0, 0.5, 4.0]) + 0.01 * rng.normal(size=v.shape)
    res = dci(z, v)
    assert res.disentanglement > 0.98
    assert res.completeness > 0.98
    assert res.informativeness < 0.05
    assert set(np.argmax(res.importance, axis=0)) == {0, 1, 2, 3}


def test_dci_fully_mixed_code():
    v = _factors()
    z = v @ hadamard(4).astype(float)
    res = dci(z, v, alpha=1e-4)
    assert res.disentanglement < 0.02
    assert res.completeness < 0.02
    # Mixed but invertible: still fully informative.
    assert res.informativeness < 0.05


def test_dci_ignores_noise_codes_in_disentanglement_weighting():
    v = _factors(k=2)
    rng = np.random.default_rng(2)
    z = np.concatenate([v, rng.normal(size=(v.shape[0], 3))], axis=1)
    res = dci(z, v)
    assert res.disentanglement > 0.95
    assert res.completeness > 0.95


def test_lasso_matches_least_squares_without_penalty():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 5))
    w_true = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    y = X @ w_true
    w = lasso(X - X.mean(0), y - y.mean(), alpha=0.0, iters=2000, tol=1e-12)
    np.testing.assert_allclose(w, np.linalg.lstsq(X - X.mean(0), y - y.mean(), rcond=None)[0], atol=1e-6)


def test_selectivity():
    eff = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.1, 0.1, 0.1], [0.001, 0.0, 0.0001]])
    res = selectivity(eff, ["a", "b", "c"], min_effect=0.01)
    assert res.per_factor["a"] == pytest.approx(1.0)
    assert res.per_factor["b"] == pytest.approx(0.5)
    assert res.per_factor["c"] == pytest.approx(1 / 3)
    assert res.best_direction["a"] == 0
    assert res.mean == pytest.approx((1 + 0.5 + 1 / 3) / 3)


# -- issue 18: controls beside MIG and DCI ------------------------------------------------------------

def test_controls_keep_the_spectrum_or_flatten_it():
    from napari_latentdirs.analysis.disentanglement import (
        orthonormalised,
        same_spectrum_random,
        unit_columns,
    )

    A = np.random.default_rng(0).standard_normal((32, 12)) @ np.diag(np.linspace(0.1, 3, 12))
    s = np.linalg.svd(unit_columns(A), compute_uv=False)
    np.testing.assert_allclose(np.linalg.svd(same_spectrum_random(A, 1), compute_uv=False), s, rtol=1e-10)
    np.testing.assert_allclose(np.linalg.svd(orthonormalised(A), compute_uv=False), np.ones(12), rtol=1e-10)
    Q, _ = np.linalg.qr(A)
    np.testing.assert_allclose(np.abs(orthonormalised(Q)), np.abs(Q), atol=1e-10)  # already orthonormal: unchanged


def test_mig_beside_its_noise_floor():
    from napari_latentdirs.analysis.disentanglement import MIG_MIN_SAMPLES, scores_with_controls

    rng = np.random.default_rng(0)
    z = rng.standard_normal((MIG_MIN_SAMPLES, 8))
    factors = z[:, :3] + 0.1 * rng.standard_normal((MIG_MIN_SAMPLES, 3))  # each factor is one latent axis
    out = scores_with_controls(z, factors, np.eye(8))
    assert out["mig"] > 0.5 and out["mig_floor"] < 0.01 and out["n_samples"] == MIG_MIN_SAMPLES
    assert out["dci_d"] == pytest.approx(out["dci_d_ortho"])  # the identity is its own polar factor
    # Pure noise: the measured MIG is no larger than a few times its floor.
    noise = scores_with_controls(z, rng.standard_normal((MIG_MIN_SAMPLES, 3)), np.eye(8))
    assert noise["mig"] < 5 * noise["mig_floor"] + 0.005
