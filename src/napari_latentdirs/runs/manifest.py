"""The run folder's ``manifest.json``: what each stage produced, and how long it took."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_text
from .folder import RUN_FORMAT


def _cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Timer:
    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.time(), _cpu_now()

    def elapsed(self) -> tuple[float, float]:
        return time.time() - self.wall0, _cpu_now() - self.cpu0


class Manifest:
    def __init__(self, root: Path) -> None:
        self.path = root / "manifest.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data["format"] = RUN_FORMAT
        self.data.setdefault("generators", {})
        self.data.setdefault("sets", {})
        self.data.setdefault("timings", {})

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, default=str))

    def record(self, name: str, timer: Timer) -> None:
        """Wall-clock and CPU seconds (this process and its finished children) of one step."""
        wall, cpu = timer.elapsed()
        self.data["timings"][name] = wall
        self.data.setdefault("cpu_seconds", {})[name] = cpu
