"""RunDir checkpoints restore modules, optimisers and every RNG so training continues bit for bit."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from napari_latentdirs.training.state import RunDir, ScalarLogger, read_metrics


def _train(model, opt, gen, steps):
    for _ in range(steps):
        x = torch.randn(8, 4, generator=gen) + torch.randn(8, 4) + float(np.random.rand()) + random.random()
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _fresh(seed=0):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed + 1)
    return model, opt, gen


def test_interrupted_run_resumes_bit_exact(tmp_path):
    model, opt, gen = _fresh()
    _train(model, opt, gen, 10)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    model, opt, gen = _fresh()
    _train(model, opt, gen, 4)
    run = RunDir(tmp_path / "run")
    run.save("last", {"m": model}, {"m": opt}, meta={"step": 4}, generators={"data": gen})
    # Scramble everything, as a new process would.
    model, opt, gen = _fresh(seed=123)
    torch.manual_seed(999)
    np.random.seed(999)
    random.seed(999)
    meta = run.load("last", {"m": model}, {"m": opt}, generators={"data": gen})
    assert meta["step"] == 4
    _train(model, opt, gen, 6)
    for k, v in model.state_dict().items():
        assert torch.equal(v, reference[k]), k


def test_scalar_logger_writes_csv(tmp_path):
    with ScalarLogger(tmp_path, tensorboard=True) as lg:
        lg.log(1, {"loss": 0.5, "acc": 0.25})
        lg.log(2, {"loss": 0.25})
    m = read_metrics(tmp_path / "metrics.csv")
    assert m["loss"] == [(1, 0.5), (2, 0.25)] and m["acc"] == [(1, 0.25)]
    assert any((tmp_path / "tb").iterdir())
