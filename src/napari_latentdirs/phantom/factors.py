"""Subject factors and acquisition settings of the synthetic thorax, and their sampling.

A *subject* is one synthetic patient: body shape factors in mm or degrees
(``SubjectFactors``). An *acquisition* is how that body was scanned
(``Acquisition``): field of view, pixel spacing, slice thickness, noise,
contrast. Acquisition settings follow LIDC-IDRI's published distribution
(slice thickness shares; pixel spacing 0.46 to 0.98 mm, median about 0.70).

Factors compound in the image: ``size`` scales both width and height, the
fat layer adds to both, the field of view divides everything. So every slice's
ground truth holds both the nominal factors and *effective* measures of the
rendered body (see ``effective_measures``), in mm and in pixels of the
preprocessed 128 x 128 image. The probes are scored against the effective
measures in image pixels, which is what an image can show.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

# Reference core (muscle boundary) half-axes in mm; internal anatomy is
# authored in this "canonical" frame and scaled to each subject.
REF_HALF_WIDTH = 145.0
REF_HALF_DEPTH = 97.5

#: Nominal factor ranges (uniform unless noted). Widths/heights are of the
#: muscle core at the reference level (t = 0.5); fat adds on top.
RANGES: dict[str, tuple[float, float]] = {
    "width_mm": (250.0, 340.0),
    "height_mm": (160.0, 230.0),
    "size": (0.85, 1.15),
    "rotation_deg": (-25.0, 25.0),
    "y_offset_mm": (-30.0, 30.0),
    "fat_mm": (4.0, 40.0),
    "breast_mm": (15.0, 70.0),  # when present
    "noise_hu": (8.0, 35.0),
}
BREAST_PROBABILITY = 0.5
CONTRAST_PROBABILITY = 0.4

#: LIDC slice-thickness shares (mm -> probability), renormalised.
SLICE_THICKNESS = {1.25: 0.34, 2.5: 0.32, 2.0: 0.12, 3.0: 0.11, 1.0: 0.06, 0.75: 0.03}
PIXEL_SPACING_RANGE = (0.46, 0.98)
MATRIX = 512

FACTOR_NAMES = (
    "width_mm",
    "height_mm",
    "size",
    "rotation_deg",
    "y_offset_mm",
    "fat_mm",
    "breast_mm",
    "contrast",
    "noise_hu",
)


@dataclass(frozen=True)
class SubjectFactors:
    """One synthetic patient's body. Lengths in mm, angles in degrees."""

    width_mm: float = 290.0
    height_mm: float = 195.0
    size: float = 1.0
    rotation_deg: float = 0.0
    y_offset_mm: float = 0.0  # vertical offset of the body centre (table height)
    fat_mm: float = 15.0
    breast_mm: float = 0.0  # 0 means none
    contrast: bool = False
    noise_hu: float = 15.0
    texture_seed: int = 0  # picks offsets into the shared texture bank

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **kw) -> SubjectFactors:
        d = self.to_dict()
        d.update(kw)
        return SubjectFactors(**d)

    # Derived geometry -------------------------------------------------
    @property
    def sx(self) -> float:
        """mm per canonical unit, lateral."""
        return self.size * self.width_mm / (2 * REF_HALF_WIDTH)

    @property
    def sy(self) -> float:
        """mm per canonical unit, antero-posterior."""
        return self.size * self.height_mm / (2 * REF_HALF_DEPTH)

    @property
    def length_mm(self) -> float:
        """Apex-to-upper-abdomen length covered by t in [0, 1]."""
        return 330.0 * self.size

    @property
    def max_half_width_mm(self) -> float:
        """Widest outer half-width over all levels (shoulders), used for the FOV."""
        return REF_HALF_WIDTH * 1.10 * self.sx + self.fat_mm


@dataclass(frozen=True)
class Acquisition:
    """How a subject was scanned."""

    fov_mm: float = 360.0  # reconstruction field of view (square, matrix MATRIX)
    slice_thickness_mm: float = 1.25
    matrix: int = MATRIX

    @property
    def pixel_spacing_mm(self) -> float:
        return self.fov_mm / self.matrix

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pixel_spacing_mm"] = self.pixel_spacing_mm
        return d


def sample_subject(rng: np.random.Generator) -> SubjectFactors:
    u = {k: float(rng.uniform(*v)) for k, v in RANGES.items()}
    has_breast = rng.random() < BREAST_PROBABILITY
    contrast = bool(rng.random() < CONTRAST_PROBABILITY)
    return SubjectFactors(
        width_mm=u["width_mm"],
        height_mm=u["height_mm"],
        size=u["size"],
        rotation_deg=u["rotation_deg"],
        y_offset_mm=u["y_offset_mm"],
        fat_mm=u["fat_mm"],
        breast_mm=u["breast_mm"] if has_breast else 0.0,
        contrast=contrast,
        noise_hu=u["noise_hu"],
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def sample_acquisition(rng: np.random.Generator, subject: SubjectFactors, matrix: int = MATRIX) -> Acquisition:
    """FOV fits the widest level with a random margin (as a technologist would),
    clipped to LIDC's pixel-spacing range; slice thickness from LIDC's shares."""
    margin = float(rng.uniform(1.05, 1.40))
    fov = 2.0 * subject.max_half_width_mm * margin + 2.0 * abs(subject.y_offset_mm)
    lo, hi = PIXEL_SPACING_RANGE
    fov = float(np.clip(fov, lo * MATRIX, hi * MATRIX))
    th = np.array(list(SLICE_THICKNESS))
    p = np.array(list(SLICE_THICKNESS.values()))
    thickness = float(rng.choice(th, p=p / p.sum()))
    return Acquisition(fov_mm=fov, slice_thickness_mm=thickness, matrix=matrix)


def subject_field_names() -> list[str]:
    return [f.name for f in fields(SubjectFactors)]
