"""Generator quality metrics: sanity checks that would fail if precision/recall were wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_latentdirs.analysis.quality import (
    measure_quality,
    precision_recall_diversity,
    real_pair,
)
from napari_latentdirs.phantom.sampling import sample_slices

N = 200


@pytest.fixture(scope="module")
def reals():
    a, b, _ = real_pair("phantom", N)
    c, _ = sample_slices(N, 77)  # a third real sample, playing a perfect generator
    return a, b, c


def test_knn_metrics_on_toy_features():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 4))
    same = rng.standard_normal((300, 4))
    half = np.abs(rng.standard_normal((300, 4)))  # one orthant only: precise, but covers 1/16 of the data
    far = rng.standard_normal((300, 4)) + 50
    p = precision_recall_diversity(real, same)
    assert p.precision > 0.8 and p.recall > 0.8 and 0.9 < p.diversity < 1.1
    h = precision_recall_diversity(real, half)
    assert h.precision > 0.8 and h.recall < 0.3
    f = precision_recall_diversity(real, far)
    assert f.precision == 0 and f.recall == 0


def test_real_slices_score_near_the_ceiling(reals):
    a, b, c = reals
    q = measure_quality(c, a, b, "phantom", spaces=["probes"]).space("probes")
    # Two real samples of the same distribution: the ratio differs from 1 only by sampling
    # noise (a proportion over 200 samples has SD <= 0.035).
    for name in ("precision", "recall"):
        assert q.ratio(name) == pytest.approx(1.0, abs=0.15), (name, q)
    assert q.generated.diversity == pytest.approx(1.0, abs=0.1)
    assert q.ceiling.precision > 0.8 and q.ceiling.recall > 0.8


def test_a_constant_image_has_no_recall_and_no_diversity(reals):
    a, b, c = reals
    const = np.repeat(c[:1], N, axis=0)  # a real-looking slice, always the same
    q = measure_quality(const, a, b, "phantom", spaces=["probes"]).space("probes")
    assert q.generated.recall <= 1 / N
    assert q.generated.diversity < 1e-6  # zero up to cdist round-off


def test_noise_has_no_precision(reals):
    a, b, _ = reals
    noise = np.random.default_rng(1).uniform(-1, 1, a.shape).astype(np.float32)
    q = measure_quality(noise, a, b, "phantom", spaces=["probes"]).space("probes")
    assert q.generated.precision == 0.0


def test_inception_space_and_fid_separate_real_from_noise(reals):
    a, b, c = reals
    n = 40
    noise = np.random.default_rng(2).uniform(-1, 1, (n, *a.shape[1:])).astype(np.float32)
    real = measure_quality(c[:n], a[:n], b[:n], "phantom", spaces=["inception"]).space("inception")
    bad = measure_quality(noise, a[:n], b[:n], "phantom", spaces=["inception"]).space("inception")
    assert bad.generated.precision == 0.0 and bad.generated.recall == 0.0
    assert real.generated.precision > 0.5 and real.generated.recall > 0.5
    assert real.fid < bad.fid / 3
    assert real.fid_ceiling == bad.fid_ceiling  # the same two real sets
    # The calibration ladder: a blurred real sample lies between real and the generator's figure.
    fids = [real.fid_ceiling] + [r.fid for r in real.ladder]
    assert [r.name for r in real.ladder] == ["blur 1 px", "blur 2 px"]
    assert fids == sorted(fids)  # real < blur 1 px < blur 2 px
    assert not real.discriminates


def test_quality_command_prints_and_writes_figures(tmp_path, capsys):
    from napari_latentdirs.analysis.demo import require_demo
    from napari_latentdirs.cli import main
    from napari_latentdirs.models.registry import load_generator

    gen = require_demo("vae").generator
    assert load_generator(gen).latent_dim == 32
    out = tmp_path / "q.json"
    assert main(["quality", str(gen), "--n", "40", "--spaces", "probes", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "probes" in text and "ceiling" in text
    d = json.loads(out.read_text())
    assert set(d["spaces"]) == {"probes"} and d["n"] == 40
    assert 0 <= d["spaces"]["probes"]["generated"]["recall"] <= 1


def _checkerboard(shape: tuple[int, int], amplitude: float) -> np.ndarray:
    yy, xx = np.indices(shape)
    return np.where((yy + xx) % 2, amplitude, -amplitude).astype(np.float32)


def test_checkerboard_index_flags_a_grid_and_not_a_blur(reals):
    from napari_latentdirs.analysis.quality import blur, checkerboard_index

    a, b, c = reals
    plain = checkerboard_index(c, a, b)
    assert plain.generated == pytest.approx(1.0, abs=0.5)  # real against real
    assert plain.real == pytest.approx(1.0, abs=0.5)
    # A +-0.05 grid (2.5% of the model range) on real slices: far above the real ones.
    grid = checkerboard_index(c + _checkerboard(c.shape[1:], 0.05), a, b)
    assert grid.generated > 10 * plain.generated
    # Stripes along one axis only ((pi, 0)) count too.
    stripes = np.where(np.indices(c.shape[1:])[0] % 2, 0.05, -0.05).astype(np.float32)
    assert checkerboard_index(c + stripes, a, b).generated > 10 * plain.generated
    # Blurring removes high frequencies: never above the real slices.
    for sigma in (1.0, 2.0):
        assert checkerboard_index(blur(c, sigma), a, b).generated <= plain.generated


def test_checkerboard_power_is_a_share_of_the_power():
    from napari_latentdirs.analysis.quality import checkerboard_power

    grid = _checkerboard((16, 16), 1.0)[None]
    assert checkerboard_power(grid)[0] == pytest.approx(1.0)  # all power at (pi, pi)
    flat = np.full((1, 16, 16), 0.3, np.float32)
    assert checkerboard_power(flat)[0] == 0.0  # no power at all after the mean
    smooth = np.sin(np.linspace(0, np.pi, 16))[None, :, None] * np.ones((1, 16, 16))
    assert checkerboard_power(smooth)[0] < 1e-3
    with pytest.raises(ValueError, match="even"):
        checkerboard_power(np.zeros((1, 15, 16)))


def test_ladder_is_measured_in_every_space_and_orders_the_blur(reals):
    a, b, c = reals
    rep = measure_quality(c, a, b, "phantom", spaces=["probes", "pixels"])
    for space in ("probes", "pixels"):
        s = rep.space(space)
        assert [r.name for r in s.ladder] == ["blur 1 px", "blur 2 px"]
    pix = rep.space("pixels")
    # In the pixel space a 2-px blur of real slices loses recall against the real ceiling.
    assert pix.ladder[1].figures.recall < pix.ceiling.recall
    assert pix.ratio("precision") == pytest.approx(1.0, abs=0.15)
    assert rep.checkerboard is not None and rep.checkerboard.generated == pytest.approx(1.0, abs=0.5)
    again = type(rep).from_dict(json.loads(json.dumps(rep.to_dict())))
    assert again == rep
    text = "\n".join(rep.lines())
    assert "blur 1 px" in text and "checkerboard index" in text

