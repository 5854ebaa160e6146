"""Export shifted stacks: TIFF with spacing, GIF/MP4 sweeps, a PNG figure grid, derived DICOM.

Stacks are HU arrays with axes (latent, shift, y, x) or (shift, y, x). All
exporters write atomically, so an interrupted export never leaves a half
file or a half series under the final name:

* single files (TIFF, GIF, MP4, PNG + its JSON): a fresh temporary file
  beside the target (``O_EXCL``, so a planted symlink is never followed),
  then one rename; an existing file of that name is replaced, never written
  through (a symlink is replaced by the file, its target is left alone);
* folders (a DICOM series, a set of series, sweeps): only into a new or an
  empty folder (:class:`ExportTargetError` otherwise: nothing of the user's is
  overwritten or mixed with), written in full into a temporary folder beside
  it and renamed onto it in one step.

* TIFF: ImageJ hyperstack, float32 HU, pixel spacing in the resolution tags
  and the frame step as ImageJ ``spacing``; axes (latent, shift) map to
  ImageJ's (T, Z).
* GIF / MP4: one file per direction and latent, a *ping-pong* sweep
  (-max .. +max .. -max) through a display window, as the paper's published
  animations.
* PNG grid: the paper's figure layout -- one row per direction, one column
  per shift, the unshifted image in the centre column, the row's label on the
  left. A JSON sidecar records where every tile sits, so the figure can be
  checked against the stack it came from.
* DICOM: a derived, secondary CT series (new Study/Series/SOP UIDs, no
  patient identifiers, HU stored through rescale slope/intercept), written
  by the project's CT writer, which is dciodvfy-clean.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.atomic import _fsync_dir, atomic_path, atomic_write_text
from ..utils.weights import json_default
from .navigation import window_limits

DEFAULT_PIXEL_MM = 350.0 / 128.0  # a typical 350 mm thoracic field of view at 128 pixels
#: The series description of every DICOM export. Fixed text: a layer name or a source's
#: description may hold a patient's ID or name, so none of them is ever copied into an export.
EXPORT_DESCRIPTION = "napari-latentdirs export"


class ExportTargetError(FileExistsError):
    """The export's target folder exists and is not empty (or is a link): nothing was written."""


# -- new folders, written atomically ---------------------------------------------------------


def check_new_folder(path: str | Path) -> Path:
    """Raise ExportTargetError unless ``path`` is absent or an empty real folder."""
    path = Path(path)
    if path.is_symlink():
        raise ExportTargetError(f"{path} is a symbolic link: export into a new folder (nothing was written)")
    if path.exists():
        if not path.is_dir():
            raise ExportTargetError(f"{path} exists and is not a folder: export into a new folder (nothing was written)")
        entries = sorted(e.name for e in os.scandir(path))
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ExportTargetError(
                f"{path} is not empty ({len(entries)} entries: {shown}); export into a new or empty folder "
                "so nothing there is overwritten or mixed with this export (nothing was written)"
            )
    return path


