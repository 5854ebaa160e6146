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

Three feature spaces: the phantom probes (width, height, size, rotation,
y-position, thickness, breast size, z-level), standardised by the reference
sample (``probes``); the pixels themselves, area-averaged to 32x32
(``pixels``); and the TF-Inception pool3 features of FID (``inception``). FID is
computed from the same Inception features.

**Calibration ladder.** A figure means little without its scale, so every space
also scores the second real sample degraded on purpose, measured in the same
run: blurred by a Gaussian of 1 px and 2 px (``LADDER``). On the phantom the
Inception space saturates: a 1-px blur of *real* slices already has k-NN
precision and recall near 0 and FID about 5x the real-vs-real figure, because the
phantom's crisp synthetic texture dominates Inception features. There k-NN
precision and recall say nothing about anatomy, and FID is read against the
ladder. The probe and pixel spaces discriminate: blur moves them little.

**Checkerboard index** (``checkerboard_index``): the share of a slice's spectral
power at the checkerboard frequencies (pi, pi), (pi, 0), (0, pi), the
signature of stride-2 transposed convolutions, over the same share for the
reference real sample. Real slices score about 1, blurred ones less, a
generator that draws a grid much more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

K_NEIGHBOURS = 3  # Kynkäänniemi et al.'s choice
FEATURE_SPACES = ("inception", "probes", "pixels")
#: Spaces where k-NN precision and recall discriminate on phantom data (see the ladder above).
DISCRIMINATING_SPACES = ("probes", "pixels")
#: The calibration ladder: the second real sample, blurred (Gaussian sigma in pixels).
LADDER = (("blur 1 px", 1.0), ("blur 2 px", 2.0))
PIXEL_SIZE = 32
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
    from ..models.fid import trace_sqrt_product

    fa, fb = _as_tensor(a), _as_tensor(b)
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    ca, cb = torch.cov(fa.T), torch.cov(fb.T)
    return float((mu_a - mu_b).square().sum() + ca.trace() + cb.trace() - 2 * trace_sqrt_product(ca, cb))


@dataclass(frozen=True)
class Rung:
    """One step of the calibration ladder: the second real sample degraded on purpose."""

    name: str
    figures: PRD
    fid: float | None = None


@dataclass(frozen=True)
class SpaceQuality:
    """One feature space: the generator's figures, the real-vs-real ceiling and their ratios,
    and the calibration ladder (real degraded on purpose) measured in the same run."""

    space: str
    generated: PRD
    ceiling: PRD
    fid: float | None = None  # Inception space only
    fid_ceiling: float | None = None
    ladder: tuple[Rung, ...] = ()

    def ratio(self, name: str) -> float:
        top = getattr(self.ceiling, name)
        return getattr(self.generated, name) / top if top > 0 else float("nan")

    @property
    def discriminates(self) -> bool:
        return self.space in DISCRIMINATING_SPACES

    def to_dict(self) -> dict:
        d = {"space": self.space, "generated": asdict(self.generated), "ceiling": asdict(self.ceiling),
             "ratio": {n: self.ratio(n) for n in ("precision", "recall", "diversity")},
             "ladder": [{"name": r.name, "figures": asdict(r.figures), "fid": r.fid} for r in self.ladder]}
        if self.fid is not None:
            d["fid"], d["fid_ceiling"] = self.fid, self.fid_ceiling
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SpaceQuality:
        ladder = tuple(Rung(r["name"], PRD(**r["figures"]), r.get("fid")) for r in d.get("ladder", ()))
        return cls(d["space"], PRD(**d["generated"]), PRD(**d["ceiling"]), d.get("fid"), d.get("fid_ceiling"),
                   ladder)


def score_space(space: str, real_a: np.ndarray, real_b: np.ndarray, fake: np.ndarray,
                k: int = K_NEIGHBOURS, ladder: dict[str, np.ndarray] | None = None) -> SpaceQuality:
    """``real_a`` is the reference; ``real_b`` an independent real sample scored like ``fake``;
    ``ladder`` maps rung names to features of ``real_b`` degraded on purpose, scored the same way."""
    fid = fid_ceiling = None
    inception = space == "inception"
    if inception:
        fid, fid_ceiling = frechet_distance(real_a, fake), frechet_distance(real_a, real_b)
    rungs = tuple(Rung(name, precision_recall_diversity(real_a, f, k), frechet_distance(real_a, f) if inception else None)
                  for name, f in (ladder or {}).items())
    return SpaceQuality(space, precision_recall_diversity(real_a, fake, k),
                        precision_recall_diversity(real_a, real_b, k), fid, fid_ceiling, rungs)


