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

Adding or removing a layer with more axes makes napari rebuild its dims, and the CT then
jumped to its last slice (and "encode CT slice" encoded that one). The viewer's CT
positions are therefore recorded before every insertion or removal and put back after it
(:func:`keep_ct_position`): the CT stays on the slice the user chose.
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
    _watch(viewer)  # before the insertion: it records where the CT is
    kept = ct_positions(viewer)
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
    arrange(viewer)
    if first:  # it sits right of the CT, likely off screen: show both
        viewer.reset_view()
    restore_ct_positions(viewer, kept)
    return layer


def ct_layers(viewer: Any) -> list[Any]:
    """The viewer's CT-like image layers: 2-D or 3-D images that are not generated ones."""
    from napari.layers import Image

    return [ly for ly in viewer.layers if isinstance(ly, Image) and ly.ndim in (2, 3) and not ly.rgb and not is_generated(ly)]


def set_window(viewer: Any, name: str, layer: Any = None, linked: bool = True) -> None:
    """Put ``layer`` (and, ``linked``, every CT and generated layer beside it) on HU window
    ``name``: side by side the same tissue then has the same grey (issue 19: the CT opened
    at -1000..400 and the stacks at W1500/L-600, so the real body was grey and the
    generated one white)."""
    limits = window_limits(name)
    targets = [layer] if layer is not None else []
    if linked:
        targets += [ly for ly in viewer.layers if is_generated(ly)] + ct_layers(viewer)
    for ly in {id(t): t for t in targets}.values():
        if ly in viewer.layers:
            lo, hi = ly.contrast_limits_range
            if limits[0] < lo or limits[1] > hi:
                ly.contrast_limits_range = (min(lo, limits[0]), max(hi, limits[1]))
            ly.contrast_limits = limits


def is_generated(layer: Any) -> bool:
    return isinstance(getattr(layer, "metadata", None), dict) and GENERATED in layer.metadata


def _watch(viewer: Any) -> None:
    if viewer in _watched:
        return
    _watched.add(viewer)
    ref = weakref.ref(viewer)

    kept: list[list[tuple[Any, list[int]]]] = [[]]

    def record(*_: Any) -> None:
        v = ref()
        if v is not None:
            kept[0] = ct_positions(v)

    def rearrange_and_restore(*_: Any) -> None:
        v = ref()
        if v is not None:
            arrange(v)
            restore_ct_positions(v, kept[0])

    viewer.layers.events.inserting.connect(record)
    viewer.layers.events.removing.connect(record)
    viewer.layers.events.inserted.connect(rearrange_and_restore)
    viewer.layers.events.removed.connect(rearrange_and_restore)


def _leading_axes(layer: Any) -> range:
    """The CT's axes in front of its displayed (y, x) plane: z (and time, if any)."""
    return range(max(layer.ndim - 2, 0))


def ct_positions(viewer: Any) -> list[tuple[Any, list[int]]]:
    """For every non-generated volume layer, the data index shown on each of its leading axes."""
    out = []
    point = np.asarray(viewer.dims.point, dtype=float)
    for ly in viewer.layers:
        if is_generated(ly) or ly.ndim < 3:
            continue
        idx = []
        for a in _leading_axes(ly):
            world = point[axis_of(viewer, ly, a)]
            scale, translate = float(ly.scale[a]), float(ly.translate[a])
            i = int(np.round((world - translate) / scale)) if scale else 0
            idx.append(int(np.clip(i, 0, ly.data.shape[a] - 1)))
        out.append((ly, idx))
    return out


def restore_ct_positions(viewer: Any, kept: list[tuple[Any, list[int]]]) -> None:
    """Put every recorded CT back on its recorded slice (see the module doc)."""
    for ly, idx in kept:
        if ly not in viewer.layers or ly.ndim < 3 or len(idx) != len(_leading_axes(ly)):
            continue
        for a, i in zip(_leading_axes(ly), idx, strict=True):
            axis = axis_of(viewer, ly, a)
            world = float(ly.translate[a]) + float(ly.scale[a]) * i
            if not np.isclose(viewer.dims.point[axis], world):
                viewer.dims.set_point(axis, world)


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
