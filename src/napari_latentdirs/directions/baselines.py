"""Baseline direction methods, written as the same DirectionSet as Voynov's method.

- ``random``: K random unit directions (seeded).
- ``ganspace`` (Härkönen et al. 2020, their BigGAN recipe): PCA of the
  activations of the generator's first layer (``G.first_layer``, the module
  applied to z) over sampled z, mapped back to latent directions by linear
  regression of z on the PCA coefficients. When the first layer is linear in
  z, as in the DCGAN and the VAE decoder here, its activations are ``W z + b``
  and the regression recovers the right singular vectors of W: GANSpace then
  agrees with SeFa up to sampling noise (tested). Pass ``layer=`` to use the
  output of a later module instead.
- ``pca-encoded`` (VAE only): PCA of the encoder's mean latents of real slices.
- ``sefa`` (Shen & Zhou 2021): the eigenvectors of W^T W of the first layer,
  by decreasing eigenvalue. W is read as the first layer's Jacobian (its
  response to each latent axis minus its response to 0), so Linear and
  ConvTranspose2d first layers, with or without bias, are handled alike.

Eigen- and singular vectors have no intrinsic sign; each column is signed so
that its largest-magnitude entry is positive, which makes results
deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from . import METHODS, closed_form_methods
from .set import DirectionSet


def _canonical_sign(A: torch.Tensor) -> torch.Tensor:
    idx = A.abs().argmax(dim=0)
    signs = torch.sign(A[idx, torch.arange(A.shape[1])])
    signs[signs == 0] = 1
    return A * signs


def _check_k(K: int | None, limit: int, what: str) -> int:
    K = limit if K is None else int(K)
    if not 1 <= K <= limit:
        raise ValueError(f"{what} gives at most {limit} directions here; K={K} requested")
    return K


def _latent_dim(G: Any) -> int:
    d = getattr(G, "latent_dim", None)
    if not isinstance(d, int):
        raise TypeError(f"{type(G).__name__} has no integer latent_dim")
    return d


def _first_layer(G: Any) -> nn.Module:
    layer = getattr(G, "first_layer", None)
    if not isinstance(layer, nn.Module):
        raise TypeError(f"{type(G).__name__} exposes no first_layer module; SeFa and GANSpace need it")
    return layer


def _apply_first(layer: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The first layer on latents (B, d) -> flattened activations (B, F)."""
    if isinstance(layer, (nn.ConvTranspose2d, nn.Conv2d)):
        z = z[:, :, None, None]
    return layer(z).reshape(z.shape[0], -1)


