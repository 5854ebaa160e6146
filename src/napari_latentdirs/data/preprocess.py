"""The preprocessing (HU <-> model space) and its exact inverse: the one home of that mapping.

Model space, used by every generator, reconstructor and probe in this project:
``x = 2 * (clip(HU, hu_min, hu_max) - hu_min) / (hu_max - hu_min) - 1``, a
float32 in [-1, 1] (the range of the generators' tanh output). The paper's
window, :data:`DEFAULT`, is [-1000, 2000] HU. The inverse maps [-1, 1] back to
[hu_min, hu_max] HU. Resizing uses an antialiased bilinear filter.

The window a cache was prepared with travels with the data: it is recorded in
the cache's ``index.json``, in every training checkpoint and exported
generator, and in every direction set (``"preprocessing"``, the dict of
:meth:`Preprocessing.to_dict`); ``models.registry.preprocessing_of`` reads it
back, so every decode to HU uses the window the model was trained in.

The in-place kernels (:meth:`Preprocessing.hu_to_model_inplace`,
:meth:`Preprocessing.stored_to_model_into`) are what ``prepare`` runs; the
array methods use the same kernel, so all routes agree bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

HU_MIN = -1000.0
HU_MAX = 2000.0
#: The model-space range every window maps onto (the generators' tanh output).
VALUE_RANGE = (-1.0, 1.0)

_INT_BUFFERS: dict[tuple, np.ndarray] = {}


@dataclass(frozen=True)
class Preprocessing:
    hu_min: float = HU_MIN
    hu_max: float = HU_MAX
    size: int = 128

    def __post_init__(self) -> None:
        lo, hi = float(self.hu_min), float(self.hu_max)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise ValueError(f"the HU window must be two finite numbers MIN < MAX, got {self.hu_min}..{self.hu_max}")
        if isinstance(self.size, bool) or int(self.size) != self.size or int(self.size) < 1:
            raise ValueError(f"the preprocessing size must be a positive integer, got {self.size!r}")
        object.__setattr__(self, "hu_min", lo)
        object.__setattr__(self, "hu_max", hi)
        object.__setattr__(self, "size", int(self.size))

    @property
    def value_range(self) -> tuple[float, float]:
        """The model-space range (always [-1, 1]): ``hu_min`` maps to its low end, ``hu_max`` to its high end."""
        return VALUE_RANGE

    @property
    def hu_per_unit(self) -> float:
        """HU per unit of model space (a model-space error times this is an error in HU)."""
        return (self.hu_max - self.hu_min) / (VALUE_RANGE[1] - VALUE_RANGE[0])

    @property
    def is_default(self) -> bool:
        return (self.hu_min, self.hu_max) == (HU_MIN, HU_MAX)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> Preprocessing:
        """The inverse of :meth:`to_dict` (as recorded in caches, generators and direction sets).

        Unknown keys are ignored; a recorded ``value_range`` other than [-1, 1], a missing
        or malformed window raise ``ValueError``."""
        if not isinstance(d, dict):
            raise ValueError(f"a recorded preprocessing must be a JSON object, got {type(d).__name__}")
        vr = d.get("value_range")
        if vr is not None and (not isinstance(vr, (list, tuple)) or [float(v) for v in vr] != list(VALUE_RANGE)):
            raise ValueError(f"recorded preprocessing has value_range {vr!r}; only {list(VALUE_RANGE)} is supported")
        try:
            return cls(hu_min=float(d["hu_min"]), hu_max=float(d["hu_max"]), size=d.get("size", 128))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"recorded preprocessing {d!r} has no valid hu_min/hu_max ({exc})") from exc

    # -- the kernels (in place, float32; every other route goes through these) ---
    def hu_to_model_inplace(self, x: np.ndarray) -> np.ndarray:
        """Clip and scale float32 HU into [-1, 1] in place, without temporaries; returns ``x``."""
        np.clip(x, self.hu_min, self.hu_max, out=x)
        x -= np.float32(self.hu_min)
        x *= np.float32(2.0)
        x /= np.float32(self.hu_max - self.hu_min)
        x -= np.float32(1.0)
        return x

    def model_to_hu_inplace(self, x: np.ndarray) -> np.ndarray:
        """The exact inverse of :meth:`hu_to_model_inplace` on [-1, 1], in place; returns ``x``."""
        x += np.float32(1.0)
        x *= np.float32(0.5)
        x *= np.float32(self.hu_max - self.hu_min)
        x += np.float32(self.hu_min)
        return x

    def stored_to_model_into(self, raw: np.ndarray, slope: float, intercept: float, out: np.ndarray) -> bool:
        """Stored DICOM integers -> model space into ``out`` in 4 passes instead of 6; False if not applicable.

        Bit-identical to :meth:`hu_to_model` of the rescaled HU. Why it is exact: with
        slope 1 and an integer intercept, HU are integers (exact in float32), so clipping
        HU to [hu_min, hu_max] equals clipping the stored values to
        [hu_min - intercept, hu_max - intercept] in their own (narrow, fast) dtype;
        ``HU - hu_min`` is then an exact integer t, and ``2 t / D`` (D = hu_max - hu_min)
        rounds the same real number as ``t / (D / 2)`` whenever D / 2 is exact.
        """
        if slope != 1.0 or raw.dtype.kind not in "iu" or raw.itemsize > 2:
            return False
        lo, hi, span = self.hu_min - intercept, self.hu_max - intercept, self.hu_max - self.hu_min
        info = np.iinfo(raw.dtype)
        if not (
            intercept == int(intercept) and abs(intercept) < 2**20
            and self.hu_min == int(self.hu_min) and self.hu_max == int(self.hu_max) and span > 0
            and max(abs(self.hu_min), abs(self.hu_max)) < 2**20  # every integer involved is exact in float32
            and lo <= info.max and hi >= info.min and float(np.float32(span / 2)) * 2 == span
        ):
            return False
        # Bounds outside the dtype's range clip nothing on that side.
        lo, hi = max(lo, info.min), min(hi, info.max)
        key = (raw.dtype.str, raw.shape)
        ibuf = _INT_BUFFERS.get(key)
        if ibuf is None:
            _INT_BUFFERS.clear()
            ibuf = _INT_BUFFERS[key] = np.empty(raw.shape, dtype=raw.dtype)
        np.clip(raw, int(lo), int(hi), out=ibuf)
        np.add(ibuf, np.float32(intercept - self.hu_min), out=out, dtype=np.float32)
        out /= np.float32(span / 2)
        out -= np.float32(1.0)
        return True

    # -- array API ------------------------------------------------------------------
    def hu_to_model(self, hu: np.ndarray) -> np.ndarray:
        """Clip and min-max scale HU into [-1, 1] (no resizing)."""
        return self.hu_to_model_inplace(np.array(hu, dtype=np.float32, copy=True))

    def model_to_hu(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Exact inverse of :meth:`hu_to_model` on [-1, 1]."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().float().numpy()
        return self.model_to_hu_inplace(np.array(x, dtype=np.float32, copy=True))

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
