"""Anatomical level regressor: slice -> t in [0, 1] (apex -> upper abdomen).

A small MLP on the body-aligned polar resampling that ``outline`` computes with
its other probes (translation, scale and rotation are normalised away by
construction, so it learns anatomy rather than body shape). The packaged weights
(``assets/zlevel_regressor.safetensors``) were trained on phantom slices by
``training/make_zlevel_regressor.py``. On real data, train a fresh one with
``train_regressor_features(outline.polar_features(x), t)`` using each slice's
relative position in its scan. This module works on those features only:
``outline`` imports it, never the other way round.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..utils.weights import load_weights, save_weights

log = logging.getLogger(__name__)

ASSET_NAME = "zlevel_regressor.safetensors"


class ZLevelRegressor(nn.Module):
    def __init__(self, n_features: int, hidden: int = 96):
        super().__init__()
        self.n_features = n_features
        self.hidden = hidden
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden // 2),
            nn.GELU(),
            nn.Linear(hidden // 2, 1),
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(f))[:, 0]


def predict_features(model: ZLevelRegressor, feats: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(feats, dtype=np.float32))).double().numpy()


def train_regressor_features(
    feats: np.ndarray, t: np.ndarray, epochs: int = 60, seed: int = 0, lr: float = 2e-3, batch: int = 128, hidden: int = 96
) -> ZLevelRegressor:
    """Fit on polar features; deterministic for a given seed."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ZLevelRegressor(feats.shape[1], hidden)
    X = torch.from_numpy(np.asarray(feats, dtype=np.float32))
    y = torch.from_numpy(np.asarray(t, dtype=np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), batch):
            idx = perm[i : i + batch]
            # Feature noise: robustness to generator artefacts and real-data texture.
            xb = X[idx] + 0.03 * torch.randn(X[idx].shape, generator=g)
            loss = nn.functional.mse_loss(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def save_regressor(model: ZLevelRegressor, path: str | Path, meta: dict | None = None) -> Path:
    meta = dict(meta or {})
    meta.update({"kind": "zlevel_regressor", "n_features": model.n_features, "hidden": model.hidden})
    return save_weights(path, model.state_dict(), meta)


def load_regressor(path: str | Path) -> ZLevelRegressor:
    tensors, meta = load_weights(path)
    model = ZLevelRegressor(int(meta["n_features"]), int(meta["hidden"]))
    model.load_state_dict(tensors)
    model.eval()
    return model


def asset_path() -> Path:
    return Path(str(resources.files("napari_latentdirs") / "assets" / ASSET_NAME))


@functools.lru_cache(maxsize=1)
def default_regressor() -> ZLevelRegressor | None:
    p = asset_path()
    if not p.is_file():
        log.warning("packaged z-level regressor missing at %s; z_level probe returns NaN", p)
        return None
    return load_regressor(p)
