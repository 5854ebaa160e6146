"""The supervised ceiling: probe regression (directions/supervised.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_latentdirs.directions import METHODS, method_spec
from napari_latentdirs.directions.supervised import conditional_directions, regress_factors
from napari_latentdirs.models.analytic import analytic_generator


def test_regression_recovers_linear_factors_and_their_r2():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2000, 6))
    w = np.zeros((6, 2))
    w[0, 0], w[1, 1] = 1.0, 1.0
    f = z @ w + 0.1 * rng.standard_normal((2000, 2))
    f[:50, 1] = np.nan  # a probe that failed on some images: those rows drop out of that factor
    normals, r2 = regress_factors(z, f)
    assert np.argmax(np.abs(normals[:, 0])) == 0 and np.argmax(np.abs(normals[:, 1])) == 1
    assert r2 == pytest.approx([0.99, 0.99], abs=0.01)


def test_conditional_directions_leave_the_other_factors_unchanged():
    rng = np.random.default_rng(1)
    normals = rng.standard_normal((8, 3))
    A = conditional_directions(normals)
    assert np.allclose(np.linalg.norm(A, axis=0), 1.0)
    for j in range(3):
        moves = normals.T @ A[:, j]  # change of each factor's linear prediction along direction j
        assert moves[j] > 0  # a positive shift increases its own factor
        assert np.allclose(np.delete(moves, j), 0.0, atol=1e-9)  # and no other


def test_probe_regression_finds_the_analytic_generators_true_directions():
    G = analytic_generator(size=32)
    ds = method_spec("probe-regression").resolve()(G, None, n_samples=1000, seed=0)
    true = G.first_layer.weight.detach().numpy()  # (6, d): row j reads factor j from z
    assert ds.method == "probe-regression" and ds.K == 6
    assert ds.labels == ["x_position", "y_position", "width", "height", "rotation", "intensity"]
    cos = np.abs(true @ ds.A) / np.linalg.norm(true, axis=1, keepdims=True)
    assert np.all(np.diag(cos) > 0.95)
    assert min(ds.meta["r2"].values()) > 0.8 and ds.meta["weak"] == []
    assert ds.meta["probe_set"] == "ellipse"


def test_probe_regression_is_in_the_registry_and_keeps_the_best_k():
    assert "probe-regression" in METHODS and not METHODS["probe-regression"].learned
    G = analytic_generator(size=32)
    ds = method_spec("probe-regression").resolve()(G, 3, n_samples=600, seed=1)
    assert ds.K == 3 and len(ds.labels) == 3
    r2 = ds.meta["r2"]
    assert set(r2) == set(ds.labels)
