"""Disentanglement scores of a code against known factors of variation.

Implemented from the papers (disentanglement_lib does not run on Python 3.11):

- **MIG**, Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs",
  eq. (6): for every factor v_k, the gap between the largest and the second
  largest mutual information I(z_j; v_k) over code dimensions j, divided by the
  entropy H(v_k), averaged over factors. Continuous codes and factors are
  discretised into equal-width histogram bins (20 bins, as in
  disentanglement_lib's ``discretizer``).
- **DCI**, Eastwood & Williams 2018, "A Framework for the Quantitative
  Evaluation of Disentangled Representations": an importance matrix R
  (codes x factors) from one regressor per factor (here LASSO on standardised
  codes, one of the two regressors of the paper, solved by coordinate descent);
  disentanglement D_i = 1 - H_K(P_i.) weighted by the relative importance of
  code i, completeness C_j = 1 - H_D(P~_.j) averaged over factors, and
  informativeness as the normalised root-mean-square test error (lower is better).
- **controls** (``scores_with_controls``): DCI of the codes pinv(A) z depends
  on A's conditioning as much as on disentanglement: a random matrix with the
  discovered A's singular values scores like A itself. Beside DCI of A stand
  DCI of A orthonormalised (its polar factor U V^T: the same column space
  ordering, all singular values 1) and of a random matrix with A's singular
  values; beside MIG stands its noise floor, the MIG of the same codes against
  factors whose rows are shuffled (no information), which on 300 samples is
  as large as the MIGs measured there. Use N >= 2000 samples.
- **selectivity** (ours): from a labelling effect matrix (directions x
  factors), each factor's best direction share ``effect_kj / sum_j' effect_kj'``;
  reported per factor and averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _discretize(x: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width histogram bins per column (disentanglement_lib's discretizer).

    Columns with few distinct values (already discrete factors) keep their
    values as categories so that their entropy is exact.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        col = x[:, j]
        uniq = np.unique(col)
        if uniq.size <= bins:
            out[:, j] = np.searchsorted(uniq, col)
            continue
        edges = np.histogram_bin_edges(col, bins=bins)
        out[:, j] = np.digitize(col, edges[1:-1])
    return out


def _entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two discrete label arrays."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    joint /= joint.sum()
    pa = joint.sum(1, keepdims=True)
    pb = joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


@dataclass
class MIGResult:
    mig: float
    per_factor: np.ndarray  # (n_factors,) normalised gaps
    mi: np.ndarray  # (n_codes, n_factors) mutual information in nats
    best_code: np.ndarray  # (n_factors,) index of the most informative code


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> MIGResult:
    """Mutual Information Gap of ``codes`` (N, D) w.r.t. ``factors`` (N, K)."""
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes {codes.shape} and factors {factors.shape} must be (N, D) and (N, K)")
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least two code dimensions")
    dc = _discretize(codes, bins)
    dv = _discretize(factors, bins)
    n_codes, n_factors = dc.shape[1], dv.shape[1]
    mi = np.zeros((n_codes, n_factors))
    for j in range(n_codes):
        for k in range(n_factors):
            mi[j, k] = _mutual_info(dc[:, j], dv[:, k])
    ent = np.array([_entropy(dv[:, k]) for k in range(n_factors)])
    srt = np.sort(mi, axis=0)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(ent > 0, (srt[0] - srt[1]) / ent, 0.0)
    return MIGResult(float(gap.mean()), gap, mi, mi.argmax(0))


def lasso(X: np.ndarray, y: np.ndarray, alpha: float, iters: int = 300, tol: float = 1e-7) -> np.ndarray:
    """Coordinate-descent LASSO: min 1/(2N)||y - Xw||^2 + alpha ||w||_1 (X, y centred)."""
    n, d = X.shape
    w = np.zeros(d)
    col_sq = (X**2).sum(0) / n
    r = y.astype(np.float64).copy()
    for _ in range(iters):
        max_step = 0.0
        for j in range(d):
            if col_sq[j] == 0:
                continue
            old = w[j]
            rho = X[:, j] @ r / n + col_sq[j] * old
            new = np.sign(rho) * max(abs(rho) - alpha, 0.0) / col_sq[j]
            if new != old:
                r -= X[:, j] * (new - old)
                w[j] = new
                max_step = max(max_step, abs(new - old))
        if max_step < tol:
            break
    return w


@dataclass
class DCIResult:
    disentanglement: float
    completeness: float
    informativeness: float  # NRMSE on held-out samples, averaged over factors (lower is better)
    importance: np.ndarray  # (n_codes, n_factors)


def _norm_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of a probability matrix, logarithm base ``base``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(p > 0, np.log(p), 0.0)
    return -(p * logp).sum(1) / np.log(base)


def dci(
    codes: np.ndarray,
    factors: np.ndarray,
    alpha: float = 0.01,
    train_fraction: float = 0.8,
    seed: int = 0,
) -> DCIResult:
    """DCI scores of ``codes`` (N, D) w.r.t. ``factors`` (N, K) with LASSO importances."""
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes {codes.shape} and factors {factors.shape} must be (N, D) and (N, K)")
    n, d = codes.shape
    k = factors.shape[1]
    if d < 2 or k < 2:
        raise ValueError("DCI needs at least two codes and two factors")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_tr = max(2, int(round(train_fraction * n)))
    tr, te = order[:n_tr], order[n_tr:] if n_tr < n else order[:n_tr]

    def standardise(a: np.ndarray) -> np.ndarray:
        mu, sd = a[tr].mean(0), a[tr].std(0)
        return (a - mu) / np.where(sd > 0, sd, 1.0)

    Z = standardise(codes)
    V = standardise(factors)
    R = np.zeros((d, k))
    errs = np.zeros(k)
    for j in range(k):
        w = lasso(Z[tr], V[tr, j], alpha)
        R[:, j] = np.abs(w)
        pred = Z[te] @ w
        errs[j] = np.sqrt(np.mean((pred - V[te, j]) ** 2))
    total = R.sum()
    if total == 0:
        return DCIResult(0.0, 0.0, float(errs.mean()), R)
    # Disentanglement: each code should matter for one factor.
    row = R.sum(1)
    p_code = R / np.where(row[:, None] > 0, row[:, None], 1.0)
    d_i = 1.0 - _norm_entropy(p_code, k)
    rho = row / total
    dis = float((rho * d_i).sum())
    # Completeness: each factor should be captured by one code.
    col = R.sum(0)
    p_fac = (R / np.where(col[None, :] > 0, col[None, :], 1.0)).T
    c_j = 1.0 - _norm_entropy(p_fac, d)
    comp = float(c_j.mean())
    return DCIResult(dis, comp, float(errs.mean()), R)


@dataclass
class SelectivityResult:
    mean: float  # mean over factors of the best direction's selectivity
    per_factor: dict[str, float]
    best_direction: dict[str, int]


def selectivity(
    effects: np.ndarray, factor_names: list[str] | tuple[str, ...], min_effect: float = 0.0
) -> SelectivityResult:
    """Per factor, the largest share of any direction's total effect that goes to it.

    ``effects`` is the (K directions, F factors) standardised effect matrix of
    the labeller (non-negative). 1 means some direction changes that factor
    and nothing else; 1/F means the best direction spreads evenly. Directions
    whose largest effect is below ``min_effect`` are ignored, so that a
    direction that barely changes anything cannot look selective by noise.
    """
    e = np.abs(np.asarray(effects, dtype=np.float64))
    e = np.where(e.max(1, keepdims=True) >= min_effect, e, 0.0)
    tot = e.sum(1, keepdims=True)
    share = np.where(tot > 0, e / np.where(tot > 0, tot, 1.0), 0.0)
    best = share.argmax(0)
    per = {name: float(share[best[j], j]) for j, name in enumerate(factor_names)}
    return SelectivityResult(float(np.mean(list(per.values()))), per, {n: int(best[j]) for j, n in enumerate(factor_names)})


MIG_MIN_SAMPLES = 2000


def unit_columns(A: np.ndarray) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    return A / np.maximum(np.linalg.norm(A, axis=0, keepdims=True), 1e-12)


def direction_codes(z: np.ndarray, A: np.ndarray, normalise: bool = True) -> np.ndarray:
    """Latent coordinates along the directions: pinv(A) z (min-norm when K > d); unit columns unless told."""
    M = unit_columns(A) if normalise else np.asarray(A, dtype=np.float64)
    return np.asarray(z, dtype=np.float64) @ np.linalg.pinv(M).T


def orthonormalised(A: np.ndarray) -> np.ndarray:
    """The polar factor U V^T of A's unit columns: the nearest matrix whose singular values are all 1."""
    U, _, Vt = np.linalg.svd(unit_columns(A), full_matrices=False)
    return U @ Vt


