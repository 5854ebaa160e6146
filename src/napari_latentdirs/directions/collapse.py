"""How many distinct directions a direction matrix really holds.

A learned A (d x K) can spend its K columns on a few changes: columns that
point the same way (or opposite ways: a shift by -alpha along one is a shift
by +alpha along the other) show the generator the same change twice. Three
figures describe it, all on unit-length columns:

- **effective rank**: the participation ratio of A's singular values,
  ``(sum s_i^2)^2 / sum s_i^4``. K orthonormal columns give K; K copies of one
  column give 1; K random unit columns in d dimensions give about
  ``K d / (K + d)`` (the Marchenko-Pastur mean; 16 for K = 32 in 32-d);
- **largest |cos|** between two different columns;
- **duplicate groups**: the connected components (union-find) of the graph
  whose edges join columns with ``|cos| >= DUPLICATE_COS`` (0.7). Two such
  columns share at least half their variance (cos^2 >= 0.49): most of what
  one does to the image the other does too. Two random unit vectors in 32
  dimensions reach |cos| 0.7 with probability 6e-6 (0.003 per set of 32
  columns; far less in more dimensions), so a group is not chance. (At 0.9 the
  bundled demo sets, effective rank 6-7 of 32, showed no group at all; at 0.5
  chance pairs appear in random sets.) Only groups of two or more columns are
  listed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

DUPLICATE_COS = 0.7


@dataclass(frozen=True)
class Collapse:
    K: int
    effective_rank: float
    max_abs_cos: float
    duplicate_groups: list[list[int]] = field(default_factory=list)
    threshold: float = DUPLICATE_COS

    @property
    def n_groups(self) -> int:
        return len(self.duplicate_groups)

    @property
    def largest_group(self) -> int:
        return max((len(g) for g in self.duplicate_groups), default=1)

    def line(self) -> str:
        """One line for a training log or a dock's final status."""
        return (f"effective rank {self.effective_rank:.1f} of {self.K}; largest |cos| {self.max_abs_cos:.2f}; "
                f"{self.n_groups} duplicate group(s) (|cos| >= {self.threshold:g}, largest {self.largest_group})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n_groups": self.n_groups, "largest_group": self.largest_group}

    def metrics(self) -> dict[str, float]:
        """The figures as a direction set's metrics (numbers only)."""
        return {"effective_rank": float(self.effective_rank), "max_abs_cos": float(self.max_abs_cos),
                "duplicate_groups": float(self.n_groups), "largest_duplicate_group": float(self.largest_group)}


def collapse_of(A: np.ndarray, threshold: float = DUPLICATE_COS) -> Collapse:
    """Effective rank, largest |cos| and duplicate groups of the columns of ``A`` (d, K)."""
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[1] < 1:
        raise ValueError(f"A must be a (d, K) matrix with K >= 1, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("A holds NaN or infinite entries")
    norms = np.linalg.norm(A, axis=0)
    if np.any(norms < 1e-12):
        raise ValueError(f"A has zero columns: {np.flatnonzero(norms < 1e-12).tolist()}")
    U = A / norms
    K = U.shape[1]
    s2 = np.linalg.svd(U, compute_uv=False) ** 2
    eff = float(s2.sum() ** 2 / (s2**2).sum())
    cos = np.abs(U.T @ U)
    np.fill_diagonal(cos, 0.0)
    max_cos = float(cos.max()) if K > 1 else 0.0

    dup = linked_groups(K, np.triu(cos >= threshold, k=1))
    return Collapse(K, eff, min(max_cos, 1.0), dup, threshold)


def linked_groups(n: int, linked: np.ndarray) -> list[list[int]]:
    """Connected components (union-find) of ``n`` items joined where ``linked[a, b]`` is true; only
    groups of two or more, each sorted, ordered by their first member."""
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(*np.nonzero(linked), strict=True):
        parent[find(int(a))] = find(int(b))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])
