"""The phantom's anatomical probe set (``probes.factors.FACTORS``), for CT generators."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from .base import ProbeSet, size_family
from .factors import CONSEQUENCES, PERIODS, PROBE_NAMES


def phantom_probes(preprocessing: Any = None) -> ProbeSet:
    """The phantom's anatomical probes (width ... z_level), for CT generators whose images
    decode to HU with ``preprocessing`` (``models.registry.preprocessing_of(G)``; default: the
    project's window).

    Rotation is the body's principal axis closest to horizontal, defined
    modulo 90 degrees, so its differences wrap with period 90.
    """
    from . import outline  # lazy: scipy and the z-level regressor load on first use

    names = PROBE_NAMES
    decompose = size_family(names) if {"width", "height", "size"} <= set(names) else None
    return ProbeSet("phantom", names, partial(outline.measure, preprocessing=preprocessing), dict(PERIODS), decompose,
                    dict(CONSEQUENCES), partial(body_like, preprocessing=preprocessing))


def body_like(x: np.ndarray, preprocessing: Any = None) -> np.ndarray:
    """Images that look like an axial CT slice: air around the border and a body of
    5-90 % of the field (HU > -400). Noise or empty images from a failed generator are not."""
    from ..data.preprocess import DEFAULT

    hu = (preprocessing or DEFAULT).model_to_hu(np.asarray(x, dtype=np.float32).reshape(-1, *np.shape(x)[-2:]))
    b = max(2, hu.shape[-1] // 32)
    border = np.concatenate([hu[:, :b].reshape(len(hu), -1), hu[:, -b:].reshape(len(hu), -1),
                             hu[:, :, :b].reshape(len(hu), -1), hu[:, :, -b:].reshape(len(hu), -1)], axis=1)
    body = (hu > -400.0).mean((1, 2))
    return (np.median(border, axis=1) < -700.0) & (body > 0.05) & (body < 0.9)
