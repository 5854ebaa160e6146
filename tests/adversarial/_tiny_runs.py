"""Helpers for the adversarial engine tests: tiny real configs and data (128x128 geometry)."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import torch
from torch.utils.data import Dataset

from napari_latentdirs.events import Step
from napari_latentdirs.training.config import config_from_dict
from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
PY = sys.executable


def ellipses(n: int = 16, seed: int = 0) -> TensorSlices:
    return TensorSlices(synthetic_ellipses(n, seed), name=f"ellipses{n}-{seed}")


def tiny(kind: str = "gan", **kw):
    base = {"preset": "tiny", "batch_size": 4, "epochs": 1, "fid": False, "sample_every": 0, "log_every": 1,
            "n_samples": 4, "fid_samples": 8, "device": "cpu"}
    return config_from_dict(kind, {**base, **kw})


def drain(engine, cfg, data, run_dir, stop_after: int | None = None, events: list | None = None, **kw) -> list:
    """Run an engine to its end (or a stop after step ``stop_after``); events go to ``events``."""
    stop = threading.Event()
    events = [] if events is None else events
    for ev in engine(cfg, data, run_dir, stop, **kw):
        events.append(ev)
        if stop_after is not None and isinstance(ev, Step) and ev.step == stop_after:
            stop.set()
    return events


class SlicesWithNaN(Dataset):
    """A dataset that passes no opening check (like a slice cache) with NaN pixels in some items."""

    def __init__(self, base: TensorSlices, bad: tuple[int, ...]) -> None:
        self.base, self.bad = base, set(bad)
        self.fingerprint = f"nan-injected:{base.fingerprint}"

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.base[i].clone()
        if i in self.bad:
            x[0, 60, 60] = float("nan")
        return x


def save_npy(path, x: np.ndarray):
    np.save(path, x)
    return path
