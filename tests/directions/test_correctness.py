"""Voynov & Babenko's method on a generator whose interpretable directions are known.

The analytic ellipse generator (models/analytic.py) has 32 latent coordinates,
of which six move a known factor and 26 change nothing. K = 32 unit-length
directions are trained from a small random init and compared with the
``random`` variant (fixed random directions, only R trains) at the same seed,
steps, batch and learning rate.

The objective guarantees distinguishable directions, not directions aligned
with the factors, so the test asserts what the method must do and only
reports the alignment:

- learned RCA above random RCA by more than three standard errors of the
  difference (binomial, over the evaluation samples), and a lower held-out
  cross-entropy (the objective both runs minimise; A is extra freedom);
- the learned directions' mean squared norm in the six live coordinates rises
  clearly above the random directions' (which sit near 6/32);
- G's parameters are bitwise unchanged and A changed;
- with ``ortho``, A^T A = I to 1e-5 at every step.

Calibration (1500 steps, batch 32, lr 2e-3, eval 100 batches of 32, one CPU
thread, seed 0): RCA learned 0.933, random 0.902 (gap 0.031, about 4.6
standard errors); live-coordinate energy 0.84 vs 0.16. RCA is measured with
R's BatchNorm statistics re-estimated on fresh batches; the eval-mode
running averages used before lagged behind R and had inflated the gap
(0.72-0.78 for random directions then, seeds 0-4: gaps 0.09-0.39). The
learned directions' best |cos| with the six factor axes is reported, not
asserted: the objective does not guarantee alignment.
"""

from __future__ import annotations

import json

import pytest
import torch

from napari_latentdirs.directions.matrix import DirectionModel
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.directions.voynov import DirectionsConfig, run_to_completion
from napari_latentdirs.models.analytic import (
    FACTOR_NAMES,
    AnalyticEllipseGenerator,
    best_abs_cosines,
)
from napari_latentdirs.training.state import read_metrics

STEPS = 1500
SEED = 0
SE_MULTIPLE = 3.0
LIVE_THRESHOLD = 0.5


def _cfg(variant: str, **kw) -> DirectionsConfig:
    base = {"K": 32, "variant": variant, "steps": STEPS, "batch_size": 32, "lr": 2e-3, "eval_batches": 100,
            "log_every": 100, "checkpoint_every": 0, "seed": SEED, "device": "cpu", "generator_kind": "analytic"}
    return DirectionsConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def one_thread():
    # Small convolutions: one thread is as fast alone and far faster on a shared, loaded CPU.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    G = AnalyticEllipseGenerator().eval()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    out = {}
    for variant in ("unit", "random"):
        fin = run_to_completion(_cfg(variant), G, tmp_path_factory.mktemp(variant))
        out[variant] = DirectionSet.load(fin.output)
    return G, before, out


def _live_energy(G: AnalyticEllipseGenerator, A) -> float:
    A = torch.as_tensor(A)
    return float((A[list(G.live_coords)] ** 2).sum(0).mean())


def test_learned_directions_are_more_distinguishable_than_random(runs, record_property):
    G, _, sets = runs
    learned, random = sets["unit"].metrics["rca"], sets["random"].metrics["rca"]
    cos = best_abs_cosines(torch.from_numpy(sets["unit"].A), G.factor_directions())
    report = {"rca_learned": learned, "rca_random": random,
              "live_learned": _live_energy(G, sets["unit"].A), "live_random": _live_energy(G, sets["random"].A),
              "best_abs_cos": dict(zip(FACTOR_NAMES, [round(float(c), 3) for c in cos]))}
    record_property("analytic_directions", json.dumps(report))
    print("analytic generator:", json.dumps(report))  # reported, not asserted: alignment is not guaranteed
    n = sets["unit"].meta["config"]["eval_batches"] * 32
    se = ((learned * (1 - learned) + random * (1 - random)) / n) ** 0.5
    assert learned - random > SE_MULTIPLE * se, report
    assert sets["unit"].metrics["ce"] < sets["random"].metrics["ce"], report


def test_learned_directions_leave_the_dead_coordinates(runs):
    G, _, sets = runs
    live_random = _live_energy(G, sets["random"].A)
    assert abs(live_random - 6 / 32) < 0.1  # random unit vectors: 6 of 32 dimensions on average
    assert _live_energy(G, sets["unit"].A) > max(LIVE_THRESHOLD, live_random + 0.3)


def test_generator_untouched_and_directions_changed(runs):
    G, before, sets = runs
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert all(not p.requires_grad for p in G.parameters())
    init = DirectionModel(32, 32, "unit", "random", 0.1, generator=torch.Generator().manual_seed(SEED)).matrix()
    learned = torch.from_numpy(sets["unit"].A)
    assert (learned * init).sum(0).abs().mean() < 0.9  # columns turned, on average, by more than ~25 degrees
    fixed = DirectionModel(32, 32, "random", "random", generator=torch.Generator().manual_seed(SEED)).matrix()
    assert torch.equal(torch.from_numpy(sets["random"].A), fixed)


def test_ortho_directions_stay_orthonormal_throughout(tmp_path, one_thread):
    cfg = _cfg("ortho", steps=150, log_every=1, eval_batches=5)
    fin = run_to_completion(cfg, AnalyticEllipseGenerator().eval(), tmp_path)
    errors = read_metrics(tmp_path / "metrics.csv")["train/orthonormality_error"]
    assert [s for s, _ in errors] == list(range(1, 151))
    assert max(e for _, e in errors) < 1e-5
    A = torch.from_numpy(DirectionSet.load(fin.output).A).double()
    assert float((A.T @ A - torch.eye(32, dtype=torch.float64)).abs().max()) < 1e-5
    init = DirectionModel(32, 32, "ortho", "random", generator=torch.Generator().manual_seed(SEED)).matrix()
    assert not torch.allclose(A.float(), init, atol=1e-3)
