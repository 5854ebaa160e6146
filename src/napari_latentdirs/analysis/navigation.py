"""Shifted stacks ``G(z + alpha * a)`` for the latent navigator, export and review.

A stack has axes (latent, shift, y, x). The navigator must stay responsive
with the paper-size DCGAN on a CPU, where one frame costs about as much as a
third of a 41-frame batch, so stacks are *streamed*:

1. the frame being looked at is generated alone and delivered first;
2. the rest follows in batched chunks (same latent first, so playback along
   the shift axis can start, then the other latents);
3. a newer request makes the older one stale: the stream checks between
   chunks and stops, so the newest request always wins.

The frame at shift 0 is ``G(z)`` exactly: the shift grid contains an exact
0.0 whenever the range spans zero, and ``z + 0.0 * a == z`` bit for bit.

No Qt here: the napari navigator feeds :class:`LatestRequest` from the GUI and
runs :func:`serve` in a worker thread; tests and the CLI call
:meth:`StackStreamer.full_stack`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.preprocess import Preprocessing
from ..models.interface import LatentGenerator

# Window presets (width, level) in HU, as radiologists name them.
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "bone": (2000.0, 500.0),
}


def window_limits(name: str) -> tuple[float, float]:
    """(low, high) HU display limits of a named window preset."""
    try:
        width, level = WINDOWS[name]
    except KeyError:
        raise ValueError(f"unknown window {name!r}; choose one of {sorted(WINDOWS)}") from None
    return level - width / 2.0, level + width / 2.0


#: field of view a generated slice stands for: the training slices are whole axial CT
#: slices (a typical thoracic FOV) resized to the model's size, not resampled to mm
DEFAULT_FOV_MM = 350.0


def model_pixel_mm(size: int, meta: dict | None = None) -> float:
    """Pixel spacing in mm of a ``size``-pixel generated slice: the generator's own record
    (``pixel_mm`` or ``fov_mm`` in its metadata) when it has one, else a 350 mm field."""
    meta = meta if isinstance(meta, dict) else {}
    for key, to_mm in (("pixel_mm", lambda v: float(v)), ("fov_mm", lambda v: float(v) / max(int(size), 1))):
        v = meta.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and 0 < float(v) < 1e4:
            return to_mm(v)
    return DEFAULT_FOV_MM / max(int(size), 1)


def shift_grid(lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` evenly spaced shifts from ``lo`` to ``hi``; 0 is snapped in exactly.

    When the range spans zero, the grid point nearest to zero is replaced by
    an exact 0.0 so that one frame of every stack is the unshifted ``G(z)``.
    """
    if n < 1:
        raise ValueError(f"need at least one frame, got {n}")
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f"invalid shift range [{lo}, {hi}]")
    grid = np.linspace(lo, hi, n, dtype=np.float64)
    if lo <= 0.0 <= hi:
        grid[int(np.argmin(np.abs(grid)))] = 0.0
    return grid.astype(np.float32)


def model_name(spec: str | Path) -> str:
    """How the navigator and exports name a generator: a factory spec as written, a run folder by its
    name, a run's ``generator.safetensors`` by its run, any other file by its stem."""
    from ..models.custom import is_factory_spec

    text = str(spec)
    if is_factory_spec(text):
        return text
    p = Path(text)
    if p.is_dir():
        return p.name
    return p.parent.name if p.name == "generator.safetensors" else p.stem


def default_shift(ds: object | None) -> float:
    """Half-width of the shift range: from the direction set's training meta when recorded."""
    meta = getattr(ds, "meta", None)
    if isinstance(meta, dict):
        cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        for v in (meta.get("alpha_max"), cfg.get("alpha_max"), meta.get("shift_max")):
            if isinstance(v, int | float) and v > 0:
                return float(v)
    return 6.0


