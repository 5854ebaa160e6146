"""Contact sheet: phantom slices across z-levels and subjects, beside a real CT.

Rows are anatomical levels; columns are subjects whose factors differ (and
the first subject again in a lung window). The last column holds pydicom's
bundled real ``CT_small.dcm`` at the same windows, for comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .anatomy import render_slice_hu
from .factors import Acquisition, SubjectFactors

LEVELS = (0.03, 0.14, 0.23, 0.31, 0.38, 0.50, 0.62, 0.70, 0.80, 0.92)
LEVEL_NAMES = {
    0.03: "apex / shoulders",
    0.14: "upper lobes, great vessels",
    0.23: "aortic arch",
    0.31: "carina",
    0.38: "pulmonary trunk",
    0.50: "heart (4-chamber)",
    0.62: "heart, right dome",
    0.70: "domes, liver",
    0.80: "liver, stomach",
    0.92: "liver, stomach, spleen",
}
SOFT = (40.0, 400.0)  # level, width
LUNG = (-600.0, 1500.0)

SUBJECTS = (
    ("average, no contrast", SubjectFactors(), 400.0),
    ("breasts 55 mm, contrast", SubjectFactors(width_mm=270, height_mm=180, breast_mm=55.0, contrast=True, fat_mm=18.0), 380.0),
    ("wide, thin fat, rot +15", SubjectFactors(width_mm=335, height_mm=205, fat_mm=5.0, rotation_deg=15.0, size=1.1), 470.0),
    ("deep, fat 38 mm, table up", SubjectFactors(width_mm=265, height_mm=228, fat_mm=38.0, y_offset_mm=-25.0, contrast=True), 470.0),
)


def _window(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    return np.clip((hu - (level - width / 2)) / width, 0.0, 1.0)


def real_ct_small() -> tuple[np.ndarray, float] | None:
    """pydicom's bundled real CT slice in HU and its pixel spacing, if available."""
    try:
        import pydicom
        from pydicom.data import get_testdata_file

        path = get_testdata_file("CT_small.dcm")
        if path is None:
            return None
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        return hu, float(ds.PixelSpacing[0])
    except (ImportError, OSError, ValueError):
        return None


def render_contact_sheet(out: str | Path, size: int = 256, seed: int = 0, levels=LEVELS) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    ncols = len(SUBJECTS) + 2
    fig, axes = plt.subplots(len(levels), ncols, figsize=(2.1 * ncols, 2.1 * len(levels)), facecolor="black")
    for i, t in enumerate(levels):
        for j, (name, s, fov) in enumerate(SUBJECTS):
            hu = render_slice_hu(s, Acquisition(fov_mm=fov), t, size, rng=rng, noise_scale=0.7)
            ax = axes[i, j]
            ax.imshow(_window(hu, *SOFT), cmap="gray", vmin=0, vmax=1, interpolation="lanczos")
            if i == 0:
                ax.set_title(name, color="white", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"t={t:.2f}\n{LEVEL_NAMES.get(t, '')}", color="white", fontsize=7)
        name, s, fov = SUBJECTS[0]
        hu = render_slice_hu(s, Acquisition(fov_mm=fov), t, size, rng=rng, noise_scale=0.7)
        axes[i, len(SUBJECTS)].imshow(_window(hu, *LUNG), cmap="gray", vmin=0, vmax=1, interpolation="lanczos")
        if i == 0:
            axes[i, len(SUBJECTS)].set_title("average, lung window", color="white", fontsize=7)
    real = real_ct_small()
    last = axes[:, -1]
    if real is not None:
        hu, _ = real
        last[0].imshow(_window(hu, *SOFT), cmap="gray", vmin=0, vmax=1)
        last[0].set_title("real CT_small.dcm (pydicom)", color="white", fontsize=7)
        last[1].imshow(_window(hu, *LUNG), cmap="gray", vmin=0, vmax=1)
        last[1].set_title("real, lung window", color="white", fontsize=7)
    for ax in axes.ravel():
        ax.set_facecolor("black")
        ax.set_xticks([])
        ax.set_yticks([])
        for sp in ax.spines.values():
            sp.set_visible(False)
    fig.text(0.5, 0.002, f"soft tissue window L{SOFT[0]:g}/W{SOFT[1]:g}, lung L{LUNG[0]:g}/W{LUNG[1]:g}; synthetic phantom, napari-latentdirs", color="gray", ha="center", fontsize=7)
    fig.tight_layout(pad=0.3)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=85, facecolor="black")
    plt.close(fig)
    return out
