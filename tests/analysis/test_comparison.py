"""Discovered-versus-random comparison against the phantom's ground truth.

The phantom rendered along its eight known factor axes plays a "discovered"
set that is perfect by construction; random unit directions in the same
10-d latent space play the random sets.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_latentdirs.analysis.comparison import Comparison, compare_sets
from napari_latentdirs.analysis.labelling import LabelConfig, label_directions
from napari_latentdirs.phantom.factor_generator import AXIS_FACTORS, PhantomFactorGenerator
from napari_latentdirs.probes.phantom import phantom_probes

K = 8


def _random_set(seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((10, K))
    return a / np.linalg.norm(a, axis=0)


@pytest.fixture(scope="module")
def labelled():
    g = PhantomFactorGenerator()
    probes = phantom_probes()

    def label(A, seed):
        return label_directions(g, A, probes, LabelConfig(n_latents=12, alphas=(-2.0, 2.0), n_boot=50, seed=seed))

    known = [label(g.factor_directions(), seed) for seed in range(3)]
    rand_a = [label(_random_set(100 + s), s) for s in range(3)]
    rand_b = [label(_random_set(200 + s), s) for s in range(3)]
    return probes, known, rand_a, rand_b


def test_known_factor_directions_beat_random_on_every_factor(labelled):
    probes, known, rand_a, _ = labelled
    cmp = compare_sets(known, rand_a, probes, n_boot=300, seed=0)
    assert [r.factor for r in cmp.rows] == list(AXIS_FACTORS)
    for r in cmp.rows:
        assert r.difference > 0 and r.ci[0] > 0, r  # the CI excludes zero, on the right side
        assert r.ci[0] <= r.difference <= r.ci[1], r
        assert r.found_discovered == 3, r  # every seed labels every factor
    assert cmp.n_discovered == cmp.n_random == 3


def test_random_against_random_shows_no_difference(labelled):
    probes, _, rand_a, rand_b = labelled
    cmp = compare_sets(rand_a, rand_b, probes, n_boot=300, seed=0)
    for r in cmp.rows:
        assert r.ci[0] <= 0 <= r.ci[1], r


def test_comparison_round_trips_and_refuses_missing_slopes(labelled):
    probes, known, rand_a, _ = labelled
    cmp = compare_sets(known[:1], rand_a[:1], probes, n_boot=20)
    assert Comparison.from_dict(cmp.to_dict()) == cmp
    old = known[0].from_dict({**known[0].to_dict(), "slopes": None})
    with pytest.raises(ValueError, match="slopes"):
        compare_sets([old], rand_a, probes, n_boot=5)