def same_spectrum_random(A: np.ndarray, seed: int = 0) -> np.ndarray:
    """A random (d, K) matrix with the singular values of A's unit columns (random singular vectors)."""
    An = unit_columns(A)
    d, K = An.shape
    s = np.linalg.svd(An, compute_uv=False)
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((d, s.size)))
    V, _ = np.linalg.qr(rng.standard_normal((K, s.size)))
    return (U * s) @ V.T


def mig_noise_floor(codes: np.ndarray, factors: np.ndarray, n_shuffles: int = 3, seed: int = 0,
                    bins: int = 20) -> float:
    """Mean MIG of ``codes`` against row-shuffled ``factors`` (no information): what noise alone scores."""
    rng = np.random.default_rng(seed)
    factors = np.asarray(factors)
    return float(np.mean([mig(codes, factors[rng.permutation(len(factors))], bins).mig for _ in range(n_shuffles)]))


def scores_with_controls(z: np.ndarray, factors: np.ndarray, A: np.ndarray, seed: int = 0) -> dict[str, float]:
    """MIG with its shuffled-factor noise floor, and DCI of A beside DCI of A orthonormalised and of a random
    matrix with A's singular values (see the module docstring). ``z`` (N, d) latents, ``factors`` (N, F)."""
    z = np.asarray(z, dtype=np.float64)
    codes = direction_codes(z, A)
    out: dict[str, float] = {"n_samples": float(len(z))}
    m = mig(codes, factors)
    out["mig"], out["mig_floor"] = m.mig, mig_noise_floor(codes, factors, seed=seed)
    for key, M, norm in (("", A, True), ("_ortho", orthonormalised(A), False),
                         ("_spectrum", same_spectrum_random(A, seed), False)):
        d = dci(direction_codes(z, M, normalise=norm), factors, seed=seed)
        out.update({f"dci_d{key}": d.disentanglement, f"dci_c{key}": d.completeness, f"dci_i{key}": d.informativeness})
    return out
