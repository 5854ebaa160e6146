"""sample_slices: shapes, ranges, determinism, and that every factor varies."""

from __future__ import annotations

import numpy as np

from napari_latentdirs.phantom import FACTOR_NAMES, sample_slices
from napari_latentdirs.phantom.anatomy import render_slice_hu
from napari_latentdirs.phantom.factors import Acquisition, SubjectFactors


def test_sample_slices_shapes_and_determinism():
    x, f = sample_slices(12, seed=5)
    assert x.shape == (12, 128, 128) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    # Body tissue is present (not an empty frame): soft tissue and air both occur.
    assert (x > -0.65).mean() > 0.1 and (x < -0.95).mean() > 0.1
    x2, f2 = sample_slices(12, seed=5)
    np.testing.assert_array_equal(x, x2)
    x3, _ = sample_slices(12, seed=6)
    assert not np.array_equal(x, x3)
    for k in (*FACTOR_NAMES, "t", "eff_width_px", "acq_pixel_spacing_mm", "acq_slice_thickness_mm"):
        assert k in f and len(f[k]) == 12
    for k in ("width_mm", "height_mm", "size", "rotation_deg", "y_offset_mm", "fat_mm", "noise_hu", "t"):
        assert np.ptp(f[k]) > 0, k
    assert f["clipped"].sum() == 0


def test_sample_size_argument():
    x, _ = sample_slices(2, seed=1, size=64)
    assert x.shape == (2, 64, 64)


def test_tissue_hu_values_at_known_places():
    """Published HU: fat ~-100, muscle ~50, lung ~-860, cortical bone 700-1000, contrast blood ~250."""
    s = SubjectFactors(fat_mm=30.0, contrast=True, noise_hu=0.0)
    a = Acquisition(fov_mm=400.0)
    hu = render_slice_hu(s, a, 0.55, 400)  # 1 mm pixels, noise-free
    row = hu[200]  # through the body centre, left to right
    assert np.any(np.abs(row + 100) < 15)  # subcutaneous fat
    assert np.any(np.abs(row - 50) < 10)  # muscle
    assert np.median(hu[hu < -500][hu[hu < -500] > -990]) < -750  # lung parenchyma
    assert hu.max() > 700  # cortical bone
    assert np.any(np.abs(hu - 260) < 10)  # enhanced blood pool
