"""napari sample data: "Synthetic thorax CT" (a phantom volume in HU with spacing).

Rendering all 96 slices took 5-8 s on a small CPU, on napari's GUI thread (a sample
command runs there). With a napari window open, the command therefore returns at
once a volume of air that a background thread fills slice by slice, the slice napari
shows first (the middle one) first; a timer on the GUI thread redraws the layer as
slices land and shows a napari progress bar. Removing the layer stops the thread.
Without a window (scripts, tests) the volume is rendered before returning.
Every slice has a noise seed of its own, so the volume is the same either way.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..phantom.factors import Acquisition, SubjectFactors

SAMPLE_SUBJECT = SubjectFactors(breast_mm=35.0, contrast=True, fat_mm=16.0)
SAMPLE_NAME = "Synthetic thorax CT"
AIR_HU = -1000.0
REDRAW_MS = 150


def _geometry(matrix: int, n_slices: int) -> tuple[Acquisition, Any]:
    from ..phantom.volume import scan_geometry

    acq = Acquisition(fov_mm=380.0, slice_thickness_mm=2.5, matrix=matrix)
    return acq, scan_geometry(SAMPLE_SUBJECT, acq, n_slices)


def render_order(n: int) -> list[int]:
    """The middle slice (napari's first view) first, then outwards."""
    mid = n // 2
    out = [mid]
    for d in range(1, n):
        out += [i for i in (mid + d, mid - d) if 0 <= i < n]
    return out


class SampleRender:
    """Renders the sample's slices into ``hu`` (air until rendered), in :func:`render_order`."""

    def __init__(self, matrix: int = 256, n_slices: int = 96, seed: int = 0) -> None:
        self.acq, self.geom = _geometry(matrix, n_slices)
        self.seed = seed
        self.hu = np.full((n_slices, matrix, matrix), AIR_HU, dtype=np.float32)
        self.done = 0
        self.stop = threading.Event()

    def render(self, i: int) -> np.ndarray:
        from ..phantom.volume import render_volume

        ts = self.geom.t[i : i + 1]
        return render_volume(SAMPLE_SUBJECT, self.acq, ts, np.random.default_rng([self.seed, i]), pad_hu=AIR_HU)[0]

    def run(self) -> None:
        for i in render_order(len(self.hu)):
            if self.stop.is_set():
                return
            self.hu[i] = self.render(i)
            self.done += 1

    @property
    def spacing(self) -> tuple[float, float, float]:
        ps = self.acq.pixel_spacing_mm
        return (float(self.geom.spacing_mm), ps, ps)

    def meta(self) -> dict:
        return {"subject": SAMPLE_SUBJECT.to_dict(), "acquisition": self.acq.to_dict(), "t": self.geom.t.tolist(),
                "z_mm": self.geom.z_mm.tolist()}


def synthetic_thorax_volume(matrix: int = 256, n_slices: int = 96, seed: int = 0) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """HU volume (Z, Y, X), spacing (z, y, x) in mm, and its ground truth (rendered now)."""
    job = SampleRender(matrix, n_slices, seed)
    job.run()
    return job.hu, job.spacing, job.meta()


def _render_in_background(job: SampleRender) -> None:
    """Start the render thread and the GUI timer that redraws the layer as slices land."""
    from napari.utils import progress
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    thread = threading.Thread(target=job.run, name="latentdirs sample render", daemon=True)
    bar = progress(total=len(job.hu), desc="rendering the synthetic thorax")
    timer = QTimer(QApplication.instance())
    state = {"shown": 0, "seen": False}

    def tick() -> None:
        import napari

        viewer = napari.current_viewer()
        layers = [ly for ly in (viewer.layers if viewer is not None else []) if ly.data is job.hu]
        state["seen"] = state["seen"] or bool(layers)
        done = job.done
        if done != state["shown"]:
            for ly in layers:
                ly.refresh()
            bar.update(done - state["shown"])
            state["shown"] = done
        gone = state["seen"] and not layers  # the layer was removed: nobody waits for the rest
        if gone:
            job.stop.set()
        if done >= len(job.hu) or gone:
            timer.stop()
            bar.close()
            timer.deleteLater()

    timer.timeout.connect(tick)
    timer.start(REDRAW_MS)
    thread.start()


def _viewer_waiting() -> bool:
    """A napari window is open (File > Open Sample): render in the background. Called from a
    script or a test without one, the volume is rendered before returning."""
    import sys

    if "napari" not in sys.modules:
        return False
    from qtpy.QtWidgets import QApplication

    import napari

    return QApplication.instance() is not None and napari.current_viewer() is not None


def synthetic_thorax():
    """npe2 sample-data command: one image layer in HU, physical scale in mm."""
    job = SampleRender()
    if _viewer_waiting():
        _render_in_background(job)
    else:
        job.run()
    return [
        (
            job.hu,
            {
                "name": SAMPLE_NAME,
                "scale": job.spacing,
                "colormap": "gray",
                "contrast_limits": (-1000.0, 400.0),
                "metadata": {"phantom": job.meta(), "units": "HU", "spacing_mm": job.spacing},
            },
            "image",
        )
    ]
