"""How well a generator covers the data it imitates: k-NN precision, recall and diversity.

Precision and recall follow Kynkäänniemi et al. (2019, "Improved precision and
recall metric for assessing generative models"): each real feature vector gets
a ball whose radius is the distance to its k-th nearest real neighbour; the
union of those balls approximates the real manifold. *Precision* is the share
of generated samples inside it; *recall* is the share of real samples inside
the generated manifold built the same way. *Diversity* is the mean pairwise
feature distance among generated samples over the same figure for real ones.

Every figure is set beside a **ceiling** measured in the same run: a second,
independent real sample scored against the first exactly as a generator would
be. A perfect generator reaches the ceiling, not 1.0 (finite samples leave
holes in any k-NN manifold), so ``ratio = figure / ceiling`` is what reads
across sample sizes and feature spaces.

Two feature spaces: the TF-Inception pool3 features of FID (``inception``),
and the phantom probes (width, height, size, rotation, y-position, thickness,
breast size, z-level), standardised by the reference sample (``probes``).
FID is computed from the same Inception features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

K_NEIGHBOURS = 3  # Kynkäänniemi et al.'s choice
FEATURE_SPACES = ("inception", "probes")
# Standardised probe values are clipped here, and a measurement the probes
# cannot make (no body outline) takes this value: far outside every k-NN ball
# (radii are about half a standard deviation), so it counts as a miss, while
# diversity stays a bounded distance.
PROBE_CLIP = 8.0


def _as_tensor(f: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(f, dtype=np.float64))
    if t.ndim != 2 or t.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got shape {tuple(t.shape)}")
    return t


def _pairwise(a: torch.Tensor, b: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    return torch.cat([torch.cdist(a[i:i + chunk], b) for i in range(0, a.shape[0], chunk)])


def knn_radii(feats: torch.Tensor, k: int = K_NEIGHBOURS) -> torch.Tensor:
    """Distance from each row to its k-th nearest *other* row."""
    if feats.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples for k-NN radii, got {feats.shape[0]}")
    d = _pairwise(feats, feats)
    d.fill_diagonal_(math.inf)
    return d.kthvalue(k, dim=1).values


def coverage(manifold: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor) -> float:
    """Share of ``queries`` inside the union of balls (``manifold`` rows, ``radii``)."""
    d = _pairwise(queries, manifold)
    return float((d <= radii[None, :]).any(dim=1).double().mean())


def mean_pairwise_distance(feats: torch.Tensor) -> float:
    d = _pairwise(feats, feats)
    n = feats.shape[0]
    return float(d.sum() / (n * (n - 1)))


@dataclass(frozen=True)
class PRD:
    precision: float
    recall: float
    diversity: float  # mean pairwise distance over that of the reference real sample


def precision_recall_diversity(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor,
                               k: int = K_NEIGHBOURS) -> PRD:
    r, f = _as_tensor(real), _as_tensor(fake)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: real {r.shape[1]}, generated {f.shape[1]}")
    return PRD(
        precision=coverage(r, knn_radii(r, k), f),
        recall=coverage(f, knn_radii(f, k), r),
        diversity=mean_pairwise_distance(f) / mean_pairwise_distance(r),
    )


def frechet_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """FID's Frechet distance between two feature sets (Gaussian fits)."""
    from ..training.fid import trace_sqrt_product

    fa, fb = _as_tensor(a), _as_tensor(b)
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    ca, cb = torch.cov(fa.T), torch.cov(fb.T)
    return float((mu_a - mu_b).square().sum() + ca.trace() + cb.trace() - 2 * trace_sqrt_product(ca, cb))


@dataclass(frozen=True)
class SpaceQuality:
    """One feature space: the generator's figures, the real-vs-real ceiling and their ratios."""

    space: str
    generated: PRD
    ceiling: PRD
    fid: float | None = None  # Inception space only
    fid_ceiling: float | None = None

    def ratio(self, name: str) -> float:
        top = getattr(self.ceiling, name)
        return getattr(self.generated, name) / top if top > 0 else float("nan")

    def to_dict(self) -> dict:
        d = {"space": self.space, "generated": asdict(self.generated), "ceiling": asdict(self.ceiling),
             "ratio": {n: self.ratio(n) for n in ("precision", "recall", "diversity")}}
        if self.fid is not None:
            d["fid"], d["fid_ceiling"] = self.fid, self.fid_ceiling
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SpaceQuality:
        return cls(d["space"], PRD(**d["generated"]), PRD(**d["ceiling"]), d.get("fid"), d.get("fid_ceiling"))


