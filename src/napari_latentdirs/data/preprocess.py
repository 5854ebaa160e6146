"""The paper's preprocessing and its exact inverse.

Model space, used by every generator, reconstructor and probe in this project:
``x = 2 * (clip(HU, -1000, 2000) + 1000) / 3000 - 1``, a float32 in [-1, 1]
(the range of the generators' tanh output). The inverse maps [-1, 1] back to
[-1000, 2000] HU. Resizing uses an antialiased bilinear filter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

HU_MIN = -1000.0
HU_MAX = 2000.0


@dataclass(frozen=True)
class Preprocessing:
    hu_min: float = HU_MIN
    hu_max: float = HU_MAX
    size: int = 128

    def to_dict(self) -> dict:
        return asdict(self)

    def hu_to_model(self, hu: np.ndarray) -> np.ndarray:
        """Clip and min-max scale HU into [-1, 1] (no resizing)."""
        hu = np.clip(np.asarray(hu, dtype=np.float32), self.hu_min, self.hu_max)
        return (2.0 * (hu - self.hu_min) / (self.hu_max - self.hu_min) - 1.0).astype(np.float32)

    def model_to_hu(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Exact inverse of :meth:`hu_to_model` on [-1, 1]."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().float().numpy()
        x = np.asarray(x, dtype=np.float32)
        return ((x + 1.0) * 0.5 * (self.hu_max - self.hu_min) + self.hu_min).astype(np.float32)

    def resize(self, img: np.ndarray) -> np.ndarray:
        """Antialiased resize of (H, W) or (N, H, W) to (size, size)."""
        arr = np.asarray(img, dtype=np.float32)
        squeeze = arr.ndim == 2
        t = torch.from_numpy(arr[None] if squeeze else arr)[:, None]
        if t.shape[-2:] != (self.size, self.size):
            t = F.interpolate(t, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        out = t[:, 0].numpy()
        return out[0] if squeeze else out

    def __call__(self, hu: np.ndarray) -> np.ndarray:
        """HU slice(s) -> model space at ``size`` x ``size``."""
        return self.resize(self.hu_to_model(hu))


DEFAULT = Preprocessing()
hu_to_model = DEFAULT.hu_to_model
model_to_hu = DEFAULT.model_to_hu
