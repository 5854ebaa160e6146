"""Discovered-versus-random comparison, against generators whose true directions are known.

The analytic ellipse generator (six factors on six known latent coordinates,
``models.analytic``) and the phantom's factor generator (eight factor axes,
``phantom.factor_generator``) play generators; sets holding their true factor
directions play perfect discovered sets, random unit directions the random
sets. All sets of one comparison are measured on the same latents (one
labelling seed), as in the main job.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_latentdirs.analysis.comparison import (
    Comparison,
    best_per_factor,
    compare_sets,
    equal_change_scale,
    holm,
    mean_image_change,
)
from napari_latentdirs.analysis.labelling import LabelConfig, label_directions
from napari_latentdirs.directions.collapse import collapse_of
from napari_latentdirs.models.analytic import FACTOR_NAMES, analytic_generator
from napari_latentdirs.probes.ellipse import ellipse_probes

N_RANDOM = 10  # random sets are cheap: at least 10 per comparison
N_KNOWN = 3  # and at least 3 discovered seeds


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=0)


def _random(d: int, K: int, seed: int) -> np.ndarray:
    return _unit(np.random.default_rng(seed).standard_normal((d, K)))


def _label(g, A, probes, latent_seed: int = 0, n: int = 24):
    return label_directions(g, A, probes, LabelConfig(n_latents=n, alphas=(-3.0, 3.0), n_boot=10, seed=latent_seed))


@pytest.fixture(scope="module")
def analytic():
    g = analytic_generator(size=32)
    return g, ellipse_probes()


def test_true_directions_with_random_filler_beat_random_on_every_factor(analytic):
    g, probes = analytic
    known = []
    for s in range(N_KNOWN):
        rng = np.random.default_rng(50 + s)
        A = np.concatenate([g.factor_directions().numpy(), _random(g.latent_dim, 6, 60 + s)], axis=1)
        known.append(_label(g, A[:, rng.permutation(12)], probes))
    rand = [_label(g, _random(g.latent_dim, 12, 100 + i), probes) for i in range(N_RANDOM)]
    cmp = compare_sets(known, rand, probes, n_boot=400, seed=0)
    assert cmp.paired
    assert [r.factor for r in cmp.rows] == list(FACTOR_NAMES)
    assert cmp.beats_random() == list(FACTOR_NAMES), cmp
    for r in cmp.rows:
        assert r.ci[0] > 0 and r.p_holm < 0.05, r
        assert r.ci[0] <= r.difference <= r.ci[1], r
        assert r.found_discovered == N_KNOWN, r  # every seed labels every factor
    assert Comparison.from_dict(cmp.to_dict()) == cmp
    assert "jointly" in cmp.to_dict()["resampling"]


def test_random_against_random_is_rarely_significant(analytic):
    """False-positive rate: with Holm across the six factors, at most 1 of 20 independent repeats
    (new latents, new sets) may call any factor different."""
    g, probes = analytic
    K, repeats = 8, 20
    hits = []
    for rep in range(repeats):
        sets = [_label(g, _random(g.latent_dim, K, 1000 * rep + i), probes, latent_seed=rep, n=16)
                for i in range(N_KNOWN + N_RANDOM)]
        cmp = compare_sets(sets[:N_KNOWN], sets[N_KNOWN:], probes, n_boot=300, seed=rep)
        hits.append(bool(cmp.beats_random() or cmp.below_random()))
    assert sum(hits) <= 1, hits


def test_a_collapsed_set_is_credited_with_at_most_one_factor(analytic):
    g, probes = analytic
    v = g.factor_directions().numpy()[:, 2] + 0.3 * np.random.default_rng(3).standard_normal(g.latent_dim) / 5.6
    A = np.repeat(v[:, None], 32, axis=1)
    assert collapse_of(A).duplicate_groups == [list(range(32))]
    res = _label(g, A, probes)
    assert res.groups == [list(range(32))]  # identical columns, identical measured effects
    fsel = res.factor_selectivity()
    assert sum(v >= res.config["selectivity_threshold"] for v in fsel.values()) <= 1, fsel
    rand = [_label(g, _random(g.latent_dim, 32, 300 + i), probes) for i in range(N_RANDOM)]
    cmp = compare_sets([res], rand, probes, n_boot=300)
    assert len(cmp.beats_random()) <= 1, cmp.beats_random()


def test_one_direction_per_duplicate_group(analytic):
    """Many noisy copies of one change must not give a set more chances than one copy."""
    g, probes = analytic
    A = np.concatenate([_random(g.latent_dim, 4, 7), np.repeat(_random(g.latent_dim, 1, 8), 6, axis=1)], axis=1)
    res = _label(g, A, probes)
    assert [4, 5, 6, 7, 8, 9] in res.groups
    assert res.keep().tolist() == [0, 1, 2, 3, int(res.keep()[-1])] and res.keep()[-1] >= 4
    one = _label(g, A[:, : 5], probes)
    np.testing.assert_allclose(best_per_factor(res, probes), best_per_factor(one, probes))


def test_sets_on_different_latents_are_resampled_per_set(analytic):
    g, probes = analytic
    a = _label(g, _random(g.latent_dim, 6, 1), probes, latent_seed=0)
    b = _label(g, _random(g.latent_dim, 6, 2), probes, latent_seed=1)
    cmp = compare_sets([a], [b], probes, n_boot=50)
    assert not cmp.paired and "per set" in cmp.to_dict()["resampling"]


def test_missing_slopes_are_refused(analytic):
    g, probes = analytic
    a = _label(g, _random(g.latent_dim, 4, 1), probes)
    old = a.from_dict({**a.to_dict(), "slopes": None})
    with pytest.raises(ValueError, match="slopes"):
        compare_sets([old], [a], probes, n_boot=5)


def test_holm_matches_hand_computation():
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, 0.5])), [0.04, 0.09, 0.09, 0.5])


def test_equal_change_scale_matches_the_target(analytic):
    g, _ = analytic
    A = _random(g.latent_dim, 6, 4)
    target = mean_image_change(g, 3 * A, 3.0)  # column norms do not matter: unit directions
    base = mean_image_change(g, A, 1.5)
    assert base < target
    s = equal_change_scale(g, A, target, 1.5, tol=0.01, iters=8)
    assert mean_image_change(g, A, 1.5 * s) == pytest.approx(target, rel=0.02)
    assert 1.5 < s < 2.5  # roughly twice the shift for twice the change


def test_phantom_factor_axes_with_random_filler_beat_random_on_all_eight_factors():
    """The phantom's own eight factor axes (plus random filler, shuffled) against random sets, with the
    phantom probes (consequences and the size family included)."""
    from napari_latentdirs.phantom.factor_generator import AXIS_FACTORS, PhantomFactorGenerator
    from napari_latentdirs.probes.phantom import phantom_probes

    g, probes = PhantomFactorGenerator(), phantom_probes()
    cfg = LabelConfig(n_latents=12, alphas=(-2.0, 2.0), n_boot=10, seed=0)
    known = []
    for s in range(N_KNOWN):
        A = np.concatenate([g.factor_directions(), _random(10, 2, 60 + s)], axis=1)
        known.append(label_directions(g, A[:, np.random.default_rng(50 + s).permutation(10)], probes, cfg))
    rand = [label_directions(g, _random(10, 10, 100 + i), probes, cfg) for i in range(N_RANDOM)]
    # 1000 replicates: the smallest attainable p (2/1001) times 8 factors stays well below 0.05.
    cmp = compare_sets(known, rand, probes, n_boot=1000)
    assert cmp.beats_random() == list(AXIS_FACTORS), [(r.factor, r.difference, r.p_holm) for r in cmp.rows]
    assert all(r.found_discovered == N_KNOWN for r in cmp.rows)


def test_main_job_equal_change_relabels_the_discovered_sets_at_the_random_sets_image_change(tmp_path, analytic):
    """``runs.analyse._equal_change`` on a real (analytic) set: rescaled shifts, a relabelled set whose mean image
    change matches the random sets', cached beside the labels, and the comparison computed on it."""
    from napari_latentdirs.console import Progress
    from napari_latentdirs.directions.set import DirectionSet
    from napari_latentdirs.runs.analyse import _equal_change
    from napari_latentdirs.runs.config import make_config

    g, probes = analytic
    (tmp_path / "analysis" / "labels").mkdir(parents=True)
    A = np.concatenate([g.factor_directions().numpy(), _random(g.latent_dim, 6, 5)], axis=1)
    DirectionSet(A, method="test").save(tmp_path / "d.safetensors")
    lcfg = LabelConfig(n_latents=16, alphas=(-3.0, 3.0), n_boot=10, seed=0)
    d_res = [label_directions(g, A, probes, lcfg)]
    r_res = [label_directions(g, 0.5 * _random(g.latent_dim, 12, 200 + i), probes, lcfg) for i in range(3)]
    cfg = make_config(tmp_path, "tiny", compare_boot=50, progress=False)
    out = _equal_change(tmp_path, [{"name": "x", "path": "d.safetensors"}], d_res, r_res, g, probes, cfg, lcfg,
                        Progress(False))
    target = np.mean([r.image_change.mean() for r in r_res])
    sc = out["scales"]["x"]
    assert sc["image_change_scaled"] == pytest.approx(target, rel=0.1)
    assert (sc["scale"] < 1) == (sc["image_change"] > target)
    cached = tmp_path / "analysis" / "labels" / "x@equal-change.json"
    assert cached.is_file() and len(out["rows"]) == len(probes.factors) and out["paired"]
