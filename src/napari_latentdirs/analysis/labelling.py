"""Automatic labelling of latent directions by measurement.

For every direction d_k (a column of a DirectionSet, normalised to unit
length) and many latents z_i ~ N(0, I) we generate G(z_i + alpha d_k) for a few
alphas both ways, measure every factor with a pluggable probe set, and fit per
latent the slope of each factor against alpha (least squares through the
unshifted image, over the alphas whose shifted image the probe could measure:
``s = sum(alpha * delta) / sum(alpha^2)``, both sums over finite deltas only,
``fit_slopes``). Slopes are standardised by the factor's natural spread over
the unshifted samples and multiplied by the largest alpha, so an effect of 1
means "across the shift range this direction moves the factor by one natural
standard deviation".

- **effect** E_kj = |mean_i slope| (standardised), with a percentile
  bootstrap confidence interval over latents;
- **significant effect** (``significant_effects``) = the full effect E_kj
  where a t-test over latents says it differs from 0 (|mean| > ``z`` t-based
  standard errors, z widened to the t quantile for few latents), else 0.
  Why test-and-keep rather than subtracting ``z`` SE from every effect (the
  rule before issue 18): subtraction removes the same absolute amount from
  every effect, so it wipes out the small side effects of a weak direction
  while a strong direction keeps most of its large ones. Weak (random)
  directions then looked selective and strong (learned) ones did not. With
  test-and-keep a side effect that is measurable counts at its full size
  whatever the direction's strength; probe noise on an untouched factor still
  counts as 0. The remaining asymmetry, side effects too small to detect,
  only helps directions below the effect floor, which no statistic credits;
- **selectivity** = the top factor's significant effect over itself plus
  every other significant effect that is not one of its known physical
  consequences (``ProbeSet.consequences``; e.g. more fat also widens the
  body). Without consequences it is the top effect's share of the total.
  For the phantom probes width/height/size are first re-expressed so that
  a common scaling counts as "size" (see ``size_family``);
- **label** = the top factor when selectivity >= ``selectivity_threshold``
  (0.6), "entangled" when below, "no effect" when the top significant effect
  is below ``min_effect`` (0.3 natural SDs). This strict single-factor label is
  the criterion for "factor found". Calibration (tests/analysis/
  test_labelling.py): the six known directions of the analytic ellipse
  generator are labelled with their factor and random directions are not; the
  phantom rendered along each of its eight nominal factors gives its true
  factor. Thresholds are stored with every result;
- **description** (``describe_directions``) = the top two significant factors
  with their signs and shares of the direction's significant effects, e.g.
  "width ↑ 0.48 · height ↓ 0.31", or "no effect": what the viewer sees where
  the strict label says "entangled";
- **per-factor selectivity** (``factor_selectivity_from``), the statistic the
  comparison of direction sets uses: for every factor, the best selectivity
  *for that factor* over all directions whose significant effect on it
  reaches ``min_effect`` (natural SDs at the largest shift), one direction per
  duplicate group. It is symmetric between sets: no direction needs the
  factor as its top factor, and a set gets no extra chances from many copies
  of one change;
- **consistency** = fraction of latents whose slope on the top factor has the
  sign of the mean slope; a label also needs ``min_consistency`` (0.75), else
  the direction counts as "entangled" (it does different things to different
  latents); **score** = top effect x consistency ranks directions.
- **duplicates** are directions (with an effect) whose signed effect vectors
  have ``|cosine| >= duplicate_effect_corr`` *and* whose image changes
  G(z + a d) - G(z - a d) have mean |cosine| >= ``duplicate_image_corr``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..directions.collapse import linked_groups
from ..directions.set import DirectionSet
from ..models.interface import LatentGenerator
from ..probes.base import ProbeSet

NO_EFFECT = "no effect"
ENTANGLED = "entangled"


@dataclass
class LabelConfig:
    n_latents: int = 64
    alphas: tuple[float, ...] = (-3.0, -1.5, 1.5, 3.0)
    selectivity_threshold: float = 0.6
    min_effect: float = 0.3  # significant standardised effect below which a direction does "nothing"
    z: float = 2.0  # an effect is significant above z standard errors (widened to a t quantile for few latents)
    min_consistency: float = 0.75  # share of latents that must agree on the sign of the top effect
    n_boot: int = 200
    top_fraction: float = 0.5  # a factor may explain a direction if its effect is >= this share of the largest
    duplicate_effect_corr: float = 0.9
    duplicate_image_corr: float = 0.8
    image_latents: int = 16  # latents kept (at 32x32) for the duplicate image test
    batch_size: int = 128
    seed: int = 0
    normalise: bool = True  # shift along unit-length directions


@dataclass
class LabelResult:
    factors: list[str]
    probe_set: str
    method: str
    effects: np.ndarray  # (K, F) standardised |mean slope| x alpha_max
    signed: np.ndarray  # (K, F) signed version
    ci_low: np.ndarray  # (K, F) bootstrap CI of the effect
    ci_high: np.ndarray
    significant: np.ndarray  # (K, F) the effect where a t-test over latents finds it, else 0
    selectivity: np.ndarray  # (K,)
    consistency: np.ndarray  # (K,)
    image_change: np.ndarray  # (K,) mean |G(z+a d) - G(z)| at the largest alpha
    labels: list[str]
    top_factor: list[str]
    score: np.ndarray  # (K,)
    rank: np.ndarray  # (K,) 1 = best
    groups: list[list[int]]  # duplicate groups (size >= 2)
    factor_sd: np.ndarray  # (F,) natural spread used for standardising
    config: dict[str, Any]
    valid_fraction: float = 1.0  # share of unshifted samples the probes accepted
    # (K, n, F) standardised per-latent slopes the effects come from; lets ``analysis.comparison``
    # bootstrap over latents. None in files written before it was kept.
    slopes: np.ndarray | None = None
    # The probe set's known consequences (factor -> factors it also moves), for the per-factor statistic.
    consequences: dict[str, list[str]] = field(default_factory=dict)

    @property
    def K(self) -> int:
        return int(self.effects.shape[0])

    def group_of(self, k: int) -> int | None:
        for g, members in enumerate(self.groups):
            if k in members:
                return g
        return None

    def table(self) -> list[dict[str, Any]]:
        """One row per direction, best first."""
        rows = []
        for k in np.argsort(self.rank):
            j = self.factors.index(self.top_factor[k])
            rows.append(
                {
                    "direction": int(k),
                    "rank": int(self.rank[k]),
                    "label": self.labels[k],
                    "top_factor": self.top_factor[k],
                    "effect": float(self.effects[k, j]),
                    "ci": [float(self.ci_low[k, j]), float(self.ci_high[k, j])],
                    "sign": "+" if self.signed[k, j] >= 0 else "-",
                    "selectivity": float(self.selectivity[k]),
                    "consistency": float(self.consistency[k]),
                    "image_change": float(self.image_change[k]),
                    "group": self.group_of(int(k)),
                }
            )
        return rows

    def found(self) -> dict[str, dict[str, Any]]:
        """Per factor, the best selective direction that carries its label (if any)."""
        out: dict[str, dict[str, Any]] = {}
        for f in self.factors:
            ks = [k for k in range(self.K) if self.labels[k] == f]
            if not ks:
                continue
            k = max(ks, key=lambda i: self.score[i])
            out[f] = {"direction": int(k), "selectivity": float(self.selectivity[k]), "effect": float(self.effects[k, self.factors.index(f)])}
        return out

    def factor_selectivity(self, min_effect: float | None = None) -> dict[str, float]:
        """Per factor, the best selectivity for it over the directions whose significant effect on it reaches
        ``min_effect`` (default: the labelling's), one direction per duplicate group (``factor_selectivity_from``)."""
        thr = self.config.get("min_effect", 0.0) if min_effect is None else min_effect
        best = factor_selectivity_from(self.significant, self.factors, self.consequences, thr, self.keep())
        return {f: float(best[j]) for j, f in enumerate(self.factors)}

    def keep(self) -> np.ndarray:
        """The directions that stand for the set: one per duplicate group (``representatives``)."""
        return representatives(self.groups, self.K, self.score)

    def descriptions(self) -> list[str]:
        """Per direction, its top two factors with signs and shares (``describe_directions``)."""
        return describe_directions(self)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key, val in asdict(self).items():
            d[key] = val.tolist() if isinstance(val, np.ndarray) else val
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelResult:
        arrays = {"effects", "signed", "ci_low", "ci_high", "significant", "selectivity", "consistency", "image_change",
                  "score", "rank", "factor_sd", "slopes"}
        kw = {k: (np.asarray(v, dtype=np.float64) if k in arrays and v is not None else v) for k, v in d.items()}
        kw["rank"] = kw["rank"].astype(np.int64)
        kw["groups"] = [list(map(int, g)) for g in kw["groups"]]
        return cls(**kw)

    def save(self, path: str | Path) -> Path:
        from ..utils.atomic import atomic_write_text

        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> LabelResult:
        return cls.from_dict(json.loads(Path(path).read_text()))


@torch.no_grad()
def generate_images(generator: LatentGenerator, z: np.ndarray | torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """(N, d) latents -> (N, H, W) float32 model-space images on the CPU."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    device = _device_of(generator)
    out = []
    for i in range(0, z.shape[0], batch_size):
        x = generator.generate(z[i : i + batch_size].to(device))
        out.append(x[:, 0].float().cpu().numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, 0, 0), np.float32)


def _device_of(generator: LatentGenerator) -> torch.device:
    if isinstance(generator, torch.nn.Module):
        for p in generator.parameters():
            return p.device
    return torch.device("cpu")


def _wrap(delta: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """Wrap differences of circular factors into (-period/2, period/2]."""
    out = delta.copy()
    circ = periods > 0
    if circ.any():
        p = periods[circ]
        out[..., circ] = (delta[..., circ] + p / 2) % p - p / 2
    return out


def _circular_sd(values: np.ndarray, period: float) -> float:
    ang = values * 2 * np.pi / period
    r = np.hypot(np.nanmean(np.cos(ang)), np.nanmean(np.sin(ang)))
    return float(np.sqrt(-2 * np.log(max(r, 1e-12))) * period / (2 * np.pi))


def _downsample(x: np.ndarray, size: int = 32) -> np.ndarray:
    n, h, w = x.shape
    fh, fw = max(h // size, 1), max(w // size, 1)
    return x[:, : h - h % fh, : w - w % fw].reshape(n, h // fh, fh, w // fw, fw).mean((2, 4))


def _duplicate_groups(signed: np.ndarray, diffs: np.ndarray, active: np.ndarray, cfg: LabelConfig) -> list[list[int]]:
    k = signed.shape[0]
    linked = np.zeros((k, k), bool)
    idx = np.flatnonzero(active)
    if idx.size >= 2:
        e = signed[idx] / (np.linalg.norm(signed[idx], axis=1, keepdims=True) + 1e-12)
        ecorr = np.abs(e @ e.T)
        d = diffs[idx].reshape(idx.size, diffs.shape[1], -1)
        d = d / (np.linalg.norm(d, axis=2, keepdims=True) + 1e-12)
        # mean over latents of |cos| between the two directions' image changes
        icorr = np.abs(np.einsum("anp,bnp->abn", d, d)).mean(2)
        both = (ecorr >= cfg.duplicate_effect_corr) & (icorr >= cfg.duplicate_image_corr)
        linked[np.ix_(idx, idx)] = np.triu(both, k=1)
    return linked_groups(k, linked)


def fit_slopes(alphas: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """(A,) shifts and (A, n, F) factor changes -> (n, F) least-squares slopes through the origin.

    Each slope uses only the shifts whose change is finite: a probe that failed
    on some shifted images must not shrink the slope by counting their alpha^2
    in the denominator. NaN where no shift of that latent could be measured.
    """
    a = np.asarray(alphas, dtype=np.float64).reshape(-1, *([1] * (delta.ndim - 1)))
    fin = np.isfinite(delta)
    num = np.sum(np.where(fin, a * np.where(fin, delta, 0.0), 0.0), 0)
    den = np.sum(np.where(fin, a**2, 0.0), 0)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def significant_effects(t: np.ndarray, z: float) -> np.ndarray:
    """(..., n, F) standardised per-latent slopes -> (..., F) significant effects.

    |mean slope| where it exceeds ``z`` standard errors (t-based, ``z``
    widened to the t quantile for few latents), else 0: a detected effect
    counts at its full size (see the module docstring for why). A factor
    measurable on fewer than max(3, n/2) latents has no evidence (a generator
    that mostly draws no body).
    """
    n_ok = np.sum(np.isfinite(t), -2)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(t, -2)
        se = np.nanstd(t, -2, ddof=1) / np.sqrt(np.maximum(n_ok, 2))
    mult = z * stats.t.ppf(0.975, np.maximum(n_ok, 2) - 1) / stats.norm.ppf(0.975)
    eff = np.nan_to_num(np.abs(mean))
    sig = np.where(eff > np.nan_to_num(mult * se, nan=np.inf), eff, 0.0)
    return np.where(n_ok >= max(3, t.shape[-2] // 2), sig, 0.0)


def _kept_effects(factors: tuple[str, ...] | list[str], consequences: dict[str, tuple[str, ...]]) -> np.ndarray:
    """(F, F) mask: M[i, j] = 1 when factor i's effect counts against factor j (i == j, or i is not one of
    j's known consequences)."""
    F = len(factors)
    M = np.ones((F, F))
    for j, f in enumerate(factors):
        for i, g in enumerate(factors):
            if i != j and g in consequences.get(f, ()):
                M[i, j] = 0.0
    return M


def selectivity_for_each_factor(sig: np.ndarray, factors: tuple[str, ...] | list[str],
                                consequences: dict[str, Any]) -> np.ndarray:
    """(..., K, F) significant effects -> (..., K, F) selectivity of every direction for every factor:
    its effect on the factor over that plus its effects on the factors that are not the factor's known
    consequences (0 where the effect is 0)."""
    denom = sig @ _kept_effects(factors, consequences)
    return np.where(sig > 0, sig / np.where(denom > 0, denom, 1.0), 0.0)


def representatives(groups: list[list[int]], K: int, score: np.ndarray | None = None) -> np.ndarray:
    """Indices of the directions that stand for a set: every direction outside a duplicate group and,
    per group, its best-scored member (the lowest index on ties)."""
    keep = np.ones(K, bool)
    for g in groups:
        members = [k for k in g if 0 <= k < K]
        if len(members) < 2:
            continue
        best = max(members, key=lambda k: (float(score[k]) if score is not None else 0.0, -k))
        keep[[k for k in members if k != best]] = False
    return np.flatnonzero(keep)


def factor_selectivity_from(sig: np.ndarray, factors: tuple[str, ...] | list[str], consequences: dict[str, Any],
                            min_effect: float, keep: np.ndarray | None = None) -> np.ndarray:
    """(..., K, F) significant effects -> (..., F) best selectivity per factor.

    For each factor, the best selectivity for it over all directions whose
    significant effect on it reaches ``min_effect`` (0 when none does); only
    the directions ``keep`` (one per duplicate group, ``representatives``)
    take part. The comparison of direction sets (``analysis.comparison``) and
    :meth:`LabelResult.factor_selectivity` share this definition.
    """
    if keep is not None:
        sig = sig[..., keep, :]
    if sig.shape[-2] == 0:
        return np.zeros(sig.shape[:-2] + sig.shape[-1:])
    sel = selectivity_for_each_factor(sig, factors, consequences)
    return np.where(sig >= min_effect, sel, 0.0).max(-2)


def _top_factor(sig: np.ndarray, names: tuple[str, ...] | list[str], consequences: dict[str, tuple[str, ...]],
                top_fraction: float) -> tuple[int, float]:
    """The factor that best explains a direction's significant effects, and its selectivity.

    Candidates have at least ``top_fraction`` of the largest effect; each
    candidate's selectivity is its effect over itself plus every effect that
    is not one of its known consequences. Without consequences this is the
    largest effect's share of the total.
    """
    if sig.max() <= 0:
        return int(np.argmax(sig)), 0.0
    best, best_sel = int(np.argmax(sig)), -1.0
    for j in np.flatnonzero(sig >= top_fraction * sig.max()):
        cons = consequences.get(names[j], ())
        others = sum(sig[i] for i in range(len(names)) if i != j and names[i] not in cons)
        s = float(sig[j] / (sig[j] + others))
        if s > best_sel + 1e-12 or (abs(s - best_sel) <= 1e-12 and sig[j] > sig[best]):
            best, best_sel = int(j), s
    return best, best_sel


def label_directions(
    generator: LatentGenerator,
    directions: DirectionSet | np.ndarray,
    probes: ProbeSet,
    cfg: LabelConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LabelResult:
    """Measure what every direction does and name it (see the module docstring)."""
    cfg = cfg or LabelConfig()
    if isinstance(directions, DirectionSet):
        A, method = directions.A, directions.method
    else:
        A, method = np.asarray(directions, dtype=np.float32), "matrix"
    d, K = A.shape
    if d != generator.latent_dim:
        raise ValueError(f"directions have latent_dim {d}, generator has {generator.latent_dim}")
    if cfg.normalise:
        A = A / np.maximum(np.linalg.norm(A, axis=0, keepdims=True), 1e-12)
    alphas = np.asarray(cfg.alphas, dtype=np.float64)
    if alphas.size < 1 or np.any(alphas == 0):
        raise ValueError("alphas must be non-zero")
    a_max = float(np.abs(alphas).max())
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_latents
    z0 = rng.standard_normal((n, d)).astype(np.float32)
    F = len(probes.factors)
    periods = np.array([probes.periods.get(f, 0.0) for f in probes.factors])

    x0 = generate_images(generator, z0, cfg.batch_size)
    f0 = probes(x0)  # (n, F)
    valid_fraction = float(np.mean(np.any(np.isfinite(f0), axis=1)))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a probe that failed on every image is all-NaN
        sd = np.array([
            _circular_sd(f0[:, j], periods[j]) if periods[j] > 0 else float(np.nanstd(f0[:, j])) for j in range(F)
        ])
        means = np.nanmean(f0, 0)
    sd = np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1e-12)
    means = np.where(np.isfinite(means) & (np.abs(means) > 1e-12), means, 1.0)
    if probes.decompose is not None:
        # The decomposed factors' natural spread: the same re-expression applied to deviations from the mean.
        sd = np.where(np.isfinite(sd), sd, 1e-12)
        dev = np.nan_to_num(probes.decompose(f0 - means[None], means))
        sd_dec = dev.std(0)
        for j in range(F):
            if periods[j] == 0 and sd_dec[j] > 1e-12:
                sd[j] = sd_dec[j]

    n_img = min(cfg.image_latents, n)
    signed = np.zeros((K, F))
    ci_lo = np.zeros((K, F))
    ci_hi = np.zeros((K, F))
    sig = np.zeros((K, F))
    consistency = np.zeros(K)
    change = np.zeros(K)
    diffs = np.zeros((K, n_img, 32, 32), np.float32)
    slopes = np.zeros((K, n, F))
    boot_idx = rng.integers(0, n, size=(cfg.n_boot, n))
    a_pos = int(np.argmax(alphas))
    a_neg = int(np.argmin(alphas))
    for k in range(K):
        zs = (z0[None, :, :] + alphas[:, None, None] * A[:, k][None, None, :]).reshape(-1, d)
        xs = generate_images(generator, zs, cfg.batch_size).reshape(alphas.size, n, *x0.shape[1:])
        fs = probes(xs.reshape(-1, *x0.shape[1:])).reshape(alphas.size, n, F)
        delta = _wrap(fs - f0[None], periods)  # (A, n, F)
        # A probe may fail on a degenerate image (NaN): that latent drops out of the fit.
        delta = np.where(np.isfinite(delta), delta, np.nan)
        slope = fit_slopes(alphas, delta)
        if probes.decompose is not None:
            slope = probes.decompose(slope, means)
        t = slope / sd[None, :] * a_max  # (n, F) standardised
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN factor (a probe that failed everywhere)
            mean = np.nanmean(t, 0)
            boots = np.nanmean(t[boot_idx], 1)  # (B, F)
            lo, hi = np.nanpercentile(boots, [2.5, 97.5], axis=0)
        signed[k] = np.nan_to_num(mean)
        absb = np.abs(boots)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ci_lo[k] = np.nan_to_num(np.where((lo > 0) | (hi < 0), np.nanpercentile(absb, 2.5, axis=0), 0.0))
            ci_hi[k] = np.nan_to_num(np.nanpercentile(absb, 97.5, axis=0))
        slopes[k] = t
        sig[k] = significant_effects(t, cfg.z)
        j = int(np.argmax(sig[k])) if sig[k].max() > 0 else int(np.nanargmax(np.abs(mean)))
        tj = t[:, j]
        tj = tj[np.isfinite(tj)]
        consistency[k] = float(np.mean(np.sign(tj) == np.sign(mean[j]))) if tj.size else 0.0
        change[k] = float(np.abs(xs[a_pos] - x0).mean())
        diffs[k] = _downsample(xs[a_pos, :n_img] - xs[a_neg, :n_img])
        if progress is not None:
            progress(k + 1, K)
    effects = np.abs(signed)
    sel = np.zeros(K)
    top_idx = []
    for k in range(K):
        j, sel[k] = _top_factor(sig[k], probes.factors, probes.consequences, cfg.top_fraction)
        top_idx.append(j if sig[k].max() > 0 else int(np.argmax(effects[k])))
    top = [probes.factors[j] for j in top_idx]
    labels = []
    for k in range(K):
        if sig[k].max() < cfg.min_effect:
            labels.append(NO_EFFECT)
        elif sel[k] < cfg.selectivity_threshold or consistency[k] < cfg.min_consistency:
            labels.append(ENTANGLED)
        else:
            labels.append(top[k])
    score = sig.max(1) * consistency
    order = np.argsort(-score, kind="stable")
    rank = np.empty(K, np.int64)
    rank[order] = np.arange(1, K + 1)
    active = sig.max(1) >= cfg.min_effect
    groups = _duplicate_groups(signed, diffs, active, cfg)
    return LabelResult(
        factors=list(probes.factors),
        probe_set=probes.name,
        method=method,
        effects=effects,
        signed=signed,
        ci_low=ci_lo,
        ci_high=ci_hi,
        significant=sig,
        selectivity=sel,
        consistency=consistency,
        image_change=change,
        labels=labels,
        top_factor=top,
        score=score,
        rank=rank,
        groups=groups,
        factor_sd=sd,
        config=asdict(cfg),
        valid_fraction=valid_fraction,
        slopes=slopes,
        consequences={f: list(c) for f, c in probes.consequences.items()},
    )


ARROW_UP, ARROW_DOWN = "\u2191", "\u2193"


def describe_direction(signed: np.ndarray, sig: np.ndarray, factors: list[str] | tuple[str, ...],
                       min_effect: float = 0.0, top: int = 2) -> str:
    """One direction's top ``top`` significant factors with sign and share of its significant effects,
    e.g. "width ↑ 0.48 · height ↓ 0.31"; "no effect" when its largest significant effect is below
    ``min_effect``."""
    sig = np.nan_to_num(np.asarray(sig, dtype=np.float64))
    total = float(sig.sum())
    if total <= 0 or float(sig.max()) < min_effect:
        return NO_EFFECT
    parts = []
    for j in np.argsort(-sig, kind="stable")[:top]:
        if sig[j] <= 0:
            break
        arrow = ARROW_UP if signed[j] >= 0 else ARROW_DOWN
        parts.append(f"{factors[j]} {arrow} {sig[j] / total:.2f}")
    return " \u00b7 ".join(parts)


def describe_directions(res: LabelResult, top: int = 2) -> list[str]:
    """Per direction of a labelled set, ``describe_direction`` (K strings, the DirectionSet meta's
    "descriptions")."""
    thr = float(res.config.get("min_effect", 0.0))
    return [describe_direction(res.signed[k], res.significant[k], res.factors, thr, top) for k in range(res.K)]


def direction_caption(k: int, label: str | None, selectivity: float | None = None,
                      threshold: float = LabelConfig.selectivity_threshold) -> str:
    """How the report, its figures and the navigator name direction ``k``, so that a name and its number
    never contradict each other: "#5 height (selectivity 0.60)"; "#2 no effect" (a selectivity of
    changes too small to count means nothing); "#3 entangled (selectivity 0.45)"; and, for a direction
    selective enough whose top factor moves one way for some latents and the other way for others,
    "#3 entangled (sign varies)". Without a label: "#k"."""
    if not label:
        return f"#{k}"
    if label == NO_EFFECT or selectivity is None or not np.isfinite(selectivity):
        return f"#{k} {label}"
    if label == ENTANGLED and selectivity >= threshold:
        return f"#{k} {ENTANGLED} (sign varies)"  # the label rule: selective, but not consistent across latents
    return f"#{k} {label} (selectivity {selectivity:.2f})"
