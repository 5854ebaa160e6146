"""Synthetic thorax CT phantom with known factors (see ``docs`` and issue 3).

Public API:

- ``sample_slices(n, seed, size=128) -> (x, factors)``: fast in-memory 2-D
  slices in model space with every factor varying, plus per-slice ground truth.
- ``write_phantom_tree(out, patients, seed, messy=False)``: LIDC-layout DICOM
  tree plus ``ground_truth.csv``.

The phantom is a data source only: it imports nothing of ``probes``. The probes that measure its
factors, and which ground-truth column each is scored against, are in ``probes.factors``.
"""

from __future__ import annotations

from typing import Any

from .factors import FACTOR_NAMES, Acquisition, SubjectFactors, sample_acquisition, sample_subject

# sampling imports torch (its model-space mapping): 2 s that napari's Open Sample, which
# needs only the factors and the volume renderer, waited for on its GUI thread (issue 19).
_LAZY = {"sample_slices", "slices_for"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import sampling

        return getattr(sampling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "FACTOR_NAMES",
    "Acquisition",
    "SubjectFactors",
    "sample_acquisition",
    "sample_slices",
    "sample_subject",
    "slices_for",
    "write_phantom_tree",
]


def write_phantom_tree(out, patients: int, seed: int, messy: bool = False, **kw):
    """Write an LIDC-layout DICOM tree; see ``phantom.tree.write_phantom_tree``."""
    from .tree import write_phantom_tree as _w

    return _w(out, patients, seed, messy=messy, **kw)
