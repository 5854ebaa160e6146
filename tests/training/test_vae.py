"""Tiny ResNet-VAE training: the loss falls; test reconstruction error is reported."""

from __future__ import annotations

import math

import numpy as np
import torch
from _gen_helpers import phantom_or_ellipses, run_all, tiny_cfg

from napari_latentdirs.events import EpochEnd, Finished, Step
from napari_latentdirs.models.registry import load_generator
from napari_latentdirs.models.vae import VAE
from napari_latentdirs.training.vae import train_vae


def test_tiny_vae_loss_falls(tmp_path):
    data = phantom_or_ellipses(32)
    test = phantom_or_ellipses(8, seed=99)
    cfg = tiny_cfg("vae", epochs=3, lr=1e-3, augment=False, select_last=1)  # 24 iterations of 4
    events = run_all(train_vae, cfg, data, tmp_path, test_data=test)
    losses = [e.losses["loss"] for e in events if isinstance(e, Step)]
    assert len(losses) == 24 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-6:]) < np.mean(losses[:6]) - 0.1
    ends = [e for e in events if isinstance(e, EpochEnd)]
    assert "test_mse" not in ends[0].metrics  # evaluation only in the selection window
    last = ends[-1].metrics
    assert last["test_mse"] > 0 and math.isclose(last["test_rmse_hu"], math.sqrt(last["test_mse"]) * 1500)
    fin = events[-1]
    assert isinstance(fin, Finished)
    vae = load_generator(fin.output)
    assert isinstance(vae, VAE) and vae.meta["metrics"]["test_mse"] == last["test_mse"]
    x = torch.stack([test[i] for i in range(4)])
    assert vae.encode(x).shape == (4, 32) and vae.generate(vae.encode(x)).shape == (4, 1, 128, 128)
