"""A set of latent directions, whatever method found it.

Every method (Voynov unit/ortho, random, PCA/GANSpace, SeFa) writes the same
file: ``<name>.safetensors`` holding ``A`` of shape (latent_dim, K) whose
columns are directions (a shift is ``z + alpha * A[:, k]``), plus a JSON
sidecar with ``method``, ``generator`` (fingerprint of the generator
checkpoint), ``labels`` (optional, one per column), ``metrics`` and
``preprocessing`` (the HU window of the generator's images, copied from the
generator; absent in older sets, which then decode with the default window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils.weights import load_weights, save_weights

FORMAT = "napari-latentdirs/direction-set/1"

#: Reconstructor accuracy below which a learned set counts as not learned (the report, the main
#: job's comparison and the napari widgets all use it).
LEARNED_RCA = 0.5
NOT_LEARNED = "directions not learned: labels reflect the random initialisation"


@dataclass
class DirectionSet:
    A: np.ndarray  # (latent_dim, K)
    method: str
    generator: str = ""  # fingerprint (sha256) of the generator checkpoint
    labels: list[str] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None  # the generator's (Preprocessing.to_dict()); None: not recorded

    def __post_init__(self) -> None:
        self.A = np.asarray(self.A, dtype=np.float32)
        if self.preprocessing is not None:
            from ..data.preprocess import Preprocessing

            self.preprocessing = Preprocessing.from_dict(self.preprocessing).to_dict()
        if self.A.ndim != 2:
            raise ValueError(f"A must be 2-D (latent_dim, K), got shape {self.A.shape}")
        if not np.isfinite(self.A).all():
            bad = sorted({int(k) for k in np.nonzero(~np.isfinite(self.A))[1]})
            raise ValueError(f"A has non-finite values (NaN or inf) in direction(s) {bad[:10]}")
        # Norms in float32, as every consumer computes them: a finite A whose |a_k|^2 overflows
        # (entries near 1e19 and up) would give inf norms, NaN unit directions and NaN reviews.
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.sqrt(np.sum(self.A * self.A, axis=0, dtype=np.float32))
        if not np.isfinite(norms).all():
            bad = [int(k) for k in np.nonzero(~np.isfinite(norms))[0]]
            raise ValueError(f"direction(s) {bad[:10]} have column norms that overflow float32 "
                             "(entries too large for a direction); refused")
        if self.labels is not None and len(self.labels) != self.K:
            raise ValueError(f"{len(self.labels)} labels for {self.K} directions")

    @property
    def latent_dim(self) -> int:
        return int(self.A.shape[0])

    @property
    def K(self) -> int:  # the paper's symbol
        return int(self.A.shape[1])

    def not_learned(self) -> str | None:
        """The warning for a learned set whose RCA stayed below :data:`LEARNED_RCA`; None otherwise
        (closed-form and random sets carry no RCA)."""
        rca = self.metrics.get("rca")
        if not isinstance(rca, int | float) or rca >= LEARNED_RCA:
            return None
        return f"{NOT_LEARNED} (RCA {rca:.3f}; chance {1 / self.K:.3f})"

    def made_for_another(self, fingerprint: str) -> str | None:
        """The warning when the set records a generator other than the one with ``fingerprint``;
        None when they agree or either is unknown. Each caller says what follows for its output."""
        if not (self.generator and fingerprint) or self.generator == fingerprint:
            return None
        return (f"the direction set was made for another generator (fingerprint {self.generator[:12]}…, "
                f"this one {fingerprint[:12]}…)")

    def direction(self, k: int) -> np.ndarray:
        return self.A[:, k]

    def save(self, path: str | Path) -> Path:
        meta = {
            "format": FORMAT,
            "method": self.method,
            "generator": self.generator,
            "labels": self.labels,
            "metrics": self.metrics,
            "latent_dim": self.latent_dim,
            "K": self.K,
            "meta": self.meta,
        }
        if self.preprocessing is not None:
            meta["preprocessing"] = self.preprocessing
        return save_weights(path, {"A": torch.from_numpy(self.A)}, meta)

    @classmethod
    def load(cls, path: str | Path) -> DirectionSet:
        tensors, meta = load_weights(path, expected=lambda name: name == "A")  # a set holds A and nothing else
        if meta.get("format") != FORMAT or "A" not in tensors:
            raise ValueError(f"{path} is not a napari-latentdirs direction set")
        labels, metrics, extra = meta.get("labels"), meta.get("metrics", {}), meta.get("meta", {})
        if labels is not None and not (isinstance(labels, list) and all(isinstance(v, str) for v in labels)):
            raise ValueError(f"{path}: 'labels' must be a list of strings")
        if not isinstance(meta.get("method"), str):
            raise ValueError(f"{path}: the direction set has no 'method' string in its metadata")
        if not isinstance(metrics, dict) or not isinstance(extra, dict):
            raise ValueError(f"{path}: 'metrics' and 'meta' must be JSON objects")
        try:
            return cls(
                A=tensors["A"].float().numpy(),
                method=meta["method"],
                generator=str(meta.get("generator", "")),
                labels=labels,
                metrics=metrics,
                meta=extra,
                preprocessing=meta.get("preprocessing"),
            )
        except ValueError as exc:  # name the file: a direction set is often opened far from where it was made
            raise ValueError(f"{path}: {exc}") from exc
