"""Stamp the shift α onto exported frames, so an animation says where along a direction it is.

A GIF of a direction sweep ping-pongs between -α and +α; without the value on each
frame a reader cannot tell the ends apart. Text is drawn with the DejaVu Sans font
that matplotlib ships (it has Greek), white with a black outline so it reads on
lung (dark) and bone (bright) windows alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (ImportError, OSError, ValueError):
        return ImageFont.load_default()


def alpha_text(alpha: float) -> str:
    return f"α = {alpha:+.2f}"


def stamp_alpha(frames: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """(S, H, W) uint8 frames -> the same with ``α = ±x.xx`` in the bottom-left corner."""
    from PIL import Image, ImageDraw

    frames = np.asarray(frames)
    if frames.ndim != 3 or len(alphas) != len(frames):
        raise ValueError(f"need (S, H, W) frames and S shifts, got {frames.shape} and {len(alphas)}")
    h = frames.shape[1]
    size = max(9, h // 11)
    out = np.empty_like(frames)
    for i, (frame, alpha) in enumerate(zip(frames, alphas)):
        img = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8), mode="L")
        ImageDraw.Draw(img).text((2, h - size - 3), alpha_text(float(alpha)), fill=255, font=_font(size),
                                 stroke_width=max(1, size // 8), stroke_fill=0)
        out[i] = np.asarray(img)
    return out
