"""Figures in the paper's layouts, written as PNG (and GIF animations).

- ``fig_direction_grid``: directions x shifts (Fig. 2-7): one row per direction,
  centre column the original latent, left/right negative/positive shifts.
- ``fig_latents_along``: 24 latents shifted along one direction (Fig. 8).
- ``fig_random_vs_discovered``: random directions beside discovered ones (Fig. 9/10).
- ``fig_interpolation``: embedded held-out slices and the path between them (Fig. 11).
- ``direction_gif``: an animation of latents sweeping along one direction.

Images are in model space; they are shown through a CT window (default
HU [-1000, 400], lung to soft tissue) mapped to model space with the
generator's recorded preprocessing (``models.registry.preprocessing_of``), so a
model trained on a cache with another HU window is shown in the same HU window.
Only matplotlib's object API is used (no pyplot state), so this runs headless.
Every file is written atomically (temporary file, then one rename).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.preprocess import DEFAULT, Preprocessing
from ..models.interface import LatentGenerator
from ..utils.atomic import atomic_path
from .labelling import generate_images

CT_WINDOW_HU = (-1000.0, 400.0)


def ct_window(preprocessing: Preprocessing = DEFAULT, hu: tuple[float, float] = CT_WINDOW_HU) -> tuple[float, float]:
    """An HU display window as model-space limits under ``preprocessing``."""
    return (float(preprocessing.hu_to_model(np.float32(hu[0]))), float(preprocessing.hu_to_model(np.float32(hu[1]))))


def _window_of(generator: LatentGenerator, window: tuple[float, float] | None) -> tuple[float, float]:
    if window is not None:
        return window
    from ..models.registry import preprocessing_of

    return ct_window(preprocessing_of(generator))


#: The CT window under the default preprocessing (figures of a generator default to its own).
CT_WINDOW = ct_window(DEFAULT)
FULL_RANGE = (-1.0, 1.0)


def _to_uint8(x: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return (np.clip((np.asarray(x, np.float32) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def mosaic(images: np.ndarray, pad: int = 2, fill: float = 1.0) -> np.ndarray:
    """(R, C, H, W) -> one (R*(H+pad)-pad, C*(W+pad)-pad) image."""
    r, c, h, w = images.shape
    out = np.full((r * (h + pad) - pad, c * (w + pad) - pad), fill, np.float32)
    for i in range(r):
        for j in range(c):
            out[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = images[i, j]
    return out


def shift_images(generator: LatentGenerator, A: np.ndarray, ks: Sequence[int], z: np.ndarray, alphas: Sequence[float],
                 normalise: bool = True) -> np.ndarray:
    """Images (len(ks), len(alphas), H, W): row r is z[r % len(z)] shifted along A[:, ks[r]]."""
    A = np.asarray(A, np.float32)
    if normalise:
        A = A / np.maximum(np.linalg.norm(A, axis=0, keepdims=True), 1e-12)
    z = np.atleast_2d(np.asarray(z, np.float32))
    a = np.asarray(alphas, np.float32)
    zs = np.stack([z[r % len(z)][None] + a[:, None] * A[:, k][None] for r, k in enumerate(ks)])
    x = generate_images(generator, zs.reshape(-1, A.shape[0]))
    return x.reshape(len(ks), len(a), *x.shape[1:])


def _save_mosaic(images: np.ndarray, path: str | Path, row_labels: Sequence[str] | None = None,
                 col_labels: Sequence[str] | None = None, title: str = "",
                 window: tuple[float, float] = CT_WINDOW, dpi: int = 100,
                 block_titles: Sequence[tuple[str, float]] | None = None) -> Path:
    """Render (R, C, H, W) images as a labelled grid; ``block_titles`` are (text, centre column) pairs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    r, c, h, w = images.shape
    pad = max(2, h // 32)
    m = mosaic(_to_uint8(images, window).astype(np.float32) / 255.0, pad=pad)
    # Row labels are descriptions ("width ↑ 0.48 · height ↓ 0.31"): room for the longest at 9 pt.
    left = max(1.8, 0.075 * max(map(len, row_labels))) if row_labels else 0.2
    top = 0.7 if (title or col_labels or block_titles) else 0.2
    scale = 1.2 / max(h, 1) * 100 / dpi  # ~1.2 in per 100 px tile
    width_in = m.shape[1] * scale + left + 0.2
    height_in = m.shape[0] * scale + top + 0.2
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / width_in, 0.2 / height_in, m.shape[1] * scale / width_in, m.shape[0] * scale / height_in))
    ax.imshow(m, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if row_labels:
        for i, lab in enumerate(row_labels):
            ax.text(-pad * 2, i * (h + pad) + h / 2, lab, ha="right", va="center", fontsize=9)
    if col_labels:
        for j, lab in enumerate(col_labels):
            ax.text(j * (w + pad) + w / 2, -pad * 2, lab, ha="center", va="bottom", fontsize=8)
    if block_titles:
        for lab, centre in block_titles:
            x0 = (centre + 0.5) * (w + pad)
            ax.text(x0, -pad * 2 - (h * 0.25 if col_labels else 0), lab, ha="center", va="bottom", fontsize=10, weight="bold")
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.15 / height_in, va="top")
    path = Path(path)
    with atomic_path(path) as tmp:  # a killed run never leaves a half figure under its name
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    return path


def _alpha_labels(alphas: Sequence[float]) -> list[str]:
    return ["original" if a == 0 else f"{a:+g}" for a in alphas]


