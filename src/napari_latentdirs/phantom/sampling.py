"""Fast in-memory 2-D phantom slices with every factor varying.

Slices are rendered directly at the requested size over the whole field of
view (no 512 x 512 volume), with noise scaled to what the preprocessing's
antialiased 512 -> size resize leaves of 512-matrix noise.
"""

from __future__ import annotations

import math

import numpy as np

from ..data.preprocess import DEFAULT
from .anatomy import add_noise, render_slice_hu
from .factors import Acquisition, SubjectFactors, sample_acquisition, sample_subject
from .truth import records_to_columns, slice_record

# Standard deviation ratio of 512-matrix noise after the antialiased resize
# to ``size`` (measured: 0.47 at 128 for the half-resolution-rendered 512
# matrix of ``volume.render_volume``); modelled as a power law in the ratio.
_NOISE_EXPONENT = math.log(0.47) / math.log(128 / 512)


def noise_scale_for(size: int, matrix: int = 512) -> float:
    if size >= matrix:
        return 1.0
    return (size / matrix) ** _NOISE_EXPONENT


def render_model_slice(subject: SubjectFactors, acq: Acquisition, t: float, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """One slice in model space [-1, 1] at ``size`` x ``size`` (direct render)."""
    hu = render_slice_hu(subject, acq, t, size, rng=None)
    if rng is not None and subject.noise_hu > 0:
        sigma = subject.noise_hu * math.sqrt(1.25 / acq.slice_thickness_mm) * noise_scale_for(size, acq.matrix)
        hu = add_noise(hu, sigma, rng, corr_px=0.8 if size >= acq.matrix else 0.0)
    return DEFAULT.hu_to_model(hu)


def sample_slices(n: int, seed: int, size: int = 128, t_range: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` slices, each from its own random subject and acquisition, at a
    uniform random level t.

    Returns ``x`` (n, size, size) float32 in model space and ``factors``, a dict
    of per-slice arrays: the subject factors, acquisition settings, ``t`` and the
    effective measures of ``truth.effective_measures`` (in mm and in pixels of
    this ``size``).
    """
    rng = np.random.default_rng(seed)
    x = np.empty((n, size, size), dtype=np.float32)
    records = []
    for i in range(n):
        subject = sample_subject(rng)
        acq = sample_acquisition(rng, subject)
        t = float(rng.uniform(*t_range))
        x[i] = render_model_slice(subject, acq, t, size, rng)
        records.append(slice_record(subject, acq, t, size))
    return x, records_to_columns(records)


def slices_for(subjects: list[SubjectFactors], acqs: list[Acquisition], ts, size: int = 128, seed: int | None = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render chosen (subject, acquisition, t) triples; ``seed=None`` gives noise-free slices."""
    rng = None if seed is None else np.random.default_rng(seed)
    x = np.empty((len(ts), size, size), dtype=np.float32)
    records = []
    for i, (s, a, t) in enumerate(zip(subjects, acqs, ts)):
        x[i] = render_model_slice(s, a, float(t), size, rng)
        records.append(slice_record(s, a, float(t), size))
    return x, records_to_columns(records)
