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

from .events import Event, Finished, Message, Started, Step

#: training data sources, in the order the training dock lists them
DATA_SOURCES = ("synthetic phantom", "prepared cache", "DICOM folder")
#: where a DICOM folder's slice cache goes inside the run folder
RUN_CACHE = "cache"


def check_training_data(source: str, path: str | Path | None) -> None:
    """Raise ValueError with a message a user can act on when ``path`` cannot serve as
    ``source``; cheap (a few headers at most), so docks call it before they start."""
    if source == "synthetic phantom":
        return
    if source not in DATA_SOURCES:
        raise ValueError(f"unknown data source {source!r}; expected one of {DATA_SOURCES}")
    text = str(path or "")
    if not text or text == ".":
        raise ValueError(f"choose the {source} to train on")
    p = Path(text)
    if not p.exists():
        raise ValueError(f"{source}: {p} does not exist")
    if not p.is_dir():
        raise ValueError(f"{source}: {p} is not a folder")
    if source == "prepared cache":
        from .data.cache import CacheIncompleteError, SliceCache

        try:
            cache = SliceCache(p)
        except CacheIncompleteError as exc:
            hint = " (it holds DICOM: choose 'DICOM folder')" if _looks_like_dicom(p) else ""
            raise ValueError(f"{exc}{hint}") from None
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{p}: not a readable slice cache ({type(exc).__name__}: {exc})") from None
        n_train = int(cache.index.get("counts", {}).get("train", len(cache)))
        if len(cache) == 0 or n_train == 0:
            raise ValueError(f"{p}: the slice cache holds no training slices")
        return
    # DICOM folder
    if (p / "index.json").is_file():
        raise ValueError(f"{p} is a prepared slice cache: choose 'prepared cache'")
    if not _looks_like_dicom(p):
        raise ValueError(f"DICOM folder: no DICOM files found under {p}")


def _looks_like_dicom(p: Path) -> bool:
    from .dicom.discover import contains_dicom

    return contains_dicom(p, max_files=256, max_depth=6)


def prepare_dicom_cache(folder: str | Path, run_dir: str | Path, workers: int = 1) -> Iterator[Event]:
    """Generator: prepare ``folder``'s CT series into ``<run_dir>/cache`` (series finished by an
    earlier start are reused, so Resume is quick); yields Messages, returns the cache path."""
    from .data.prepare import prepare

    cache_dir = Path(run_dir) / RUN_CACHE
    yield Message(f"preparing a slice cache from {folder} in {cache_dir} (series already done are reused)")
    res = prepare(folder, cache_dir, workers=workers, progress=False)
    if res.n_slices == 0:
        reasons = "; ".join(f"{s['what']}: {s['reason']}" for s in res.skipped[:3])
        raise ValueError(f"{folder}: no usable CT series to train on" + (f" ({reasons})" if reasons else ""))
    yield Message(f"slice cache ready: {res.n_slices} slices from {res.n_series} series of {res.n_patients} patients"
                  + (f", {len(res.skipped)} skipped" if res.skipped else ""))
    return cache_dir


def open_training_data(source: str, path: str, n_phantom: int, seed: int, run_dir: Path) -> Iterator[Event]:
    """Generator: yields Messages while preparing, returns the training Dataset."""
    from .training import data as tdata

    check_training_data(source, path)
    if source == "synthetic phantom":
        yield Message(f"sampling {n_phantom} phantom slices")
        return tdata.phantom_slices(n_phantom, seed)
    if source == "prepared cache":
        return tdata.open_cache(path)[0]
    cache_dir = yield from prepare_dicom_cache(path, run_dir)
    return tdata.open_cache(cache_dir)[0]


def generator_job(
    stop: threading.Event, *, kind: str, cfg: Any, source: str, path: str, n_phantom: int, seed: int, run_dir: str | Path
) -> Iterator[Event]:
    """Train a DCGAN (``kind="gan"``) or ResNet-VAE (``"vae"``) on the chosen data."""
    data = yield from open_training_data(source, path, n_phantom, seed, Path(run_dir))
    if kind == "gan":
        from .training.gan import train_gan as engine
    elif kind == "vae":
        from .training.vae import train_vae as engine
    else:
        raise ValueError(f"unknown generator kind {kind!r}; expected 'gan' or 'vae'")
    events = engine(cfg, data, Path(run_dir), stop)
    for ev in events:
        if isinstance(ev, Finished) and ev.output is not None:
            reference = {DATA_SOURCES[0]: "phantom", DATA_SOURCES[1]: path}.get(source, str(Path(run_dir) / RUN_CACHE))
            note, ev = with_quality(ev, reference, seed)
            if note is not None:
                yield note
        yield ev


def with_quality(fin: Finished, reference: str | None, seed: int = 0) -> tuple[Message | None, Finished]:
    """The finished run's quality against its data: a Message with the figures (None without a
    reference) and the Finished event with the ratios added to its metrics (what the training dock
    shows). The run itself is already saved."""
    from .analysis.quality import quality_after_training, quality_metrics

    try:
        rep = quality_after_training(fin.output, reference, seed=seed)
    except (ValueError, OSError, RuntimeError) as exc:
        return Message(f"generator quality not measured: {exc}"), fin
    if rep is None:
        return None, fin
    return Message("\n".join(rep.lines())), replace(fin, metrics={**fin.metrics, **quality_metrics(rep)})


def directions_job(stop: threading.Event, *, cfg: Any, spec: str, run_dir: str | Path,
                   weights: str | None = None) -> Iterator[Event]:
    """Voynov & Babenko direction discovery for the generator at ``spec`` (a file, a demo,
    or ``module:factory`` with optional ``weights``)."""
    from .directions.voynov import resolve_generator, train_directions

    gen, fp, _kind = resolve_generator(spec, weights=weights)  # a paper-size generator takes a moment to load
    return (yield from train_directions(replace(cfg, generator_fingerprint=fp), gen, Path(run_dir), stop))


def baseline_job(stop: threading.Event, *, method: str, spec: str, K: int, seed: int, run_dir: str | Path,  # noqa: ARG001 - one closed-form step: nothing to stop
                 weights: str | None = None) -> Iterator[Event]:
    """A closed-form method of the registry (``directions.METHODS``: PCA/GANSpace, SeFa, random, ...)
    saved like a learned direction set."""
    from .directions import method_spec
    from .directions.baselines import compute_baseline
    from .directions.voynov import DIRECTIONS_FILE, resolve_generator

    if method_spec(method).learned:
        raise ValueError(f"{method} is learned: run it with directions_job")
    yield Started(total_steps=1, start_step=0, run_dir=Path(run_dir))
    gen, fp, _kind = resolve_generator(spec, weights=weights)
    ds = compute_baseline(method, gen, K, seed=seed, generator=fp)
    ds.meta.setdefault("generator_path", str(spec))
    if weights:
        ds.meta.setdefault("generator_weights", str(weights))
    out = ds.save(Path(run_dir) / DIRECTIONS_FILE)
    yield Step(step=1, total_steps=1, losses={})
    yield Finished(step=1, output=out, metrics=dict(ds.metrics))