# -- the checkerboard index --------------------------------------------------------------

def checkerboard_power(x: np.ndarray) -> np.ndarray:
    """(N, H, W) slices -> (N,) share of each slice's spectral power (mean removed) at the
    checkerboard frequencies (pi, pi), (pi, 0) and (0, pi)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 3 or x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(f"need (N, H, W) slices with even H and W, got shape {x.shape}")
    x = x - x.mean(axis=(1, 2), keepdims=True)
    h, w = x.shape[1:]
    # The three Nyquist coefficients are sums with +-1 weights: no full FFT needed.
    sy = np.where(np.arange(h) % 2, -1.0, 1.0)[:, None]
    sx = np.where(np.arange(w) % 2, -1.0, 1.0)[None, :]
    power = sum(np.einsum("nij,ij->n", x, np.broadcast_to(s, (h, w))) ** 2 for s in (sy * sx, sy, sx))
    total = h * w * np.square(x).sum(axis=(1, 2))  # Parseval: the sum of |FFT|^2
    return np.divide(power, total, out=np.zeros_like(power), where=total > 0)


@dataclass(frozen=True)
class Checkerboard:
    """Checkerboard power of generated slices (and of the second real sample, the ceiling)
    over that of the reference real sample: about 1 for real data."""

    generated: float
    real: float

    def to_dict(self) -> dict:
        return asdict(self)


def checkerboard_index(fake: np.ndarray, real_a: np.ndarray, real_b: np.ndarray | None = None) -> Checkerboard:
    ref = float(checkerboard_power(real_a).mean())
    ratio = (lambda x: float(checkerboard_power(x).mean()) / ref) if ref > 0 else (lambda x: float("nan"))
    return Checkerboard(ratio(fake), ratio(real_b) if real_b is not None else 1.0)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (N, H, W) slices in the image plane (the ladder's degradation)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(x, np.float32), sigma=(0, sigma, sigma), mode="nearest")


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


def pixel_features(x: np.ndarray, size: int = PIXEL_SIZE) -> np.ndarray:
    """Model-space slices area-averaged to ``size`` x ``size``, flattened: anatomy at the scale a
    reader sees it, without the texture that dominates Inception features."""
    x = np.asarray(x, np.float32)
    n, h, w = x.shape
    fh, fw = max(h // size, 1), max(w // size, 1)
    x = x[:, : h - h % fh, : w - w % fw]
    return x.reshape(n, h // fh, fh, w // fw, fw).mean((2, 4)).reshape(n, -1).astype(np.float64)


def inception_features(x: np.ndarray, batch: int = 50, weights: str | None = None,
                       device: str | torch.device = "cpu") -> np.ndarray:
    """(N, 2048) TF-Inception pool3 features of model-space slices (N, H, W)."""
    from ..models.fid import InceptionPool3

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
    checkerboard: Checkerboard | None = None

    def space(self, name: str) -> SpaceQuality:
        for s in self.spaces:
            if s.space == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict:
        d = {"n": self.n, "reference": self.reference, "k": K_NEIGHBOURS,
             "spaces": {s.space: s.to_dict() for s in self.spaces}}
        if self.checkerboard is not None:
            d["checkerboard"] = self.checkerboard.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> QualityReport:
        cb = d.get("checkerboard")
        return cls(int(d["n"]), tuple(SpaceQuality.from_dict(s) for s in d["spaces"].values()), d["reference"],
                   Checkerboard(**cb) if cb else None)

    def lines(self) -> list[str]:
        out = [(f"generator quality: {self.n} samples against {self.reference} (k = {K_NEIGHBOURS}; "
               "ratio = generator / real-vs-real ceiling)")]
        for s in self.spaces:
            g, c = s.generated, s.ceiling
            out.append(f"  {s.space:9s} precision {g.precision:.3f} / {c.precision:.3f} = {s.ratio('precision'):.2f}"
                       f"   recall {g.recall:.3f} / {c.recall:.3f} = {s.ratio('recall'):.2f}"
                       f"   diversity {g.diversity:.2f} (ceiling {c.diversity:.2f})")
            if s.ladder:
                rungs = ", ".join(f"{r.name} p {r.figures.precision:.2f} r {r.figures.recall:.2f}" for r in s.ladder)
                out.append(f"  {'':9s} scale: real p {c.precision:.2f} r {c.recall:.2f}, {rungs}")
            if s.fid is not None:
                rungs = "".join(f", {r.name} {r.fid:.1f}" for r in s.ladder if r.fid is not None)
                out.append(f"  {'':9s} FID {s.fid:.1f} (scale: real vs real {s.fid_ceiling:.1f}{rungs})")
            if s.space == "inception":
                out.append(f"  {'':9s} (Inception k-NN precision/recall saturate on phantom data: a 1-px blur of real "
                           "slices scores near 0; read FID against its scale)")
        if self.checkerboard is not None:
            out.append(f"  checkerboard index {self.checkerboard.generated:.2f} (real slices "
                       f"{self.checkerboard.real:.2f}; power at the grid frequencies over real data's)")
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
    spaces = tuple(spaces)
    unknown = [s for s in spaces if s not in FEATURE_SPACES]
    if unknown:
        raise ValueError(f"unknown feature space {unknown[0]!r}; choose from {FEATURE_SPACES}")
    degraded = {name: blur(real_b, sigma) for name, sigma in LADDER}
    out = []
    for space in spaces:
        if space == "probes":
            fa, ref = probe_features(real_a)

            def feats(x: np.ndarray, ref: np.ndarray = ref) -> np.ndarray:
                return probe_features(x, ref)[0]
        elif space == "pixels":
            fa, feats = pixel_features(real_a), pixel_features
        else:
            def feats(x: np.ndarray) -> np.ndarray:
                return inception_features(x, weights=fid_weights, device=device)
            fa = feats(real_a)
        out.append(score_space(space, fa, feats(real_b), feats(fake),
                               ladder={name: feats(x) for name, x in degraded.items()}))
    return QualityReport(len(fake), tuple(out), reference, checkerboard_index(fake, real_a, real_b))


#: Samples scored when a training run finishes (``latentdirs train`` and the training dock).
AFTER_TRAINING_N = 200


def quality_after_training(generator_file: str | Path, reference: str | None, n: int = AFTER_TRAINING_N,
                           seed: int = 0) -> QualityReport | None:
    """Probe-space precision / recall / diversity of a freshly trained generator against the data it
    imitates (``"phantom"`` or a slice cache folder); None when there is no reference to compare with
    (a ``.npy`` of slices). Inception features are left to ``latentdirs quality``: minutes on a CPU."""
    if reference is None or n <= 0:
        return None
    if reference != "phantom":  # a small cache (a DICOM folder of a few patients): fewer samples, not an error
        rows = held_out_size(reference)
        n = min(n, rows // 2)
        if n < MIN_AFTER_TRAINING_N:
            raise ValueError(f"the test split of {reference} holds only {rows} slices, and two real samples of "
                             f"{MIN_AFTER_TRAINING_N} are needed (a folder with more patients gives a larger test split)")
    from ..models.registry import load_generator

    return generator_quality(load_generator(generator_file), reference, n=n, seed=seed, spaces=DISCRIMINATING_SPACES)


#: Fewest samples per set for a quality figure after training (k-NN with k = 3 needs a few neighbours).
MIN_AFTER_TRAINING_N = 20


def held_out_size(cache_dir: str | Path) -> int:
    """Slices in the test split of a slice cache."""
    from ..data.cache import SliceCache

    cache = SliceCache(cache_dir)
    try:
        return int(np.asarray(cache.indices("test")).size)
    finally:
        cache.close()


def quality_metrics(rep: QualityReport) -> dict[str, float]:
    """The ratios to the ceiling as flat metrics (``quality/probes/recall_ratio`` ...)."""
    out = {f"quality/{s.space}/{name}_ratio": s.ratio(name) for s in rep.spaces
           for name in ("precision", "recall", "diversity")}
    if rep.checkerboard is not None:
        out["quality/checkerboard_index"] = rep.checkerboard.generated
    return out