@contextlib.contextmanager
def new_folder(path: str | Path) -> Iterator[Path]:
    """Yield a private temporary folder; on success it becomes ``path`` in one rename.

    ``path`` must be absent or an empty folder (checked before and, by ``rename``
    itself, at the end). On any error the temporary folder is removed; a kill
    leaves only a hidden ``.<name>.<pid>.*.partial`` folder, which the next export
    to the same name removes once its process is gone.
    """
    path = check_new_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_partials(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the folder gets the usual mode
        try:
            os.rename(tmp, path)  # replaces an empty folder; refuses a non-empty one
        except OSError as e:
            check_new_folder(path)  # filled meanwhile: the clear message
            raise ExportTargetError(f"cannot move the export into {path}: {e} (nothing was written)") from e
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _fsync_tree(folder: Path) -> None:
    for dirpath, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _remove_dead_partials(path: Path) -> None:
    """Temporary folders of earlier exports to ``path`` whose process was killed."""
    for tmp in path.parent.glob(f".{path.name}.*.partial"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def to_uint8(hu: np.ndarray, window: str | tuple[float, float] = "lung") -> np.ndarray:
    """HU -> 0..255 through a display window (a preset name or (low, high) HU)."""
    lo, hi = window_limits(window) if isinstance(window, str) else (float(window[0]), float(window[1]))
    if hi <= lo:
        raise ValueError(f"empty display window ({lo}, {hi})")
    x = (np.asarray(hu, dtype=np.float32) - lo) / (hi - lo)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def ping_pong(frames: np.ndarray) -> np.ndarray:
    """(S, ...) -> (2S-2, ...): forward then back without repeating the ends."""
    frames = np.asarray(frames)
    if len(frames) < 3:
        return frames
    return np.concatenate([frames, frames[-2:0:-1]], axis=0)


# -- TIFF ------------------------------------------------------------------------------------


def write_tiff(
    path: str | Path,
    stack_hu: np.ndarray,
    pixel_mm: tuple[float, float] = (DEFAULT_PIXEL_MM, DEFAULT_PIXEL_MM),
    frame_step: float = 1.0,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Float32 HU ImageJ TIFF; pixel spacing in mm. ``frame_step`` (the shift α between frames)
    goes into the Info record as ``shift_step``, not ImageJ's z "spacing": that one is read as
    mm, and α is no length (issue 19)."""
    import tifffile

    arr = np.asarray(stack_hu, dtype=np.float32)
    if arr.ndim not in (2, 3, 4):
        raise ValueError(f"expected a (y,x), (shift,y,x) or (latent,shift,y,x) stack, got shape {arr.shape}")
    axes = {2: "YX", 3: "ZYX", 4: "TZYX"}[arr.ndim]
    py, px = (float(pixel_mm[0]), float(pixel_mm[1]))
    if py <= 0 or px <= 0:
        raise ValueError(f"pixel spacing must be positive, got {pixel_mm}")
    info = json.dumps({**(metadata or {}), "shift_step": float(frame_step)}, default=json_default)
    path = Path(path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            arr,
            imagej=True,
            resolution=(1.0 / px, 1.0 / py),
            metadata={"axes": axes, "unit": "mm", "Info": info},
        )
    return path


@dataclass
class TiffStack:
    data: np.ndarray
    pixel_mm: tuple[float, float]
    frame_step: float
    metadata: dict[str, Any]


def read_tiff(path: str | Path) -> TiffStack:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        data = tf.asarray()
        page = tf.pages[0]
        xres = page.tags["XResolution"].value
        yres = page.tags["YResolution"].value
        ij = tf.imagej_metadata or {}
    px = xres[1] / xres[0]
    py = yres[1] / yres[0]
    try:
        meta = json.loads(ij.get("Info", "{}"))
    except json.JSONDecodeError:
        meta = {}
    step = meta.pop("shift_step", ij.get("spacing", 1.0))  # older files kept it as the z spacing
    return TiffStack(np.asarray(data, dtype=np.float32), (py, px), float(step), meta)


# -- animations ------------------------------------------------------------------------------


def write_gif(path: str | Path, frames_hu: np.ndarray, window: str | tuple[float, float] = "lung", fps: float = 12.0,
              shifts: Sequence[float] | None = None, scale: int = 1) -> Path:
    """Ping-pong sweep of (S, H, W) HU frames as a looping grayscale GIF (``shifts``: the α of
    each frame, stamped on it; ``scale``: pixels per model pixel, nearest neighbour, since a
    128 px sweep is small on a slide)."""
    import imageio.v3 as iio

    if int(scale) < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    frames = to_uint8(_check_frames(frames_hu), window)
    if int(scale) > 1:
        frames = frames.repeat(int(scale), axis=-2).repeat(int(scale), axis=-1)
    frames = ping_pong(_stamped(frames, shifts))
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    return path


def _stamped(frames: np.ndarray, shifts: Sequence[float] | None) -> np.ndarray:
    if shifts is None:
        return frames
    from .annotate import stamp_alpha

    return stamp_alpha(frames, list(shifts))


def write_mp4(path: str | Path, frames_hu: np.ndarray, window: str | tuple[float, float] = "lung", fps: float = 12.0, scale: int = 2,
              shifts: Sequence[float] | None = None) -> Path:
    """Ping-pong sweep as H.264 MP4 (yuv420p, so every player opens it).

    Frames are upscaled by ``scale`` (nearest) because 128 pixel videos are
    tiny on screen and H.264 wants dimensions divisible by 16.
    """
    import imageio.v3 as iio

    frames = to_uint8(_check_frames(frames_hu), window)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    frames = ping_pong(_stamped(frames, shifts))  # stamped after upscaling: sharper text
    h, w = frames.shape[1:]
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw)), mode="edge")
    rgb = np.repeat(frames[..., None], 3, axis=-1)
    path = Path(path)
    with _atomic_keep_suffix(path) as tmp:
        iio.imwrite(
            tmp,
            rgb,
            extension=".mp4",
            plugin="pyav" if _has_pyav() else "FFMPEG",
            **_mp4_kwargs(fps),
        )
    return path


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _mp4_kwargs(fps: float) -> dict[str, Any]:
    if _has_pyav():
        return {"codec": "libx264", "fps": fps}
    return {"fps": fps, "codec": "libx264", "quality": 8, "pixelformat": "yuv420p", "macro_block_size": 16}


def read_animation(path: str | Path) -> np.ndarray:
    """(F, H, W) uint8 grayscale frames of a GIF or MP4."""
    import imageio.v3 as iio

    path = Path(path)
    kw: dict[str, Any] = {"index": None}
    if path.suffix.lower() == ".mp4":
        kw["plugin"] = "pyav" if _has_pyav() else "FFMPEG"
    frames = np.asarray(iio.imread(path, **kw))
    if frames.ndim == 4:
        frames = frames[..., :3].mean(axis=-1).round().astype(np.uint8)
    return frames


def write_sweeps(
    folder: str | Path,
    stack_hu: np.ndarray,
    names: Sequence[str],
    formats: Sequence[str] = ("gif", "mp4"),
    window: str | tuple[float, float] = "lung",
    fps: float = 12.0,
) -> list[Path]:
    """One animation per (direction, latent): ``stack_hu`` is (K, N, S, H, W) or (K, S, H, W)."""
    arr = np.asarray(stack_hu, dtype=np.float32)
    if arr.ndim == 4:
        arr = arr[:, None]
    if arr.ndim != 5 or len(names) != arr.shape[0]:
        raise ValueError(f"need (K, N, S, H, W) with K={len(names)} names, got shape {arr.shape}")
    folder = Path(folder)
    out: list[Path] = []
    with new_folder(folder) as tmp:
        for k, name in enumerate(names):
            for i in range(arr.shape[1]):
                stem = f"{_safe(name)}_z{i:02d}"
                if "gif" in formats:
                    out.append(folder / write_gif(tmp / f"{stem}.gif", arr[k, i], window, fps).name)
                if "mp4" in formats:
                    out.append(folder / write_mp4(tmp / f"{stem}.mp4", arr[k, i], window, fps).name)
    return out


# -- PNG figure grid -------------------------------------------------------------------------


def grid_layout(n_rows: int, n_cols: int, tile: tuple[int, int], label_w: int, pad: int, header_h: int) -> list[list[tuple[int, int]]]:
    """Top-left (y, x) of every tile."""
    th, tw = tile
    return [[(header_h + pad + r * (th + pad), label_w + pad + c * (tw + pad)) for c in range(n_cols)] for r in range(n_rows)]


def write_png_grid(
    path: str | Path,
    stacks_hu: np.ndarray,
    labels: Sequence[str],
    shifts: Sequence[float],
    window: str | tuple[float, float] = "lung",
    pad: int = 2,
    label_width: int = 110,
) -> Path:
    """The paper's figure: rows = directions, columns = shifts, centre column = G(z).

    ``stacks_hu`` is (K, S, H, W) for one latent. ``shifts`` label the columns;
    the layout (tile origins, labels, shifts, window) goes to ``<path>.json``.
    """
    from PIL import Image, ImageDraw

    arr = np.asarray(stacks_hu, dtype=np.float32)
    if arr.ndim != 4:
        raise ValueError(f"need (K directions, S shifts, H, W), got shape {arr.shape}")
    k, s, h, w = arr.shape
    if len(labels) != k or len(shifts) != s:
        raise ValueError(f"{len(labels)} labels / {len(shifts)} shifts for a {k}x{s} grid")
    header = 18
    origins = grid_layout(k, s, (h, w), label_width, pad, header)
    height = header + pad + k * (h + pad)
    width = label_width + pad + s * (w + pad)
    canvas = np.full((height, width), 255, dtype=np.uint8)
    tiles = to_uint8(arr, window)
    for r in range(k):
        for c in range(s):
            y, x = origins[r][c]
            canvas[y : y + h, x : x + w] = tiles[r, c]
    img = Image.fromarray(canvas, mode="L")
    draw = ImageDraw.Draw(img)
    for c, alpha in enumerate(shifts):
        y, x = origins[0][c]
        draw.text((x + 2, 3), f"{float(alpha):+.2g}" if alpha else "0 (G(z))", fill=0)
    for r, label in enumerate(labels):
        y, _ = origins[r][0]
        draw.text((4, y + h // 2 - 6), str(label)[:18], fill=0)
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    layout = {
        "rows": list(map(str, labels)),
        "shifts": [float(a) for a in shifts],
        "tile": [h, w],
        "origins": origins,
        "window": list(window_limits(window)) if isinstance(window, str) else [float(v) for v in window],
    }
    atomic_write_text(Path(str(path) + ".json"), json.dumps(layout, indent=2))
    return path


def read_png_grid(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The tiles (K, S, H, W) uint8 of a grid written by :func:`write_png_grid`, and its layout."""
    from PIL import Image

    layout = json.loads(Path(str(path) + ".json").read_text())
    img = np.asarray(Image.open(path).convert("L"))
    h, w = layout["tile"]
    tiles = np.stack([np.stack([img[y : y + h, x : x + w] for y, x in row]) for row in layout["origins"]])
    return tiles, layout


# -- DICOM -----------------------------------------------------------------------------------


def write_dicom_series(
    folder: str | Path,
    volume_hu: np.ndarray,
    pixel_mm: tuple[float, float] = (DEFAULT_PIXEL_MM, DEFAULT_PIXEL_MM),
    slice_mm: float = 1.0,
    description: str = "latent direction sweep",
    **kwargs: Any,
) -> list[Path]:
    """A derived/secondary CT series from a (Z, H, W) HU volume (Z = shift frames).

    ``folder`` must be new or empty (:class:`ExportTargetError` otherwise); the
    series appears there complete or not at all. Delegates to the project's
    dciodvfy-clean CT writer with ``derived=True``: fresh Study/Series/SOP UIDs,
    ImageType DERIVED\\SECONDARY, no patient identifiers, HU stored as integers
    through RescaleSlope/Intercept. ``description`` must not come from a source
    image (its name or description can identify the patient).
    """
    folder = Path(folder)
    with new_folder(folder) as tmp:
        files = _write_series(tmp, volume_hu, pixel_mm, slice_mm, description, **kwargs)
    return [folder / f.name for f in files]


def write_dicom_stack(
    folder: str | Path,
    stack_hu: np.ndarray,
    pixel_mm: tuple[float, float] = (DEFAULT_PIXEL_MM, DEFAULT_PIXEL_MM),
    slice_mm: float = 1.0,
    description: str = EXPORT_DESCRIPTION,
) -> list[Path]:
    """One derived series per latent of a (latent, Z, H, W) stack, in ``folder/latent_XXX``;
    all of them appear at once (one rename), into a new or empty ``folder``."""
    arr = np.asarray(stack_hu, dtype=np.float32)
    if arr.ndim != 4:
        raise ValueError(f"need a (latent, Z, H, W) stack, got shape {arr.shape}")
    folder = Path(folder)
    files: list[Path] = []
    with new_folder(folder) as tmp:
        for i, vol in enumerate(arr):
            sub = f"latent_{i:03d}"
            (tmp / sub).mkdir()
            written = _write_series(tmp / sub, vol, pixel_mm, slice_mm, f"{description} latent {i}")
            files += [folder / sub / f.name for f in written]
    return files


def _write_series(
    folder: Path,
    volume_hu: np.ndarray,
    pixel_mm: tuple[float, float],
    slice_mm: float,
    description: str,
    **kwargs: Any,
) -> list[Path]:
    from ..dicom.write import SeriesInfo, write_ct_series

    vol = np.asarray(volume_hu, dtype=np.float32)
    if vol.ndim == 2:
        vol = vol[None]
    if vol.ndim != 3:
        raise ValueError(f"a DICOM series needs a (Z, H, W) volume, got shape {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise ValueError("the volume contains NaN or infinite values")
    if slice_mm <= 0:
        raise ValueError(f"slice spacing must be positive, got {slice_mm}")
    info = SeriesInfo(
        study_description=EXPORT_DESCRIPTION,
        series_description=str(description)[:64],
        body_part="CHEST",
    )
    return write_ct_series(
        folder,
        vol,
        pixel_spacing=(float(pixel_mm[0]), float(pixel_mm[1])),
        z_positions=[i * float(slice_mm) for i in range(vol.shape[0])],
        info=info,
        seed=None,  # fresh Study/Series/SOP UIDs for every export
        derived=True,
        derivation_description=str(kwargs.pop("derivation", "generated by napari-latentdirs from a latent shift"))[:1024],
        **kwargs,
    )


# -- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_keep_suffix(path: Path) -> Iterator[Path]:
    """Like ``atomic_path`` but the temporary file keeps the suffix (ffmpeg picks the muxer by it).

    The name is unpredictable and created exclusively (mkstemp), so a symlink planted
    beside the target cannot redirect the encoder's writes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_frames(frames_hu: np.ndarray) -> np.ndarray:
    arr = np.asarray(frames_hu, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"an animation needs (frames, H, W), got shape {arr.shape}")
    return arr


def _safe(name: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))
    return keep.strip("_") or "direction"