def _device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in module.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def random_directions(latent_dim: int, K: int | None = None, seed: int = 0, generator: str = "") -> DirectionSet:
    K = latent_dim if K is None else int(K)
    if K < 1:
        raise ValueError(f"K must be positive, got {K}")
    a = torch.randn(latent_dim, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a = a / a.norm(dim=0, keepdim=True)
    return DirectionSet(A=a.float().numpy(), method="random", generator=generator, meta={"seed": seed, "K": K})


@torch.no_grad()
def first_layer_matrix(G: Any) -> torch.Tensor:
    """W (F, d): the first layer's linear response to each latent axis, float64 on the CPU."""
    d = _latent_dim(G)
    layer = _first_layer(G)
    device, dtype = _device_dtype(layer)
    basis = torch.cat([torch.zeros(1, d), torch.eye(d)]).to(device=device, dtype=dtype)
    out = _apply_first(layer, basis).double().cpu()
    return (out[1:] - out[:1]).T


@torch.no_grad()
def sefa_directions(G: Any, K: int | None = None, generator: str = "") -> DirectionSet:
    W = first_layer_matrix(G)
    K = _check_k(K, W.shape[1], "SeFa")
    evals, evecs = torch.linalg.eigh(W.T @ W)
    order = torch.argsort(evals, descending=True)[:K]
    A = _canonical_sign(evecs[:, order])
    return DirectionSet(A=A.float().numpy(), method="sefa", generator=generator,
                       meta={"K": K, "eigenvalues": evals[order].tolist()})


def _pca_scores(X: torch.Tensor, K: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """PCA of the rows of X (N, F): the coefficients (N, K) and the explained variances (K,).

    Exact SVD when X is small; for wide activations (the paper DCGAN's first layer has
    32768 features) a randomised SVD of the top K + 10 components (Halko et al.), which is
    exact to rounding for a rank-deficient X such as a linear layer's response to d < K + 10
    latent dimensions."""
    Xc = X - X.mean(dim=0, keepdim=True)
    n, f = Xc.shape
    if min(n, f) <= 512:
        u, s, _ = torch.linalg.svd(Xc, full_matrices=False)
    else:
        torch.manual_seed(seed)  # svd_lowrank draws its test matrix from the global RNG
        u, s, _ = torch.svd_lowrank(Xc, q=min(K + 10, n, f), niter=4)
    return u[:, :K] * s[:K], s[:K] ** 2 / (n - 1)


@torch.no_grad()
def ganspace_directions(G: Any, K: int | None = None, n_samples: int = 2000, seed: int = 0,
                        batch_size: int = 250, layer: nn.Module | None = None, generator: str = "") -> DirectionSet:
    d = _latent_dim(G)
    K = _check_k(K, d, "GANSpace")
    if n_samples <= d:
        raise ValueError(f"GANSpace needs more samples than latent dimensions ({n_samples} <= {d})")
    layer = layer if layer is not None else _first_layer(G)
    device, dtype = _device_dtype(layer)
    zs = torch.randn(n_samples, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    acts: list[torch.Tensor] = []
    if layer is _first_layer(G):
        run: Callable[[torch.Tensor], torch.Tensor] = lambda z: _apply_first(layer, z)  # noqa: E731
    else:
        run = _hooked(G, layer)
    for i in range(0, n_samples, batch_size):
        acts.append(run(zs[i:i + batch_size].to(device=device, dtype=dtype)).double().cpu())
    coeffs, variances = _pca_scores(torch.cat(acts), K, seed)
    # Regress z on the coefficients: z ~= coeffs @ U, U (K, d); row k is component k's latent direction.
    U = torch.linalg.lstsq(coeffs, zs - zs.mean(dim=0, keepdim=True)).solution
    A = U.T / U.T.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return DirectionSet(A=_canonical_sign(A).float().numpy(), method="ganspace", generator=generator,
                        meta={"K": K, "n_samples": n_samples, "seed": seed,
                              "explained_variance": variances.tolist()})


def _hooked(G: Any, layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(z: torch.Tensor) -> torch.Tensor:
        box: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda _m, _i, out: box.append(out))
        try:
            G.generate(z)
        finally:
            handle.remove()
        if not box:
            raise ValueError("the requested layer did not run during generate(z)")
        return box[0].reshape(z.shape[0], -1)
    return run


@torch.no_grad()
def encoded_pca_directions(vae: Any, slices: torch.Tensor | np.ndarray, K: int | None = None,
                           batch_size: int = 64, generator: str = "") -> DirectionSet:
    """PCA of ``vae.encode(x)`` over real slices (N, H, W) or (N, 1, H, W) in model space."""
    if not hasattr(vae, "encode"):
        raise TypeError(f"{type(vae).__name__} has no encode(x): encoded PCA needs a VAE")
    d = _latent_dim(vae)
    K = _check_k(K, d, "PCA of encoded slices")
    x = torch.as_tensor(np.asarray(slices, dtype=np.float32))
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[0] < 2:
        raise ValueError(f"expected at least two slices shaped (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    device, dtype = _device_dtype(vae)
    mus = torch.cat([vae.encode(x[i:i + batch_size].to(device=device, dtype=dtype)).double().cpu()
                     for i in range(0, x.shape[0], batch_size)])
    mc = mus - mus.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(mc, full_matrices=False)
    A = _canonical_sign(vh[:K].T)
    return DirectionSet(A=A.float().numpy(), method="pca-encoded", generator=generator,
                        meta={"K": K, "n_slices": int(x.shape[0]),
                              "explained_variance": (s[:K] ** 2 / (x.shape[0] - 1)).tolist()})


# The registry's entry points (``directions.METHODS``): one signature for every closed-form method.

def random_method(G: Any, K: int | None = None, *, seed: int = 0, generator: str = "", **_: Any) -> DirectionSet:
    return random_directions(_latent_dim(G), K, seed=seed, generator=generator)


def sefa_method(G: Any, K: int | None = None, *, generator: str = "", **_: Any) -> DirectionSet:
    return sefa_directions(G, K, generator=generator)


def ganspace_method(G: Any, K: int | None = None, *, seed: int = 0, n_samples: int = 2000, generator: str = "",
                    **_: Any) -> DirectionSet:
    return ganspace_directions(G, K, n_samples=n_samples, seed=seed, generator=generator)


def pca_encoded_method(G: Any, K: int | None = None, *, slices: Any = None, generator: str = "",
                       **_: Any) -> DirectionSet:
    return encoded_pca_directions(G, slices, K, generator=generator)


def compute_baseline(method: str, G: Any, K: int | None = None, *, slices: Any = None, seed: int = 0,
                     n_samples: int = 2000, generator: str = "") -> DirectionSet:
    """Run a closed-form method of the registry (``directions.METHODS``) by name; the set
    records G's preprocessing (its HU window)."""
    from ..models.registry import preprocessing_of

    spec = METHODS.get(method)
    if spec is None or spec.learned:
        raise ValueError(f"unknown baseline {method!r}; choose from {closed_form_methods()}")
    if "slices" in spec.needs and slices is None:
        raise ValueError(f"{method} needs real slices to encode")
    ds = spec.resolve()(G, K, slices=slices, seed=seed, n_samples=n_samples, generator=generator)
    ds.preprocessing = preprocessing_of(G).to_dict()
    return ds
