"""The small interface every generator exposes to direction discovery,
the navigator and the labeller.

``generate(z)`` takes ``z`` of shape (B, latent_dim) and returns images of
shape (B, 1, H, W) in model space [-1, 1] (see ``data.preprocess``). A VAE
also has ``encode(x)`` -> mean latent (B, latent_dim) for x in model space.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class LatentGenerator(Protocol):
    latent_dim: int

    def generate(self, z: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class LatentEncoder(Protocol):
    latent_dim: int

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...
