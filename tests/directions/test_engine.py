"""The direction-training engine: events, outputs, frozen generator, stop and bit-exact resume."""

from __future__ import annotations

import threading

import pytest
import torch

from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.directions.voynov import (
    DIRECTIONS_FILE,
    RECONSTRUCTOR_FILE,
    DirectionsConfig,
    load_reconstructor,
    train_directions,
)
from napari_latentdirs.events import CheckpointSaved, Finished, Samples, Started, Step, Stopped
from napari_latentdirs.models.analytic import AnalyticEllipseGenerator
from napari_latentdirs.training.state import read_metrics
from napari_latentdirs.utils.weights import load_weights


class RecordingGenerator(AnalyticEllipseGenerator):
    """The analytic generator, recording for each call whether autograd was on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bool] = []

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        self.calls.append(torch.is_grad_enabled())
        return super().generate(z)


def _cfg(**kw) -> DirectionsConfig:
    base = {"K": 8, "steps": 6, "batch_size": 8, "lr": 1e-3, "eval_batches": 2, "log_every": 2,
            "checkpoint_every": 4, "generator_kind": "analytic", "device": "cpu", "seed": 5}
    return DirectionsConfig(**{**base, **kw})


def test_events_outputs_and_metrics(tmp_path):
    events = list(train_directions(_cfg(), AnalyticEllipseGenerator().eval(), tmp_path))
    assert isinstance(events[0], Started) and events[0].total_steps == 6 and events[0].start_step == 0
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "ce", "shift_loss", "shift_l1", "accuracy"} <= set(steps[0].losses)
    assert any(isinstance(e, CheckpointSaved) and e.step == 4 for e in events)
    assert any(isinstance(e, Samples) and e.images.ndim == 3 for e in events)
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.output == tmp_path / DIRECTIONS_FILE

    ds = DirectionSet.load(fin.output)
    assert ds.method == "voynov-unit" and ds.A.shape == (32, 8)
    assert ds.generator == AnalyticEllipseGenerator().fingerprint
    assert ds.meta["variant"] == "unit" and ds.meta["reconstructor"] == "lenet" and ds.meta["steps"] == 6
    m = ds.metrics
    assert 0.0 <= m["rca"] <= 1.0
    assert m["shift_loss"] == pytest.approx(0.25 * m["shift_l1"])
    assert m == fin.metrics

    logged = read_metrics(tmp_path / "metrics.csv")
    assert [s for s, _ in logged["train/ce"]] == [2, 4, 6]
    assert logged["eval/rca"][-1][1] == pytest.approx(m["rca"], abs=1e-6)
    assert any((tmp_path / "tb").iterdir())

    R = load_reconstructor(tmp_path / RECONSTRUCTOR_FILE)
    logits, alpha = R(torch.zeros(2, 1, 32, 32), torch.zeros(2, 1, 32, 32))
    assert logits.shape == (2, 8) and alpha.shape == (2,)


def test_generator_is_frozen_and_unshifted_pass_runs_without_autograd(tmp_path):
    G = RecordingGenerator()
    G.requires_grad_(True)  # the engine must freeze it itself
    before = {k: v.clone() for k, v in G.state_dict().items()}
    cfg = _cfg(steps=3, eval_batches=1, checkpoint_every=0)
    it = train_directions(cfg, G, tmp_path)
    for ev in it:
        if isinstance(ev, Started):
            G.calls.clear()
        if isinstance(ev, Step) and ev.step == cfg.total_steps:
            # Per step: G(z) without autograd, then G(z + shift) with it.
            assert G.calls == [False, True] * cfg.total_steps
    assert all(not p.requires_grad and p.grad is None for p in G.parameters())
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())


def test_stop_then_resume_is_bit_exact(tmp_path):
    cfg = _cfg(steps=8, checkpoint_every=0)
    ref = list(train_directions(cfg, AnalyticEllipseGenerator().eval(), tmp_path / "ref"))[-1]

    stop = threading.Event()
    events = []
    for ev in train_directions(cfg, AnalyticEllipseGenerator().eval(), tmp_path / "run", stop):
        events.append(ev)
        if isinstance(ev, Step) and ev.step == 3:
            stop.set()
    assert isinstance(events[-1], Stopped) and events[-1].step == 3
    assert not (tmp_path / "run" / DIRECTIONS_FILE).exists()

    resumed = list(train_directions(cfg, AnalyticEllipseGenerator().eval(), tmp_path / "run"))
    assert isinstance(resumed[0], Started) and resumed[0].start_step == 3
    assert [e.step for e in resumed if isinstance(e, Step)] == [4, 5, 6, 7, 8]
    fin = resumed[-1]
    a, b = DirectionSet.load(ref.output), DirectionSet.load(fin.output)
    assert (a.A == b.A).all()
    assert a.metrics == b.metrics
    ra, _ = load_weights(tmp_path / "ref" / RECONSTRUCTOR_FILE)
    rb, _ = load_weights(tmp_path / "run" / RECONSTRUCTOR_FILE)
    assert all(torch.equal(ra[k], rb[k]) for k in ra)


def test_resume_with_other_settings_is_refused(tmp_path):
    stop = threading.Event()
    stop.set()
    list(train_directions(_cfg(), AnalyticEllipseGenerator().eval(), tmp_path, stop))
    with pytest.raises(ValueError, match="different configuration.*K"):
        list(train_directions(_cfg(K=9), AnalyticEllipseGenerator().eval(), tmp_path))


@pytest.mark.parametrize("variant", ["ortho", "random"])
def test_other_variants_write_their_method(tmp_path, variant):
    fin = list(train_directions(_cfg(variant=variant, steps=2, checkpoint_every=0), AnalyticEllipseGenerator().eval(), tmp_path))[-1]
    ds = DirectionSet.load(fin.output)
    assert ds.method == f"voynov-{variant}"
    if variant == "ortho":
        assert ds.metrics["orthonormality_error"] < 1e-5


def test_resnet18_reconstructor_runs(tmp_path):
    fin = list(train_directions(_cfg(reconstructor="resnet18", steps=2, eval_batches=1, checkpoint_every=0),
                                AnalyticEllipseGenerator().eval(), tmp_path))[-1]
    assert DirectionSet.load(fin.output).meta["reconstructor"] == "resnet18"
