"""napari sample data: "Synthetic thorax CT" (a phantom volume in HU with spacing)."""

from __future__ import annotations

import numpy as np

from ..phantom.factors import Acquisition, SubjectFactors
from ..phantom.volume import render_volume, scan_geometry

SAMPLE_SUBJECT = SubjectFactors(breast_mm=35.0, contrast=True, fat_mm=16.0)


def synthetic_thorax_volume(matrix: int = 256, n_slices: int = 96, seed: int = 0) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """HU volume (Z, Y, X), spacing (z, y, x) in mm, and its ground truth."""
    acq = Acquisition(fov_mm=380.0, slice_thickness_mm=2.5, matrix=matrix)
    geom = scan_geometry(SAMPLE_SUBJECT, acq, n_slices)
    hu = render_volume(SAMPLE_SUBJECT, acq, geom.t, np.random.default_rng(seed), pad_hu=-1000.0)
    ps = acq.pixel_spacing_mm
    meta = {"subject": SAMPLE_SUBJECT.to_dict(), "acquisition": acq.to_dict(), "t": geom.t.tolist(), "z_mm": geom.z_mm.tolist()}
    return hu, (geom.spacing_mm, ps, ps), meta


def synthetic_thorax():
    """npe2 sample-data command: one image layer in HU, physical scale in mm."""
    hu, spacing, meta = synthetic_thorax_volume()
    return [
        (
            hu,
            {
                "name": "Synthetic thorax CT",
                "scale": spacing,
                "colormap": "gray",
                "contrast_limits": (-1000.0, 400.0),
                "metadata": {"phantom": meta, "units": "HU", "spacing_mm": spacing},
            },
            "image",
        )
    ]
