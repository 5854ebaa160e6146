"""Where generated images sit in the viewer: beside the CT, in mm, on axes of their own.

napari aligns layers by their trailing axes, so a (latent, shift, y, x) stack next to
a (z, y, x) CT would share its shift axis with the CT's z axis: stepping the shift
scrolled the CT. Every generated layer here therefore has the layout

    (latent, shift α, z, y, x)  -- navigator and review stacks
    (z, y, x)                   -- sample mosaics (training, direction samples)

with a z axis of one plane, stretched over the z range of the other layers so it shows
at every CT slice, and its own axes in front of the CT's. In y and x it gets the
model's pixel spacing in mm and is moved to the right of everything placed before it,
so no two layers' world extents overlap. Contrast limits start at an HU window and
have a range wide enough for every window, so the slider can always reach the data.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from ..analysis.navigation import WINDOWS, window_limits
from ..data.preprocess import HU_MAX, HU_MIN

#: metadata key that marks a layer as ours to place
GENERATED = "latentdirs_generated"
STACK_AXES = ("latent", "shift α", "z", "y", "x")
MOSAIC_AXES = ("z", "y", "x")
#: contrast-limit range of generated layers: every window preset and the model's HU range
HU_RANGE = (
    min(HU_MIN, *(lv - w / 2 for w, lv in WINDOWS.values())),
    max(HU_MAX, *(lv + w / 2 for w, lv in WINDOWS.values())),
)
GAP_FRACTION = 0.05  # gap between neighbours, as a fraction of the width placed so far

_watched: weakref.WeakSet = weakref.WeakSet()


def as_stack(stack: np.ndarray) -> np.ndarray:
    """(latent, shift, H, W) -> (latent, shift, 1, H, W), a view."""
    return stack[:, :, None]


def mosaic(images: np.ndarray, cols: int | None = None, fill: float = HU_MIN) -> np.ndarray:
    """(N, H, W) -> (1, rows*H, cols*W): the samples tiled row by row, one pixel apart."""
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    cols = max(1, min(n, cols or math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    out = np.full((1, rows * (h + 1) - 1, cols * (w + 1) - 1), fill, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[0, r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = images[i]
    return out


def add_generated(viewer: Any, data: np.ndarray, *, name: str, pixel_mm: float, window: str = "lung",
                  metadata: dict | None = None) -> Any:
    """Add a generated image layer (5-D stack or 3-D mosaic) and place it."""
    axes = STACK_AXES if data.ndim == 5 else MOSAIC_AXES
    if data.ndim != len(axes):
        raise ValueError(f"generated layers are (latent, shift, z, y, x) or (z, y, x), got {data.shape}")
    meta = dict(metadata or {})
    meta[GENERATED] = {"pixel_mm": float(pixel_mm)}
    first = not any(is_generated(ly) for ly in viewer.layers)
    layer = viewer.add_image(
        data,
        name=name,
        colormap="gray",
        contrast_limits=window_limits(window),
        axis_labels=axes,
        metadata=meta,
    )
    layer.contrast_limits_range = HU_RANGE
    layer.contrast_limits = window_limits(window)
    _watch(viewer)
    arrange(viewer)
    if first:  # it sits right of the CT, likely off screen: show both
        viewer.reset_view()
    return layer


def is_generated(layer: Any) -> bool:
    return isinstance(getattr(layer, "metadata", None), dict) and GENERATED in layer.metadata


def _watch(viewer: Any) -> None:
    if viewer in _watched:
        return
    _watched.add(viewer)
    ref = weakref.ref(viewer)

    def rearrange(*_: Any) -> None:
        v = ref()
        if v is not None:
            arrange(v)

    viewer.layers.events.inserted.connect(rearrange)
    viewer.layers.events.removed.connect(rearrange)


def _yx_bounds(layer: Any) -> tuple[float, float, float, float]:
    """(y0, y1, x0, x1) of the layer's pixels' outer edges in world mm."""
    ext = np.asarray(layer.extent.world, dtype=float)
    half = 0.5 * np.abs(np.asarray(layer.scale, dtype=float))
    return ext[0, -2] - half[-2], ext[1, -2] + half[-2], ext[0, -1] - half[-1], ext[1, -1] + half[-1]


def arrange(viewer: Any) -> None:
    """Place every generated layer to the right of the layers before it (see the module doc)."""
    layers = list(viewer.layers)
    fixed = [ly for ly in layers if not is_generated(ly) and ly.ndim >= 2]
    bounds = [_yx_bounds(ly) for ly in fixed]
    volumes = [ly for ly in fixed if ly.ndim >= 3]
    z_lo = z_hi = None
    if volumes:
        ext = np.array([np.asarray(ly.extent.world, dtype=float)[:, -3] for ly in volumes])
        z_lo, z_hi = float(ext[:, 0].min()), float(ext[:, 1].max())
        z_step = min(abs(float(ly.scale[-3])) for ly in volumes)
    for ly in layers:
        if not is_generated(ly):
            continue
        px = float(ly.metadata[GENERATED]["pixel_mm"])
        if bounds:
            y0 = min(b[0] for b in bounds)
            x_left = min(b[2] for b in bounds)
            x_right = max(b[3] for b in bounds)
            x0 = x_right + GAP_FRACTION * (x_right - x_left) + 0.5 * px
        else:
            y0, x0 = 0.0, 0.5 * px
        scale = list(ly.scale)
        translate = list(ly.translate)
        scale[-2:] = [px, px]
        translate[-2:] = [y0 + 0.5 * px if bounds else 0.0, x0]
        if z_lo is not None:
            # one plane that spans every CT slice: shown whichever slice is on screen
            scale[-3] = max(z_hi - z_lo + z_step, 1e-6)
            translate[-3] = 0.5 * (z_lo + z_hi)
        else:
            scale[-3], translate[-3] = 1.0, 0.0
        if not (np.allclose(scale, ly.scale) and np.allclose(translate, ly.translate)):
            ly.scale = scale
            ly.translate = translate
        bounds.append(_yx_bounds(ly))


def axis_of(viewer: Any, layer: Any, layer_axis: int) -> int:
    """The viewer's dims axis that shows ``layer``'s axis ``layer_axis``."""
    return viewer.dims.ndim - layer.ndim + layer_axis


def plain_data(data: Any, metadata: dict | None) -> np.ndarray:
    """A layer's array without the one-plane z axis that generated layers carry only for
    display: (latent, shift, y, x) stacks and (y, x) mosaics, as the exporters expect."""
    arr = np.asarray(data)
    if isinstance(metadata, dict) and GENERATED in metadata and arr.ndim >= 3 and arr.shape[-3] == 1:
        arr = arr.reshape(*arr.shape[:-3], *arr.shape[-2:])
    return arr
