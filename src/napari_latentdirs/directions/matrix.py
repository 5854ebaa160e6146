"""The direction matrix A (latent_dim x K, columns = directions) of Voynov & Babenko.

Variants:

- ``unit``: a free parameter W; every forward uses ``W / ||W||`` column-wise,
  so each direction has unit length exactly (no bias: the reference code's
  "projective" deformator adds a bias before normalising, which is not the
  paper's unit-length matrix).
- ``ortho``: ``A = expm(S)[:, :K]`` with ``S = P - P^T`` skew-symmetric, so
  the columns are orthonormal at every step. The exponential is taken in
  float64 so ``A^T A = I`` holds to ~1e-7 in float32. ``K > latent_dim``
  cannot be orthonormal and is refused.
- ``random``: fixed random unit directions (a buffer, nothing to learn): the
  paper's baseline in its Figs. 9 and 10.

Initialisation ``random`` (the paper's runs; for ``unit`` a small
``init_scale * N(0, 1)``) or ``axes`` (the first min(d, K) coordinate axes,
which the reference maintainers found more stable for hard generators).
"""

from __future__ import annotations

import torch
from torch import nn

VARIANTS = ("unit", "ortho", "random")
INITS = ("random", "axes")


class DirectionModel(nn.Module):
    def __init__(self, latent_dim: int, K: int, variant: str = "unit", init: str = "random",
                 init_scale: float = 0.1, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown direction variant {variant!r}; choose from {VARIANTS}")
        if init not in INITS:
            raise ValueError(f"unknown direction init {init!r}; choose from {INITS}")
        if latent_dim < 1 or K < 1:
            raise ValueError(f"latent_dim and K must be positive, got {latent_dim} and {K}")
        if variant == "ortho" and latent_dim < K:
            raise ValueError(
                f"ortho directions need K <= latent_dim: {K} orthonormal directions do not exist in a "
                f"{latent_dim}-dimensional latent space (use variant 'unit' for K > {latent_dim})")
        self.latent_dim, self.K, self.variant, self.init = int(latent_dim), int(K), variant, init
        g = generator
        n = min(latent_dim, K)
        if variant == "unit":
            if init == "axes":
                w = torch.zeros(latent_dim, K)
                w[:n, :n] = torch.eye(n)
                if n < K:  # columns beyond the axes still need distinct starting points
                    w[:, n:] = init_scale * torch.randn(latent_dim, K - n, generator=g)
            else:
                w = init_scale * torch.randn(latent_dim, K, generator=g)
            self.weight = nn.Parameter(w)
        elif variant == "ortho":
            # Zero gives expm = I (the axes); a unit-variance P gives a well-spread random rotation.
            p = torch.zeros(latent_dim, latent_dim) if init == "axes" else torch.randn(latent_dim, latent_dim, generator=g)
            self.skew_half = nn.Parameter(p)
        else:
            if init == "axes":
                a = torch.zeros(latent_dim, K)
                a[:n, :n] = torch.eye(n)
                if n < K:
                    a[:, n:] = torch.randn(latent_dim, K - n, generator=g)
            else:
                a = torch.randn(latent_dim, K, generator=g)
            self.register_buffer("fixed", a / a.norm(dim=0, keepdim=True))

    @property
    def trainable(self) -> bool:
        return self.variant != "random"

    def matrix(self) -> torch.Tensor:
        """A, (latent_dim, K), differentiable in the parameters."""
        if self.variant == "unit":
            return self.weight / self.weight.norm(dim=0, keepdim=True).clamp_min(1e-12)
        if self.variant == "ortho":
            s = self.skew_half - self.skew_half.T
            return torch.linalg.matrix_exp(s.double())[:, : self.K].to(s.dtype)
        return self.fixed

    def forward(self, k: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Shifts ``alpha_b * A[:, k_b]``: (B, latent_dim)."""
        return self.matrix().T[k] * alpha[:, None]

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, K={self.K}, variant={self.variant!r}, init={self.init!r}"


def orthonormality_error(A: torch.Tensor) -> float:
    """max |A^T A - I|."""
    A = A.detach()
    eye = torch.eye(A.shape[1], dtype=A.dtype, device=A.device)
    return float((A.T @ A - eye).abs().max())


def unit_columns(A: torch.Tensor) -> torch.Tensor:
    return A / A.norm(dim=0, keepdim=True).clamp_min(1e-12)


__all__ = ["INITS", "VARIANTS", "DirectionModel", "orthonormality_error", "unit_columns"]
