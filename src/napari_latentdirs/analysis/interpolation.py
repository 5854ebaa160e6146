"""Interpolation between two embedded slices (paper Fig. 11)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .inversion import Embedding, InversionConfig, embed
from .labelling import generate_images


def lerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - t) * z0[None] + t * z1[None]).astype(np.float32)


def slerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation; keeps intermediate latents at a typical norm for N(0, I)."""
    a, b = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return lerp(z0, z1, steps)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    out = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    return out.astype(np.float32)


@dataclass
class Interpolation:
    originals: np.ndarray  # (2, H, W)
    frames: np.ndarray  # (steps, H, W) generated along the path
    z: np.ndarray  # (steps, d)
    embedding: Embedding
    smoothness: float  # max step change / mean step change (1 = perfectly even)


def interpolate(model: Any, x_pair: np.ndarray, steps: int = 10, spherical: bool = True,
                cfg: InversionConfig | None = None) -> Interpolation:
    """Embed two slices and generate ``steps`` images on the path between their latents."""
    x_pair = np.asarray(x_pair, np.float32)
    if x_pair.shape[0] != 2:
        raise ValueError(f"need exactly two slices, got {x_pair.shape[0]}")
    emb = embed(model, x_pair, cfg)
    zs = (slerp if spherical else lerp)(emb.z[0], emb.z[1], steps)
    frames = generate_images(model, zs)
    step = np.abs(np.diff(frames, axis=0)).mean((1, 2))
    smooth = float(step.max() / max(step.mean(), 1e-12)) if step.size else 1.0
    return Interpolation(x_pair.reshape(2, *x_pair.shape[-2:]), frames, zs, emb, smooth)
