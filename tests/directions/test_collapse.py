"""Effective rank, largest |cos| and duplicate groups of a direction matrix, on matrices with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_latentdirs.directions.collapse import DUPLICATE_COS, collapse_of


def test_orthonormal_columns_have_full_rank_and_no_groups():
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((64, 32)))
    c = collapse_of(Q * np.arange(1, 33))  # column norms do not matter
    assert c.effective_rank == pytest.approx(32.0, rel=1e-9)
    assert c.max_abs_cos < 1e-9 and c.duplicate_groups == []


def test_random_columns_are_high_rank():
    d, K = 128, 32
    c = collapse_of(np.random.default_rng(1).standard_normal((d, K)))
    # Marchenko-Pastur: K d / (K + d) = 25.6 for K = 32, d = 128; a seeded draw lands within a few.
    assert 22.0 < c.effective_rank < 29.0
    assert c.max_abs_cos < DUPLICATE_COS and c.n_groups == 0


def test_thirty_two_copies_are_rank_one_and_one_group():
    v = np.random.default_rng(2).standard_normal(64)
    signs = np.where(np.arange(32) % 2, -1.0, 1.0)  # a flipped copy is the same change, shifted the other way
    c = collapse_of(np.outer(v, signs * np.linspace(0.5, 3.0, 32)))
    assert c.effective_rank == pytest.approx(1.0, abs=1e-9)
    assert c.max_abs_cos == pytest.approx(1.0)
    assert c.duplicate_groups == [list(range(32))] and c.largest_group == 32


def test_groups_are_transitive_and_separate():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(64), rng.standard_normal(64)
    near = a + 0.1 * np.linalg.norm(a) / 8 * rng.standard_normal(64)
    A = np.stack([a, b, near, b * -2, rng.standard_normal(64)], axis=1)
    c = collapse_of(A)
    assert c.duplicate_groups == [[0, 2], [1, 3]]
    assert "2 duplicate group(s)" in c.line()


def test_bad_matrices_are_refused():
    with pytest.raises(ValueError, match="zero columns"):
        collapse_of(np.zeros((8, 3)))
    with pytest.raises(ValueError, match="NaN"):
        collapse_of(np.full((8, 3), np.nan))
    with pytest.raises(ValueError, match="matrix"):
        collapse_of(np.ones(8))
