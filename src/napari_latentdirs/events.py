"""Typed progress events yielded by every training engine.

An engine is a plain generator: ``for ev in engine(...)``. The CLI renders
events with a progress bar, napari forwards them to widgets through a
thread worker, and tests just iterate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class Started(Event):
    total_steps: int
    start_step: int = 0
    run_dir: Path | None = None


@dataclass(frozen=True)
class Step(Event):
    step: int
    total_steps: int
    losses: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EpochEnd(Event):
    epoch: int
    step: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Samples(Event):
    step: int
    images: np.ndarray  # (N, H, W) float32 in model range [-1, 1]
    preprocessing: dict | None = None  # the HU window of the images (Preprocessing.to_dict); None: the default


@dataclass(frozen=True)
class CheckpointSaved(Event):
    step: int
    path: Path


@dataclass(frozen=True)
class Message(Event):
    text: str


@dataclass(frozen=True)
class Stopped(Event):
    step: int
    checkpoint: Path | None = None


@dataclass(frozen=True)
class Finished(Event):
    step: int
    output: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
