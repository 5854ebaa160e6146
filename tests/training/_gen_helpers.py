"""Shared helpers for the generator-training tests (tiny widths, real 128x128 geometry)."""

from __future__ import annotations

import threading

import torch

from napari_latentdirs.events import Step
from napari_latentdirs.training.config import config_from_dict
from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses


def ellipse_data(n: int = 48, seed: int = 0) -> TensorSlices:
    return TensorSlices(synthetic_ellipses(n, seed), name=f"ellipses{n}-{seed}")


def phantom_or_ellipses(n: int, seed: int = 0) -> TensorSlices:
    """Phantom slices when the phantom package provides them, else synthetic ellipses."""
    try:
        from napari_latentdirs.training.data import phantom_slices

        return phantom_slices(n, seed)
    except ImportError:
        return ellipse_data(n, seed)


def tiny_cfg(kind: str, **kw):
    base = {"preset": "tiny", "batch_size": 4, "epochs": 2, "fid": False, "sample_every": 0, "log_every": 1,
            "n_samples": 4, "fid_samples": 8}
    return config_from_dict(kind, {**base, **kw})


def run_all(engine, cfg, data, run_dir, stop_after: int | None = None, **kw):
    """Drain an engine; optionally request a stop once step ``stop_after`` is reported."""
    stop = threading.Event()
    events = []
    for ev in engine(cfg, data, run_dir, stop, **kw):
        events.append(ev)
        if stop_after is not None and isinstance(ev, Step) and ev.step == stop_after:
            stop.set()
    return events


def state_tensors(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))
