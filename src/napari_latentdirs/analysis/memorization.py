"""Memorization check (paper appendix C, made quantitative).

Distance from each generated sample to its nearest training slice, compared
with the same distance for held-out slices. A generator that memorises
produces samples much closer to the training set than unseen real slices
are (ratio of medians << 1). Distances are RMS differences in model space on
images average-pooled to ``size`` (default 64) to keep the search cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def _pool(x: np.ndarray, size: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, np.float32))
    if t.ndim == 3:
        t = t[:, None]
    if t.shape[-1] != size:
        t = torch.nn.functional.adaptive_avg_pool2d(t, size)
    return t.flatten(1)


def nearest_distances(queries: np.ndarray, reference: np.ndarray, size: int = 64,
                      exclude_self: bool = False, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """RMS distance of every query to its nearest reference image, and that image's index."""
    q = _pool(queries, size)
    r = _pool(reference, size)
    rn = (r**2).sum(1)
    dists, idx = [], []
    for i in range(0, q.shape[0], chunk):
        qq = q[i : i + chunk]
        d2 = (qq**2).sum(1, keepdim=True) + rn[None] - 2 * qq @ r.T
        if exclude_self:
            rows = torch.arange(qq.shape[0])
            d2[rows, rows + i] = float("inf")
        m, j = d2.clamp_min(0).min(1)
        dists.append(torch.sqrt(m / q.shape[1]))
        idx.append(j)
    return torch.cat(dists).numpy(), torch.cat(idx).numpy()


@dataclass
class MemorizationResult:
    generated_nn: np.ndarray  # (N_gen,) distance of each sample to its nearest training slice
    heldout_nn: np.ndarray  # (N_test,)
    generated_median: float
    heldout_median: float
    ratio: float  # generated_median / heldout_median
    copies: float  # fraction of samples closer to a training slice than the 1st percentile of held-out
    nearest_index: np.ndarray  # (N_gen,) index of the nearest training slice


def memorization(generated: np.ndarray, train: np.ndarray, heldout: np.ndarray, size: int = 64) -> MemorizationResult:
    g, gi = nearest_distances(generated, train, size)
    h, _ = nearest_distances(heldout, train, size)
    gm, hm = float(np.median(g)), float(np.median(h))
    thr = float(np.percentile(h, 1))
    return MemorizationResult(g, h, gm, hm, gm / max(hm, 1e-12), float(np.mean(g < thr)), gi)