def fig_direction_grid(generator: LatentGenerator, A: np.ndarray, ks: Sequence[int], labels: Sequence[str], path: str | Path,
                       alphas: Sequence[float] = (-6, -4, -2, 0, 2, 4, 6), seed: int = 0, title: str = "",
                       window: tuple[float, float] | None = None) -> Path:
    """Paper Fig. 2: one row per direction (own random latent), shifts left/right of the original."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((len(ks), A.shape[0])).astype(np.float32)
    imgs = shift_images(generator, A, ks, z, alphas)
    return _save_mosaic(imgs, path, list(labels), _alpha_labels(alphas), title, _window_of(generator, window))


def fig_latents_along(generator: LatentGenerator, direction: np.ndarray, path: str | Path, n: int = 24,
                      alphas: Sequence[float] = (-6, -3, 0, 3, 6), seed: int = 0, title: str = "",
                      blocks: int = 2, window: tuple[float, float] | None = None) -> Path:
    """Paper Fig. 8: ``n`` random latents shifted along one direction, in ``blocks`` side-by-side columns."""
    rng = np.random.default_rng(seed)
    d = np.asarray(direction, np.float32).reshape(-1, 1)
    z = rng.standard_normal((n, d.shape[0])).astype(np.float32)
    imgs = shift_images(generator, d, [0] * n, z, alphas)
    per = int(np.ceil(n / blocks))
    if per * blocks != n:
        imgs = np.concatenate([imgs, np.full((per * blocks - n, *imgs.shape[1:]), -1.0, np.float32)])
    grid = np.concatenate([imgs[b * per : (b + 1) * per] for b in range(blocks)], axis=1)
    cols = _alpha_labels(alphas) * blocks
    return _save_mosaic(grid, path, None, cols, title, _window_of(generator, window))


def fig_random_vs_discovered(generator: LatentGenerator, A_random: np.ndarray, A_found: np.ndarray, path: str | Path,
                             ks_found: Sequence[int] | None = None, n: int = 5,
                             alphas: Sequence[float] = (-6, -3, 0, 3, 6), seed: int = 0, title: str = "",
                             window: tuple[float, float] | None = None,
                             labels_found: Sequence[str] | None = None) -> Path:
    """Paper Fig. 9/10: ``n`` random directions (left) beside ``n`` discovered ones (right), same latents.
    ``labels_found`` (one per shown discovered direction, e.g. its description) name the rows."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, A_found.shape[0])).astype(np.float32)
    ks_found = list(ks_found if ks_found is not None else range(min(n, A_found.shape[1])))[:n]
    n = min(n, A_random.shape[1], len(ks_found))
    left = shift_images(generator, A_random, list(range(n)), z[:n], alphas)
    right = shift_images(generator, A_found, ks_found[:n], z[:n], alphas)
    grid = np.concatenate([left, np.full((n, 1, *left.shape[2:]), 1.0, np.float32), right], axis=1)
    cols = _alpha_labels(alphas) + [""] + _alpha_labels(alphas)
    names = list(labels_found)[:n] if labels_found is not None else [f"#{k}" for k in ks_found[:n]]
    rows = [f"random {i} | {name}" for i, name in enumerate(names)]
    return _save_mosaic(grid, path, rows, cols, title, _window_of(generator, window), block_titles=[("random", (len(alphas) - 1) / 2), ("discovered", len(alphas) + 1 + (len(alphas) - 1) / 2)])


def fig_interpolation(originals: np.ndarray, frames: np.ndarray, path: str | Path, cols: int = 4, title: str = "",
                      window: tuple[float, float] | None = None, preprocessing: Preprocessing | None = None) -> Path:
    """Paper Fig. 11: original A top-left, original B bottom-right, the path in between (row-major).
    Without ``window``, the CT window under ``preprocessing`` (that of the model; default: the default)."""
    if window is None:
        window = ct_window(preprocessing or DEFAULT)
    seq = [originals[0], *frames, originals[1]]
    rows = int(np.ceil(len(seq) / cols))
    blank = np.full_like(originals[0], 1.0)
    # Pad before the last image so that B sits bottom-right.
    seq = seq[:-1] + [blank] * (rows * cols - len(seq)) + seq[-1:]
    grid = np.stack(seq).reshape(rows, cols, *originals.shape[1:])
    return _save_mosaic(grid, path, None, None, title, window)


def direction_gif(generator: LatentGenerator, direction: np.ndarray, path: str | Path, n: int = 4, amax: float = 6.0,
                  frames: int = 16, seed: int = 0, window: tuple[float, float] | None = None, duration_ms: int = 120) -> Path:
    """GIF of ``n`` latents side by side sweeping -amax -> +amax -> -amax along one direction."""
    import imageio.v3 as iio

    rng = np.random.default_rng(seed)
    d = np.asarray(direction, np.float32).reshape(-1, 1)
    z = rng.standard_normal((n, d.shape[0])).astype(np.float32)
    sweep = np.linspace(-amax, amax, frames)
    imgs = shift_images(generator, d, [0] * n, z, sweep)  # (n, frames, H, W)
    seq = np.concatenate([np.arange(frames), np.arange(frames - 2, 0, -1)])
    window = _window_of(generator, window)
    out = [_to_uint8(mosaic(imgs[:, t][None]), window) for t in seq]
    from .annotate import stamp_alpha  # each frame says its shift: the sweep's ends look alike

    out = stamp_alpha(np.stack(out), [float(sweep[t]) for t in seq])
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, out, extension=".gif", duration=duration_ms, loop=0)
    return path
