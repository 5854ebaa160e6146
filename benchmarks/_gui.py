"""Shared helpers for the GUI benchmarks: a display, the machine line, event-loop waits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import _machine


def ensure_display() -> None:
    """Re-run this script under Xvfb when there is no display (napari needs OpenGL)."""
    if os.environ.get("DISPLAY") or os.environ.get("_LATENTDIRS_XVFB"):
        return
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        sys.exit("no DISPLAY and no xvfb-run: run this benchmark on a desktop or install xvfb")
    env = dict(os.environ, _LATENTDIRS_XVFB="1")
    raise SystemExit(subprocess.call([xvfb, "-a", "-s", "-screen 0 1280x1024x24", sys.executable, *sys.argv], env=env))


def machine() -> str:
    import torch

    return f"{_machine.machine()}; torch {torch.__version__} with {torch.get_num_threads()} threads"


def wait_until(app, predicate, timeout_s: float = 60.0) -> None:
    t0 = time.perf_counter()
    while not predicate():
        app.processEvents()
        time.sleep(0.0005)
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError("condition not reached")
