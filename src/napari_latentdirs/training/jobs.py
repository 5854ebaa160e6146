"""Engines as self-contained jobs: everything from settings to events in one call.

The docks hand these to :class:`napari_latentdirs.engine_process.EngineJob`, so
data loading, model set-up and training all happen in the job's own process
(or thread, or synchronously in tests) and never on the GUI thread. Every
argument is plain data (configs, paths, numbers) so a job can be pickled.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..events import Event, Finished, Message, Started, Step

#: training data sources, in the order the training dock lists them
DATA_SOURCES = ("synthetic phantom", "prepared cache", "DICOM folder")


def open_training_data(source: str, path: str, n_phantom: int, seed: int, run_dir: Path) -> Iterator[Event]:
    """Generator: yields Messages while preparing, returns the training Dataset."""
    from . import data as tdata

    if source == "synthetic phantom":
        yield Message(f"sampling {n_phantom} phantom slices")
        return tdata.phantom_slices(n_phantom, seed)
    if source == "prepared cache":
        return tdata.open_cache(path)[0]
    if source == "DICOM folder":
        from ..data.cache import prepare

        cache_dir = Path(run_dir) / "cache"
        yield Message(f"preparing a slice cache from {path} (first run only)")
        prepare(path, cache_dir)
        return tdata.open_cache(cache_dir)[0]
    raise ValueError(f"unknown data source {source!r}; expected one of {DATA_SOURCES}")


def generator_job(
    stop: threading.Event, *, kind: str, cfg: Any, source: str, path: str, n_phantom: int, seed: int, run_dir: str | Path
) -> Iterator[Event]:
    """Train a DCGAN (``kind="gan"``) or ResNet-VAE (``"vae"``) on the chosen data."""
    data = yield from open_training_data(source, path, n_phantom, seed, Path(run_dir))
    if kind == "gan":
        from .gan import train_gan as engine
    elif kind == "vae":
        from .vae import train_vae as engine
    else:
        raise ValueError(f"unknown generator kind {kind!r}; expected 'gan' or 'vae'")
    return (yield from engine(cfg, data, Path(run_dir), stop))


def directions_job(stop: threading.Event, *, cfg: Any, spec: str, run_dir: str | Path) -> Iterator[Event]:
    """Voynov & Babenko direction discovery for the generator at ``spec`` (a file or demo name)."""
    from .directions import resolve_generator, train_directions

    gen, fp, _kind = resolve_generator(spec)  # a paper-size generator takes a moment to load
    return (yield from train_directions(replace(cfg, generator_fingerprint=fp), gen, Path(run_dir), stop))


def baseline_job(stop: threading.Event, *, method: str, spec: str, K: int, seed: int, run_dir: str | Path) -> Iterator[Event]:  # noqa: N803, ARG001 - one closed-form step: nothing to stop
    """A closed-form direction set (PCA/GANSpace, SeFa, random) saved like a learned one."""
    from ..analysis.baselines import compute_baseline
    from .directions import DIRECTIONS_FILE, resolve_generator

    yield Started(total_steps=1, start_step=0, run_dir=Path(run_dir))
    gen, fp, _kind = resolve_generator(spec)
    ds = compute_baseline(method, gen, K, seed=seed, generator=fp)
    ds.meta.setdefault("generator_path", str(spec))
    out = ds.save(Path(run_dir) / DIRECTIONS_FILE)
    yield Step(step=1, total_steps=1, losses={})
    yield Finished(step=1, output=out, metrics=dict(ds.metrics))
