"""The labeller against ground truth: the analytic ellipse generator's six known directions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_latentdirs.analysis.labelling import (
    ENTANGLED,
    NO_EFFECT,
    LabelConfig,
    LabelResult,
    label_directions,
)
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.models.analytic import FACTOR_NAMES, analytic_generator
from napari_latentdirs.phantom.factor_generator import AXIS_FACTORS, PhantomFactorGenerator
from napari_latentdirs.probes.ellipse import ellipse_probes, measure_ellipse


@pytest.fixture(scope="module")
def analytic_labels():
    g = analytic_generator(size=32)
    rng = np.random.default_rng(7)
    known = g.factor_directions().numpy()
    # Shuffle the known directions among random ones, and scale them, so neither order nor norm gives them away.
    rand = rng.standard_normal((g.latent_dim, 6))
    A = np.concatenate([known * 2.5, rand], axis=1)
    perm = rng.permutation(A.shape[1])
    ds = DirectionSet(A[:, perm], method="test")
    res = label_directions(g, ds, ellipse_probes(), LabelConfig(n_latents=32, n_boot=100))
    truth = {int(np.flatnonzero(perm == j)[0]): FACTOR_NAMES[j] for j in range(6)}
    randoms = [int(np.flatnonzero(perm == j)[0]) for j in range(6, 12)]
    return res, truth, randoms


def test_known_directions_get_their_true_factor(analytic_labels):
    res, truth, _ = analytic_labels
    for k, factor in truth.items():
        assert res.labels[k] == factor, (k, factor, res.labels[k], res.significant[k])
        assert res.selectivity[k] >= res.config["selectivity_threshold"]
        assert res.consistency[k] > 0.9
        j = res.factors.index(factor)
        assert res.ci_low[k, j] > 0  # the effect is significant, not just the largest


def test_random_directions_are_entangled_or_weak(analytic_labels):
    res, truth, randoms = analytic_labels
    for k in randoms:
        assert res.labels[k] in (ENTANGLED, NO_EFFECT), (k, res.labels[k], res.selectivity[k])
    # Ranking: every known direction outranks every random one.
    assert max(res.rank[k] for k in truth) < min(res.rank[k] for k in randoms)
    assert res.groups == []


def test_duplicates_are_grouped_and_dead_directions_have_no_effect():
    g = analytic_generator(size=32)
    eye = np.eye(g.latent_dim)
    A = np.stack([eye[0], eye[0] + 0.15 * eye[9], eye[2], eye[20], eye[3]], axis=1)
    res = label_directions(g, A, ellipse_probes(), LabelConfig(n_latents=24, n_boot=50))
    assert res.groups == [[0, 1]]
    assert res.labels[3] == NO_EFFECT
    assert res.labels[0] == res.labels[1] == "x_position"
    assert res.labels[2] == "width" and res.labels[4] == "height"


def test_probe_measures_analytic_factors():
    g = analytic_generator(size=64)
    z = torch.randn(64, g.latent_dim, generator=torch.Generator().manual_seed(0))
    truth = {k: v.numpy() for k, v in g.factors(z).items()}
    meas = measure_ellipse(g.generate(z).numpy())
    for name in FACTOR_NAMES:
        r = np.corrcoef(truth[name], meas[name])[0, 1]
        assert r > 0.95, (name, r)


def test_label_result_roundtrip(tmp_path, analytic_labels):
    res, _, _ = analytic_labels
    back = LabelResult.load(res.save(tmp_path / "labels.json"))
    assert back.labels == res.labels
    np.testing.assert_allclose(back.significant, res.significant)
    assert back.table()[0]["rank"] == 1


def test_mismatched_latent_dim_is_refused():
    g = analytic_generator(size=32)
    with pytest.raises(ValueError, match="latent_dim"):
        label_directions(g, np.ones((8, 2)), ellipse_probes())


# -- the phantom itself as a generator with known directions ---------------------------------------

PHANTOM_TRUTH = AXIS_FACTORS


def test_phantom_probes_label_the_phantoms_own_factors():
    from napari_latentdirs.probes import zlevel
    from napari_latentdirs.probes.phantom import phantom_probes

    g = PhantomFactorGenerator()
    rng = np.random.default_rng(0)
    A = np.concatenate([np.eye(10)[:, :8], rng.standard_normal((10, 3))], axis=1)
    res = label_directions(g, A, phantom_probes(), LabelConfig(n_latents=12, alphas=(-2.0, 2.0), n_boot=100))
    has_z = zlevel.default_regressor() is not None
    for k, factor in enumerate(PHANTOM_TRUTH):
        if factor == "z_level" and not has_z:
            continue
        assert res.labels[k] == factor, (factor, res.labels[k], res.selectivity[k], res.significant[k])
    for k in (8, 9, 10):
        assert res.labels[k] in (ENTANGLED, NO_EFFECT), (k, res.labels[k], res.selectivity[k], res.significant[k])


# -- issue 18: the fair yardstick -------------------------------------------------------------------

def test_slopes_with_nan_deltas_equal_slopes_on_the_finite_ones():
    from napari_latentdirs.analysis.labelling import fit_slopes

    rng = np.random.default_rng(0)
    alphas = np.array([-3.0, -1.5, 1.5, 3.0])
    true = rng.standard_normal((20, 5))
    delta = alphas[:, None, None] * true[None] + 0.1 * rng.standard_normal((4, 20, 5))
    holed = delta.copy()
    holed[1:3, :10] = np.nan  # the +-1.5 images failed their probe on half the latents: only +-3 remain
    holed[:, 15, 2] = np.nan  # one latent has no measurable shift at all
    got = fit_slopes(alphas, holed)
    for i in range(20):
        for j in range(5):
            ok = np.isfinite(holed[:, i, j])
            if not ok.any():
                assert np.isnan(got[i, j])
                continue
            a = alphas[ok]
            expect = np.linalg.lstsq(a[:, None], holed[ok, i, j], rcond=None)[0][0]
            assert got[i, j] == pytest.approx(expect, rel=1e-12), (i, j)
    np.testing.assert_allclose(fit_slopes(alphas, delta)[10:15], got[10:15])  # untouched latents unchanged


def _slopes(effects: tuple[float, ...], noise_sd: float, n: int = 64) -> np.ndarray:
    """(n, F) slopes with exactly the given mean and a fixed noise of exactly ``noise_sd``."""
    e = np.random.default_rng(1).standard_normal((n, len(effects)))
    e = (e - e.mean(0)) / e.std(0, ddof=1) * noise_sd
    return np.asarray(effects)[None] + e


def test_side_effects_count_the_same_for_weak_and_strong_directions():
    """A weak direction that does the same mixture at a third of the size is exactly as selective: the
    side effect is measurable in both, so it counts at its full size in both."""
    from napari_latentdirs.analysis.labelling import _top_factor, significant_effects

    strong = significant_effects(_slopes((1.0, 0.3, 0.0), 0.2), 2.0)
    weak = significant_effects(_slopes((0.35, 0.105, 0.0), 0.2), 2.0)
    assert strong[2] == weak[2] == 0.0  # probe noise on an untouched factor is not an effect
    np.testing.assert_allclose(strong[:2], [1.0, 0.3])
    np.testing.assert_allclose(weak[:2], [0.35, 0.105])
    sel = [_top_factor(s, ("a", "b", "c"), {}, 0.5)[1] for s in (strong, weak)]
    assert sel[0] == pytest.approx(sel[1]) == pytest.approx(1 / 1.3)


def test_per_factor_selectivity_needs_no_top_factor():
    """A factor that is every direction's second effect still gets its best selectivity, not 0."""
    from napari_latentdirs.analysis.labelling import factor_selectivity_from

    sig = np.array([[1.0, 0.6, 0.0], [0.0, 0.2, 0.9], [0.1, 0.05, 0.0]])
    best = factor_selectivity_from(sig, ("a", "b", "c"), {}, min_effect=0.3)
    np.testing.assert_allclose(best, [1.0 / 1.6, 0.6 / 1.6, 0.9 / 1.1])  # b: direction 0's share; direction 2 too weak
    # A known consequence does not count against its cause.
    best = factor_selectivity_from(sig, ("a", "b", "c"), {"a": ("b",)}, min_effect=0.3)
    assert best[0] == pytest.approx(1.0)
    # One direction per duplicate group: dropping direction 1 drops factor c.
    assert factor_selectivity_from(sig, ("a", "b", "c"), {}, 0.3, keep=np.array([0, 2]))[2] == 0.0


def test_descriptions_name_the_top_two_factors_with_signs(analytic_labels):
    from napari_latentdirs.analysis.labelling import describe_direction, describe_directions

    factors = ("width", "height", "size")
    assert describe_direction(np.array([0.5, -0.3, 0.2]), np.array([0.5, 0.3, 0.2]), factors) == \
        "width \u2191 0.50 \u00b7 height \u2193 0.30"
    assert describe_direction(np.array([-0.8, 0.0, 0.0]), np.array([0.8, 0.0, 0.0]), factors) == "width \u2193 1.00"
    assert describe_direction(np.zeros(3), np.zeros(3), factors) == NO_EFFECT
    assert describe_direction(np.array([0.1, 0, 0]), np.array([0.1, 0, 0]), factors, min_effect=0.3) == NO_EFFECT
    res, truth, _ = analytic_labels
    desc = describe_directions(res)
    assert len(desc) == res.K and desc == res.descriptions()
    for k, factor in truth.items():
        assert desc[k].startswith(factor + " "), (k, desc[k])
