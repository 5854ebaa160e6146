"""The phantom itself as a generator whose latent directions are known.

Coordinates 0..7 of z set width, height, size, rotation, y offset, fat,
breast size and the level t along the body (each through tanh into its
sampling range); the remaining coordinates do nothing. So the first eight
coordinate axes are the eight paper factors, exactly: the ground truth that
the labeller and the discovered-versus-random comparison are checked against.
The field of view is fixed so that pixels mean the same millimetres in every
image, and there is no noise.
"""

from __future__ import annotations

import numpy as np
import torch

from .factors import RANGES, Acquisition, SubjectFactors
from .sampling import slices_for

#: The probe factor each coordinate axis moves, in axis order.
AXIS_FACTORS = ("width", "height", "size", "rotation", "y_position", "thickness", "breast_size", "z_level")
_NOMINAL = (
    ("width_mm", RANGES["width_mm"]), ("height_mm", RANGES["height_mm"]), ("size", RANGES["size"]),
    ("rotation_deg", RANGES["rotation_deg"]), ("y_offset_mm", RANGES["y_offset_mm"]),
    ("fat_mm", RANGES["fat_mm"]), ("breast_mm", RANGES["breast_mm"]), ("t", (0.15, 0.85)),
)


class PhantomFactorGenerator:
    """z (B, latent_dim >= 8) -> noise-free phantom slices (B, 1, size, size) in model space."""

    def __init__(self, latent_dim: int = 10, size: int = 128) -> None:
        if latent_dim < len(_NOMINAL):
            raise ValueError(f"latent_dim must be at least {len(_NOMINAL)}, got {latent_dim}")
        self.latent_dim, self.size = latent_dim, size

    def factor_directions(self) -> np.ndarray:
        """(latent_dim, 8): the known direction of each factor in ``AXIS_FACTORS``."""
        return np.eye(self.latent_dim)[:, : len(_NOMINAL)]

    def generate(self, z: torch.Tensor | np.ndarray) -> torch.Tensor:
        subs, acqs, ts = [], [], []
        for row in np.asarray(z, np.float64):
            v = {name: lo + (hi - lo) * (np.tanh(row[i] / 2) + 1) / 2 for i, (name, (lo, hi)) in enumerate(_NOMINAL)}
            ts.append(v.pop("t"))
            subs.append(SubjectFactors(**v, noise_hu=0.0))
            acqs.append(Acquisition(fov_mm=420.0))
        x, _ = slices_for(subs, acqs, ts, size=self.size, seed=None)
        return torch.from_numpy(x)[:, None]