def random_latents(n: int, latent_dim: int, seed: int) -> np.ndarray:
    """``n`` standard-normal latents from their own seeded generator."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, latent_dim, generator=g).numpy().astype(np.float32)


@dataclass(frozen=True)
class StackRequest:
    z: np.ndarray  # (N, d) latents
    direction: np.ndarray  # (d,) shift direction (a column of A)
    shifts: np.ndarray  # (S,) shift amounts alpha
    visible: tuple[int, int] = (0, 0)  # (latent, shift) index shown first
    ticket: int = 0

    def __post_init__(self) -> None:
        z = np.atleast_2d(np.asarray(self.z, dtype=np.float32))
        a = np.asarray(self.direction, dtype=np.float32).reshape(-1)
        s = np.asarray(self.shifts, dtype=np.float32).reshape(-1)
        if z.shape[1] != a.shape[0]:
            raise ValueError(f"latents have dimension {z.shape[1]} but the direction has {a.shape[0]}")
        if s.size == 0 or z.shape[0] == 0:
            raise ValueError("a stack needs at least one latent and one shift")
        vi = (min(max(int(self.visible[0]), 0), z.shape[0] - 1), min(max(int(self.visible[1]), 0), s.size - 1))
        object.__setattr__(self, "z", z)
        object.__setattr__(self, "direction", a)
        object.__setattr__(self, "shifts", s)
        object.__setattr__(self, "visible", vi)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.z.shape[0]), int(self.shifts.size)


@dataclass(frozen=True)
class StackChunk:
    ticket: int
    latent_idx: np.ndarray  # (M,) int
    shift_idx: np.ndarray  # (M,) int
    frames: np.ndarray  # (M, H, W) float32, HU (or model space if the streamer says so)
    done: bool = False  # the last chunk of its request


def frame_order(n_latents: int, n_shifts: int, visible: tuple[int, int]) -> list[tuple[int, int]]:
    """Visible frame first, then its latent outward from it, then other latents."""
    vi, vs = visible
    by_distance = sorted(range(n_shifts), key=lambda s: (abs(s - vs), s))
    order = [(vi, s) for s in by_distance]
    others = sorted((i for i in range(n_latents) if i != vi), key=lambda i: (abs(i - vi), i))
    for i in others:
        order.extend((i, s) for s in by_distance)
    return order


@dataclass
class StackStreamer:
    """Generates (parts of) shifted stacks with a fixed, frozen generator."""

    generator: LatentGenerator
    device: torch.device | str | None = None
    chunk_size: int = 20
    output: str = "hu"  # "hu" (exact inverse of the preprocessing) or "model"
    #: the HU window frames are decoded with; None: the generator's recorded one
    #: (``models.registry.preprocessing_of``: the default, with a note in the log, when it has none)
    preprocessing: Preprocessing | None = None

    def __post_init__(self) -> None:
        if self.output not in ("hu", "model"):
            raise ValueError(f"output must be 'hu' or 'model', not {self.output!r}")
        if self.preprocessing is None:
            from ..models.registry import preprocessing_of

            self.preprocessing = preprocessing_of(self.generator)
        if self.device is None:
            try:
                self.device = next(self.generator.parameters()).device  # type: ignore[attr-defined]
            except (AttributeError, StopIteration, TypeError):
                self.device = torch.device("cpu")
        self.device = torch.device(self.device)

    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)

    def forward(self, latents: np.ndarray) -> np.ndarray:
        """(B, d) latents -> (B, H, W) frames in the configured output space."""
        z = torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            x = self.generator.generate(z)
        x = x.detach().to("cpu", torch.float32).numpy()[:, 0]
        return self.preprocessing.model_to_hu(x) if self.output == "hu" else x

    @staticmethod
    def shifted_latents(req: StackRequest, pairs: list[tuple[int, int]]) -> np.ndarray:
        li = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
        si = np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs))
        # z + alpha * a in float32; alpha == 0.0 leaves z bit-identical.
        return req.z[li] + req.shifts[si, None] * req.direction[None, :]

    def stream(self, req: StackRequest, is_current: Callable[[], bool] = lambda: True) -> Iterator[StackChunk]:
        """Yield the visible frame alone, then the rest in chunks, while current."""
        order = frame_order(*req.shape, req.visible)
        pieces = [order[:1]] + [order[i : i + self.chunk_size] for i in range(1, len(order), max(1, self.chunk_size))]
        for n, piece in enumerate(pieces):
            if not is_current():
                return
            frames = self.forward(self.shifted_latents(req, piece))
            yield StackChunk(
                ticket=req.ticket,
                latent_idx=np.array([p[0] for p in piece], dtype=np.int64),
                shift_idx=np.array([p[1] for p in piece], dtype=np.int64),
                frames=frames,
                done=n == len(pieces) - 1,
            )

    def full_stack(self, req: StackRequest) -> np.ndarray:
        """The whole (N, S, H, W) stack, blocking (CLI, export, tests)."""
        out: np.ndarray | None = None
        for chunk in self.stream(req):
            if out is None:
                out = np.empty((*req.shape, *chunk.frames.shape[-2:]), dtype=np.float32)
            out[chunk.latent_idx, chunk.shift_idx] = chunk.frames
        assert out is not None
        return out


def stack(
    generator: LatentGenerator,
    z: np.ndarray,
    direction: np.ndarray,
    shifts: np.ndarray,
    output: str = "hu",
    preprocessing: Preprocessing | None = None,
) -> np.ndarray:
    """Convenience: (N, S, H, W) stack of ``G(z_i + shifts_j * direction)``, in HU decoded with
    ``preprocessing`` (default: the generator's recorded one) or in model space."""
    streamer = StackStreamer(generator, output=output, preprocessing=preprocessing)
    return streamer.full_stack(StackRequest(z, direction, shifts))


class LatestRequest:
    """A one-slot mailbox in which the newest request replaces any waiting one.

    ``submit`` is called from the GUI thread, ``take`` from the worker thread;
    ``is_current(ticket)`` lets a running stream notice it has gone stale. A request
    may carry a ``context`` (the streamer of the model it was made for), so that a
    model switch is just a newer request: the worker never runs an old request with
    a new model or the other way round.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: StackRequest | None = None
        self._context: object = None
        self._ticket = 0

    @property
    def ticket(self) -> int:
        return self._ticket

    def submit(self, req: StackRequest, context: object = None) -> StackRequest:
        with self._cond:
            self._ticket += 1
            req = replace(req, ticket=self._ticket)
            self._pending, self._context = req, context
            self._cond.notify_all()
        return req

    def take(self, timeout: float | None = None) -> StackRequest | None:
        return self.take_with_context(timeout)[0]

    def take_with_context(self, timeout: float | None = None) -> tuple[StackRequest | None, object]:
        with self._cond:
            if self._pending is None:
                self._cond.wait(timeout)
            req, ctx = self._pending, self._context
            self._pending = self._context = None
            return req, ctx

    def is_current(self, ticket: int) -> bool:
        return ticket == self._ticket

    def cancel(self) -> None:
        """Make every running or waiting request stale."""
        with self._cond:
            self._ticket += 1
            self._pending = self._context = None
            self._cond.notify_all()


def serve(
    streamer: StackStreamer | None, mailbox: LatestRequest, stop: threading.Event, poll_s: float = 0.05
) -> Iterator[StackChunk]:
    """Worker loop: stream the newest request's chunks until ``stop`` is set. A request
    submitted with a streamer as its context is generated with that one."""
    while not stop.is_set():
        req, ctx = mailbox.take_with_context(timeout=poll_s)
        if req is None:
            continue
        use = ctx if isinstance(ctx, StackStreamer) else streamer
        if use is None:
            continue
        ticket = req.ticket
        yield from use.stream(req, lambda t=ticket: mailbox.is_current(t) and not stop.is_set())


@dataclass
class DirectionInfo:
    """What the navigator lists for a direction set: a label, selectivity and run per column."""

    labels: list[str]
    selectivity: list[float | None]
    run: str = ""

    def item_text(self, k: int) -> str:
        """``"#93 z_level (selectivity 0.82)"``: the report's way of naming a direction
        (``labelling.direction_caption``: no selectivity beside "no effect", and "sign varies" for an
        entangled direction that is selective enough)."""
        from .labelling import direction_caption

        label = self.labels[k] if k < len(self.labels) else ""
        sel = self.selectivity[k] if k < len(self.selectivity) else None
        return direction_caption(k, label, sel)


def direction_info(ds: object, path: str | Path | None = None) -> DirectionInfo:
    """Labels, selectivity and run name of a direction set: from the set itself (``labels``,
    ``meta["selectivity"]``, ``meta["run"]``), else from the automatic labels of the
    ``latentdirs run`` folder it belongs to (``<run>/analysis/labels/<set>.json``)."""
    K = int(ds.K)  # type: ignore[attr-defined]
    meta = ds.meta if isinstance(getattr(ds, "meta", None), dict) else {}  # type: ignore[attr-defined]
    labels = list(ds.labels) if ds.labels else [""] * K  # type: ignore[attr-defined]
    sel_raw = meta.get("selectivity")
    sel: list[float | None] = (
        [float(v) if isinstance(v, int | float) else None for v in sel_raw] if isinstance(sel_raw, list) and len(sel_raw) == K
        else [None] * K
    )
    run = str(meta.get("run", "")) if isinstance(meta.get("run", ""), str) else ""
    if path is not None and (not any(labels) or all(v is None for v in sel) or not run):
        found = find_run_labels(Path(path))
        if found is not None:
            run_name, res_labels, res_sel = found
            if len(res_labels) == K:
                labels = labels if any(labels) else res_labels
                sel = sel if any(v is not None for v in sel) else res_sel
            run = run or run_name
    return DirectionInfo(labels, sel, run)


def find_run_labels(path: Path, max_up: int = 3) -> tuple[str, list[str], list[float | None]] | None:
    """``(run name, labels, selectivity)`` when ``path`` is a direction set of a
    ``latentdirs run`` folder (found through its ``manifest.json``), else None."""
    import json

    path = Path(path).resolve()
    for root in list(path.parents)[:max_up]:
        manifest = root / "manifest.json"
        if not manifest.is_file():
            continue
        try:
            sets = json.loads(manifest.read_text()).get("sets", {})
        except (OSError, ValueError, AttributeError):
            return None
        tail = path.relative_to(root).parts
        for name, info in sets.items() if isinstance(sets, dict) else ():
            recorded = Path(str(info.get("path", ""))) if isinstance(info, dict) else Path()
            # compare the part inside the run folder: a copied or moved run still matches
            if recorded.parts[-len(tail):] != tail:
                continue
            run_name = f"{root.name} / {name}"
            lfile = root / "analysis" / "labels" / f"{name}.json"
            try:
                doc = json.loads(lfile.read_text())
                labels = [str(v) for v in doc["labels"]]
                sel = [float(v) for v in doc["selectivity"]]
            except (OSError, ValueError, KeyError, TypeError):
                return run_name, [], []
            return run_name, labels, list(sel)
    return None
