"""The export formats: one registry, read by the navigator's Export menu and its export.

``EXPORT_FORMATS`` has the shape of ``directions.METHODS``: one :class:`ExportFormat` record per
format (menu label, suffix, writer). Adding a format is one writer function
``fn(path, sweep: SweepExport) -> list[Path]`` and one record below (or
``register_export_format`` at run time); the navigator lists the records in its menu and calls
the chosen one's writer. A format that napari's File > Save Layer also offers for any image layer
is marked ``save_layer`` and has a writer contribution with its suffix in ``napari.yaml``
(``tests/napari/test_export_registry.py`` checks the two agree). ``latentdirs export`` offers the
same records on the command line: it builds the sweep with :func:`sweep_of` and calls the same writer.

Writers are named ``"package.module:function"`` (or given as the callable) and imported only when
they run. The writers below are thin: the file formats themselves are :mod:`.export`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import export as ex
from .navigation import shift_grid, stack

#: Rows of the figure grid: the selected direction and its neighbours, at most this many.
GRID_ROWS = 8
#: Columns of the figure grid (shifts), when the sweep has at least this many frames.
GRID_COLUMNS = 7


@dataclass(frozen=True)
class SweepExport:
    """What the navigator hands a writer: the stack it shows and how to render more of it.

    ``stack``: (latent, shift, H, W) in HU; ``shifts``: the shift of each frame; ``latent``: the
    latent on screen (a sweep, a series and the figure are of that one); ``window``: the display
    window (a name or (low, high) HU); ``model``, ``direction``, ``label``: what the stack shows;
    ``labels``: every direction's label in the set's order; ``render(direction, shifts)``: the
    on-screen latent shifted along another direction, (S, H, W) HU (None where nothing can render).
    """

    stack: np.ndarray
    shifts: np.ndarray
    latent: int = 0
    window: str | tuple[float, float] = "lung"
    model: str = ""
    direction: int = 0
    label: str = ""
    labels: tuple[str, ...] = ()
    render: Callable[[int, np.ndarray], np.ndarray] | None = field(default=None, compare=False)
    scale: int = 1  # GIF / MP4 pixels per model pixel

    @property
    def frames(self) -> np.ndarray:
        """(S, H, W) HU: the sweep of the latent on screen."""
        return self.stack[self.latent]

    @property
    def frame_step(self) -> float:
        return float(np.diff(self.shifts).mean()) if np.size(self.shifts) > 1 else 1.0

    @property
    def metadata(self) -> dict[str, Any]:
        """The navigator's record of the stack (what a TIFF carries)."""
        return {"model": self.model, "direction": self.direction, "label": self.label,
                "shifts": [float(s) for s in self.shifts]}


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    ``label``: the navigator's menu entry; ``suffix``: of the file written (or of the folder);
    ``fn``: ``"package.module:function"`` or the callable, ``fn(path, sweep) -> list[Path]``;
    ``folder``: it writes a folder (a new or empty one), chosen with a folder dialog;
    ``save_layer``: napari's File > Save Layer offers it too (a writer in ``napari.yaml``).
    """

    label: str
    suffix: str
    fn: str | Callable[[Path, SweepExport], list[Path]]
    folder: bool = False
    save_layer: bool = False

    def __post_init__(self) -> None:
        if not self.suffix.startswith(".") or len(self.suffix) < 2:
            raise ValueError(f"an export suffix starts with a dot, got {self.suffix!r}")

    def resolve(self) -> Callable[[Path, SweepExport], list[Path]]:
        if callable(self.fn):
            return self.fn
        module, _, name = self.fn.partition(":")
        return getattr(importlib.import_module(module), name)

    def write(self, path: str | Path, sweep: SweepExport) -> list[Path]:
        return [Path(p) for p in self.resolve()(Path(path), sweep)]


def set_labels(ds: Any) -> tuple[str, ...]:
    """Every direction's name in an export: its label, else ``"direction j"``."""
    labels = list(ds.labels or [])
    return tuple((labels[j] if j < len(labels) else "") or f"direction {j}" for j in range(int(ds.K)))


def sweep_of(generator: Any, ds: Any, direction: int, z: np.ndarray, shifts: np.ndarray, *, latent: int = 0,
             window: str | tuple[float, float] = "lung", model: str = "", scale: int = 1) -> SweepExport:
    """The sweep of direction ``direction`` of set ``ds`` for latents ``z`` (N, d), rendered in HU:
    what the navigator hands a writer, made without it (``latentdirs export``)."""
    K = int(ds.K)
    if not 0 <= int(direction) < K:
        raise ValueError(f"direction {direction} is not in the set: it has directions 0 to {K - 1}")
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    if not 0 <= int(latent) < z.shape[0]:
        raise ValueError(f"latent {latent} is not among the {z.shape[0]} latents")
    shifts = np.asarray(shifts, dtype=np.float32).reshape(-1)
    hu = stack(generator, z, ds.direction(int(direction)), shifts)
    one = z[int(latent) : int(latent) + 1]

    def render(j: int, at: np.ndarray) -> np.ndarray:
        return stack(generator, one, ds.direction(int(j)), np.asarray(at, dtype=np.float32))[0]

    labels = set_labels(ds)
    return SweepExport(hu, shifts, int(latent), window, model, int(direction), labels[int(direction)], labels, render,
                       scale=int(scale))


