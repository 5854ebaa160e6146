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
