"""The penalty that keeps different directions' image changes orthogonal (directions/voynov.py)."""

from __future__ import annotations

import threading

import pytest
import torch

from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.directions.voynov import (
    DirectionsConfig,
    change_overlap,
    pair_inputs,
    run_to_completion,
    sample_inputs,
)
from napari_latentdirs.models.analytic import analytic_generator


def test_pairs_share_the_latent_and_differ_in_direction():
    g = torch.Generator().manual_seed(0)
    z, k, _ = sample_inputs(g, 64, 8, 5, 6.0, 0.5, torch.device("cpu"))
    z2, k2 = pair_inputs(z, k, g, 5)
    assert torch.equal(z2[0::2], z2[1::2]) and torch.equal(z2[0::2], z[0::2])
    assert bool((k2[0::2] != k2[1::2]).all())
    assert int(k2.max()) < 5


def test_change_overlap_is_the_squared_cosine_of_the_pairs():
    x = torch.zeros(4, 1, 2, 2)
    a = torch.tensor([1.0, 0, 0, 0]).reshape(1, 1, 2, 2)
    b = torch.tensor([0, 1.0, 0, 0]).reshape(1, 1, 2, 2)
    orthogonal = torch.cat([a, b, a, 2 * b])
    same = torch.cat([a, -3 * a, b, b])
    assert float(change_overlap(x, orthogonal)) == pytest.approx(0.0)
    assert float(change_overlap(x, same)) == pytest.approx(1.0)


def test_a_run_with_the_penalty_trains_and_records_it(tmp_path):
    G = analytic_generator(size=32)
    cfg = DirectionsConfig(K=6, variant="ortho", steps=30, batch_size=16, lr=3e-3, eval_batches=2, log_every=10,
                           checkpoint_every=0, orthogonal_changes=1.0, generator_kind="analytic")
    fin = run_to_completion(cfg, G, tmp_path / "run", threading.Event())
    ds = DirectionSet.load(fin.output)
    assert ds.meta["orthogonal_changes"] == 1.0 and 0.0 <= ds.metrics["rca"] <= 1.0
    # The penalty is part of the run's identity: resuming with another weight is refused.
    with pytest.raises(ValueError, match="orthogonal_changes"):
        run_to_completion(cfg.__class__(**{**cfg.to_dict(), "orthogonal_changes": 2.0, "steps": 40}), G,
                          tmp_path / "run", threading.Event())


def test_the_penalty_needs_pairs():
    with pytest.raises(ValueError, match="even batch_size"):
        DirectionsConfig(batch_size=31, orthogonal_changes=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        DirectionsConfig(orthogonal_changes=-1.0)
