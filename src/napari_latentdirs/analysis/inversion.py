"""Embedding real slices into a generator's latent space.

- VAE: the encoder's mean latent (``generator.encode``).
- GAN: reverse latent search (Lipton & Tripathi 2017, the paper's ref. [4]):
  minimise ||G(z) - x||^2 over z with Adam from several random starts, keep
  the best start per image and report its reconstruction error. A weak
  Gaussian prior term keeps z where G was trained (||z||^2 of a d-dim normal
  is ~d); the paper's code has no inversion, so the settings are ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class InversionConfig:
    restarts: int = 4
    steps: int = 200
    lr: float = 0.05
    prior_weight: float = 1e-3
    seed: int = 0


@dataclass
class Embedding:
    z: np.ndarray  # (N, d)
    mse: np.ndarray  # (N,) reconstruction error in model space
    method: str  # "encoder" | "reverse-search"
    restart_mse: np.ndarray | None = None  # (restarts, N) final error of each start


def _as_batch(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4:
        raise ValueError(f"expected images (N, H, W) or (N, 1, H, W), got {tuple(t.shape)}")
    return t


def _device(model: Any) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


@torch.no_grad()
def encode(model: Any, x: np.ndarray | torch.Tensor) -> Embedding:
    xt = _as_batch(x).to(_device(model))
    z = model.encode(xt)
    rec = model.generate(z)
    mse = ((rec - xt) ** 2).flatten(1).mean(1)
    return Embedding(z.cpu().numpy(), mse.cpu().numpy(), "encoder")


@dataclass(frozen=True)
class InversionProgress:
    """Optimiser steps done of all restarts' steps (what a progress bar shows)."""

    done: int
    total: int


class InversionStopped(Exception):
    """The stop request arrived before the search finished."""


def reverse_search(model: Any, x: np.ndarray | torch.Tensor, cfg: InversionConfig | None = None) -> Embedding:
    """Latent optimisation with ``cfg.restarts`` random starts; the best start wins per image."""
    result: Embedding | None = None
    for item in reverse_search_steps(model, x, cfg):
        if isinstance(item, Embedding):
            result = item
    assert result is not None
    return result


def reverse_search_steps(model: Any, x: np.ndarray | torch.Tensor, cfg: InversionConfig | None = None,
                         stop: Any = None, every: int = 10) -> Iterator[InversionProgress | Embedding]:
    """:func:`reverse_search` as an engine: yields progress every ``every`` steps, then the
    Embedding; raises InversionStopped within ``every`` steps of ``stop`` (a threading.Event)."""
    cfg = cfg or InversionConfig()
    dev = _device(model)
    xt = _as_batch(x).to(dev)
    n, d = xt.shape[0], model.latent_dim
    gen = torch.Generator().manual_seed(cfg.seed)
    best_z = torch.zeros(n, d)
    best = torch.full((n,), float("inf"))
    all_mse = np.zeros((cfg.restarts, n), np.float32)
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        for r in range(cfg.restarts):
            z = torch.randn(n, d, generator=gen).to(dev).requires_grad_(True)
            opt = torch.optim.Adam([z], lr=cfg.lr)
            for i in range(cfg.steps):
                if i % every == 0:
                    if stop is not None and stop.is_set():
                        raise InversionStopped("inversion stopped")
                    yield InversionProgress(r * cfg.steps + i, cfg.restarts * cfg.steps)
                opt.zero_grad()
                per = ((model.generate(z) - xt) ** 2).flatten(1).mean(1)
                loss = per.sum() + cfg.prior_weight * (z**2).sum() / d
                loss.backward()
                opt.step()
            with torch.no_grad():
                per = ((model.generate(z) - xt) ** 2).flatten(1).mean(1).cpu()
            all_mse[r] = per.numpy()
            better = per < best
            best = torch.where(better, per, best)
            best_z[better] = z.detach().cpu()[better]
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        if was_training and isinstance(model, torch.nn.Module):
            model.train()
    yield InversionProgress(cfg.restarts * cfg.steps, cfg.restarts * cfg.steps)
    yield Embedding(best_z.numpy(), best.numpy(), "reverse-search", all_mse)


def embed(model: Any, x: np.ndarray | torch.Tensor, cfg: InversionConfig | None = None) -> Embedding:
    """Encoder when the model has one, reverse latent search otherwise."""
    if hasattr(model, "encode"):
        return encode(model, x)
    return reverse_search(model, x, cfg)
