"""A changed setting on re-run (issue 22, item 2).

``train --out RUN --lr 0.01`` on an existing run used to record lr 0.01 and keep training at the
checkpoint's rate. Settings that only steer the rest of the run (the learning rate, the length, logging,
FID selection, the device) are applied from the checkpoint's step on, and a message says so; settings
that define what was trained so far (seed, batch, betas, augmentation, averaging, the model) refuse the
re-run, naming them, as ``latentdirs directions`` does.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch

from napari_latentdirs.events import Message
from napari_latentdirs.training.gan import GANTrainer

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_runs import drain, ellipses, tiny  # noqa: E402


def _weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.modules["G"].state_dict().items()}


def _continue(run: Path, **cfg) -> tuple[GANTrainer, list]:
    trainer = GANTrainer(tiny("gan", epochs=2, **cfg), ellipses(16), run)
    events = list(trainer.run(threading.Event()))
    return trainer, events


def test_a_new_learning_rate_on_rerun_is_applied_and_said(tmp_path):
    data = ellipses(16)
    for run in (tmp_path / "a", tmp_path / "b"):
        drain(lambda c, d, r, s: GANTrainer(c, d, r).run(s), tiny("gan", epochs=1), data, run)
    same, _ = _continue(tmp_path / "a")  # epoch 2 at the default rate
    faster, events = _continue(tmp_path / "b", lr=0.01)
    for opt in faster.optimizers.values():
        assert all(g["lr"] == 0.01 for g in opt.param_groups)
    texts = [e.text for e in events if isinstance(e, Message)]
    assert any("lr" in t and "0.01" in t for t in texts), texts
    a, b = _weights(same), _weights(faster)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # not bit-identical to a default run
    assert faster.checkpoint_meta()["train_config"]["lr"] == 0.01


@pytest.mark.parametrize("changed", [{"seed": 3}, {"augment": False}, {"betas": (0.9, 0.99)}])
def test_a_setting_that_defines_the_run_so_far_refuses_the_rerun_by_name(tmp_path, changed):
    run = tmp_path / "run"
    drain(lambda c, d, r, s: GANTrainer(c, d, r).run(s), tiny("gan", epochs=1), ellipses(16), run)
    trainer = GANTrainer(tiny("gan", epochs=2, **changed), ellipses(16), run)
    with pytest.raises(ValueError, match=next(iter(changed))):
        next(iter(trainer.run(threading.Event())))