def score_space(space: str, real_a: np.ndarray, real_b: np.ndarray, fake: np.ndarray,
                k: int = K_NEIGHBOURS) -> SpaceQuality:
    """``real_a`` is the reference; ``real_b`` an independent real sample scored like ``fake``."""
    fid = fid_ceiling = None
    if space == "inception":
        fid, fid_ceiling = frechet_distance(real_a, fake), frechet_distance(real_a, real_b)
    return SpaceQuality(space, precision_recall_diversity(real_a, fake, k),
                        precision_recall_diversity(real_a, real_b, k), fid, fid_ceiling)


# -- feature extractors ------------------------------------------------------------------

def probe_features(x: np.ndarray, reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Phantom probe measurements of model-space slices, standardised.

    Returns (features, reference_stats): ``reference`` is a (2, 8) mean/std pair
    from an earlier call on the reference sample; without it the stats come from
    ``x`` itself. Unmeasurable slices land far from everything.
    """
    from ..probes.factors import PROBE_NAMES
    from ..probes.outline import measure

    m = measure(np.asarray(x, np.float32))
    raw = np.stack([np.asarray(m[name], np.float64) for name in PROBE_NAMES], axis=1)
    if reference is None:
        mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
        reference = np.stack([mean, np.where(std > 0, std, 1.0)])
    z = (raw - reference[0]) / reference[1]
    z[~np.isfinite(z)] = PROBE_CLIP
    return np.clip(z, -PROBE_CLIP, PROBE_CLIP), reference


def inception_features(x: np.ndarray, batch: int = 50, weights: str | None = None,
                       device: str | torch.device = "cpu") -> np.ndarray:
    """(N, 2048) TF-Inception pool3 features of model-space slices (N, H, W)."""
    from ..training.fid import InceptionPool3

    net = InceptionPool3(weights).to(device)
    t = torch.as_tensor(np.asarray(x, np.float32))
    if t.ndim == 3:
        t = t[:, None]
    out = [net(t[i:i + batch].to(device)).cpu() for i in range(0, t.shape[0], batch)]
    return torch.cat(out).numpy()


# -- one generator against real data -----------------------------------------------------

@dataclass(frozen=True)
class QualityReport:
    n: int
    spaces: tuple[SpaceQuality, ...]
    reference: str  # what the real samples are

    def space(self, name: str) -> SpaceQuality:
        for s in self.spaces:
            if s.space == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"n": self.n, "reference": self.reference, "k": K_NEIGHBOURS,
                "spaces": {s.space: s.to_dict() for s in self.spaces}}

    @classmethod
    def from_dict(cls, d: dict) -> QualityReport:
        return cls(int(d["n"]), tuple(SpaceQuality.from_dict(s) for s in d["spaces"].values()), d["reference"])

    def lines(self) -> list[str]:
        out = [(f"generator quality: {self.n} samples against {self.reference} (k = {K_NEIGHBOURS}; "
               "ratio = generator / real-vs-real ceiling)")]
        for s in self.spaces:
            g, c = s.generated, s.ceiling
            out.append(f"  {s.space:9s} precision {g.precision:.3f} / {c.precision:.3f} = {s.ratio('precision'):.2f}"
                       f"   recall {g.recall:.3f} / {c.recall:.3f} = {s.ratio('recall'):.2f}"
                       f"   diversity {g.diversity:.2f} (ceiling {c.diversity:.2f})")
            if s.fid is not None:
                out.append(f"  {'':9s} FID {s.fid:.1f} (real vs real {s.fid_ceiling:.1f})")
        return out


def sample_generator(generate: Callable[[torch.Tensor], torch.Tensor], latent_dim: int, n: int, seed: int,
                     batch: int = 100, device: str | torch.device = "cpu") -> np.ndarray:
    """(n, H, W) model-space samples of G(z), z ~ N(0, I) from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for i in range(0, n, batch):
            z = torch.randn(min(batch, n - i), latent_dim, generator=g).to(device)
            out.append(generate(z).float()[:, 0].cpu())
    return torch.cat(out).numpy()


#: Seeds of the two held-out phantom samples; training never draws them (demo data uses seed 0 upward
#: by small integers, and the main job writes DICOM trees from its own seed).
PHANTOM_HELDOUT_SEEDS = (1_000_003, 1_000_033)


def real_pair(data: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Two independent real samples of ``n`` model-space slices, and what they are.

    ``data`` is ``phantom`` (fresh phantom slices from two held-out seeds) or a
    slice cache folder (two disjoint random subsets of its test split).
    """
    if data == "phantom":
        from ..phantom.sampling import sample_slices

        a, _ = sample_slices(n, PHANTOM_HELDOUT_SEEDS[0] + seed)
        b, _ = sample_slices(n, PHANTOM_HELDOUT_SEEDS[1] + seed)
        return a, b, f"two held-out phantom samples of {n}"
    from ..data.cache import SliceCache

    cache = SliceCache(data)
    try:
        rows = np.asarray(cache.indices("test"))
        if rows.size < 2 * n:
            raise ValueError(f"{data}: the test split has {rows.size} slices; {2 * n} are needed for two "
                             f"samples of {n} (use a smaller --n)")
        pick = np.random.default_rng(seed).choice(rows, size=2 * n, replace=False)
        x = np.asarray(cache.read_many([int(i) for i in np.sort(pick[:n])]), np.float32)
        y = np.asarray(cache.read_many([int(i) for i in np.sort(pick[n:])]), np.float32)
    finally:
        cache.close()
    shape = x.shape[-2:]
    return x.reshape(-1, *shape), y.reshape(-1, *shape), f"two disjoint samples of {n} from the test split of {data}"


def generator_quality(generator, data: str = "phantom", n: int = 500, seed: int = 0,
                      spaces: Iterable[str] = FEATURE_SPACES, fid_weights: str | None = None,
                      device: str | torch.device = "cpu") -> QualityReport:
    """Sample ``n`` images of ``generator.generate`` and score them against ``data``."""
    real_a, real_b, what = real_pair(data, n, seed)
    fake = sample_generator(generator.generate, generator.latent_dim, n, seed + 7, device=device)
    return measure_quality(fake, real_a, real_b, what, spaces, fid_weights, device)


def measure_quality(fake: np.ndarray, real_a: np.ndarray, real_b: np.ndarray, reference: str,
                    spaces: Iterable[str] = FEATURE_SPACES, fid_weights: str | None = None,
                    device: str | torch.device = "cpu") -> QualityReport:
    """Score generated slices against two independent real samples of the same size."""
    if not (len(fake) == len(real_a) == len(real_b)):
        raise ValueError(f"use samples of one size: generated {len(fake)}, real {len(real_a)} and {len(real_b)}")
    out = []
    for space in spaces:
        if space == "probes":
            fa, ref = probe_features(real_a)
            fb, _ = probe_features(real_b, ref)
            ff, _ = probe_features(fake, ref)
        elif space == "inception":
            fa, fb, ff = (inception_features(x, weights=fid_weights, device=device) for x in (real_a, real_b, fake))
        else:
            raise ValueError(f"unknown feature space {space!r}; choose from {FEATURE_SPACES}")
        out.append(score_space(space, fa, fb, ff))
    return QualityReport(len(fake), tuple(out), reference)


#: Samples scored when a training run finishes (``latentdirs train`` and the training dock).
AFTER_TRAINING_N = 200


def quality_after_training(generator_file: str | Path, reference: str | None, n: int = AFTER_TRAINING_N,
                           seed: int = 0) -> QualityReport | None:
    """Probe-space precision / recall / diversity of a freshly trained generator against the data it
    imitates (``"phantom"`` or a slice cache folder); None when there is no reference to compare with
    (a ``.npy`` of slices). Inception features are left to ``latentdirs quality``: minutes on a CPU."""
    if reference is None or n <= 0:
        return None
    from ..models.registry import load_generator

    return generator_quality(load_generator(generator_file), reference, n=n, seed=seed, spaces=("probes",))


def quality_metrics(rep: QualityReport) -> dict[str, float]:
    """The ratios to the ceiling as flat metrics (``quality/probes/recall_ratio`` ...)."""
    return {f"quality/{s.space}/{name}_ratio": s.ratio(name) for s in rep.spaces for name in ("precision", "recall", "diversity")}