# -- the writers ---------------------------------------------------------------------------------


def write_tiff_stack(path: Path, sweep: SweepExport) -> list[Path]:
    """Every latent's sweep, ImageJ (T, Z) with the shift step as the frame spacing."""
    return [ex.write_tiff(path, sweep.stack, frame_step=sweep.frame_step, metadata=sweep.metadata)]


def write_gif_sweep(path: Path, sweep: SweepExport) -> list[Path]:
    return [ex.write_gif(path, sweep.frames, sweep.window, shifts=sweep.shifts.tolist(), scale=sweep.scale)]


def write_mp4_sweep(path: Path, sweep: SweepExport) -> list[Path]:
    return [ex.write_mp4(path, sweep.frames, sweep.window, shifts=sweep.shifts.tolist(), scale=max(1, sweep.scale))]


def write_figure_grid(path: Path, sweep: SweepExport) -> list[Path]:
    """The paper's figure: the selected direction and its neighbours in the set as rows (#0-#7
    whatever was selected hid the one the user chose), shifts as columns."""
    if sweep.render is None:
        raise ValueError("the figure grid renders every direction: it needs the generator")
    n = min(len(sweep.labels), GRID_ROWS)
    start = int(np.clip(sweep.direction - n // 2, 0, len(sweep.labels) - n))
    rows = list(range(start, start + n))
    n_cols = GRID_COLUMNS if np.size(sweep.shifts) >= GRID_COLUMNS else int(np.size(sweep.shifts))
    cols = shift_grid(float(np.min(sweep.shifts)), float(np.max(sweep.shifts)), n_cols)
    tiles = np.stack([sweep.render(j, cols) for j in rows])
    return [ex.write_png_grid(path, tiles, [sweep.labels[j] for j in rows], cols, sweep.window)]


def write_dicom_sweep(path: Path, sweep: SweepExport) -> list[Path]:
    """The on-screen sweep as one derived CT series (its description names no source image)."""
    return ex.write_dicom_series(path, sweep.frames, slice_mm=1.0, description=f"{sweep.model} {sweep.label} sweep"[:64])


_M = "napari_latentdirs.analysis.export_formats"

#: name -> format; the order is the navigator's menu order.
EXPORT_FORMATS: dict[str, ExportFormat] = {
    "tiff": ExportFormat("TIFF (stack, with spacing)", ".tif", f"{_M}:write_tiff_stack", save_layer=True),
    "gif": ExportFormat("GIF sweep (current latent)", ".gif", f"{_M}:write_gif_sweep"),
    "mp4": ExportFormat("MP4 sweep (current latent)", ".mp4", f"{_M}:write_mp4_sweep"),
    "png-grid": ExportFormat("PNG grid (paper figure)", ".png", f"{_M}:write_figure_grid"),
    "dicom": ExportFormat("DICOM series (derived)", ".dcmdir", f"{_M}:write_dicom_sweep", folder=True,
                          save_layer=True),
}


def register_export_format(name: str, spec: ExportFormat) -> ExportFormat | None:
    """Add (or replace) a format; returns the record it replaced, if any."""
    if not isinstance(spec, ExportFormat):
        raise TypeError(f"expected an ExportFormat, got {type(spec).__name__}")
    previous = EXPORT_FORMATS.get(name)
    EXPORT_FORMATS[name] = spec
    return previous


def unregister_export_format(name: str) -> ExportFormat | None:
    return EXPORT_FORMATS.pop(name, None)


def export_format(key: str) -> ExportFormat:
    """A format by its name, or by its suffix (``".tif"``)."""
    if key in EXPORT_FORMATS:
        return EXPORT_FORMATS[key]
    for spec in EXPORT_FORMATS.values():
        if key == spec.suffix:
            return spec
    raise ValueError(f"unknown export format {key!r}; choose from {tuple(EXPORT_FORMATS)} "
                     f"or their suffixes {tuple(s.suffix for s in EXPORT_FORMATS.values())}")


__all__ = ["EXPORT_FORMATS", "ExportFormat", "SweepExport", "export_format", "register_export_format",
           "set_labels", "sweep_of", "unregister_export_format", "write_dicom_sweep", "write_figure_grid",
           "write_gif_sweep", "write_mp4_sweep", "write_tiff_stack"]
