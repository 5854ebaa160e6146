"""A live loss plot (pyqtgraph) that redraws at a bounded rate.

Steps arrive from the worker many times a second; redrawing on every one
would cost the GUI thread more than the training itself, so points are
buffered and drawn at most ``fps`` times a second.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


class LossPlot(QWidget):
    def __init__(self, keys: tuple[str, ...] | None = None, fps: float | None = 5.0, max_points: int = 2000, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._keys = keys  # None: plot every key that arrives
        self._max_points = max_points
        self._data: dict[str, tuple[list[float], list[float]]] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._dirty = False
        self.plot = pg.PlotWidget(background="k")
        self.plot.setMinimumHeight(160)
        self.plot.addLegend(offset=(5, 5))
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "step")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.redraw)
        if fps:  # None: the owner calls redraw() itself
            self._timer.start(int(1000 / fps))

    def clear(self) -> None:
        self._data.clear()
        for c in self._curves.values():
            self.plot.removeItem(c)
        self._curves.clear()
        self.plot.plotItem.legend.clear()

    def add(self, step: int, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            if self._keys is not None and k not in self._keys:
                continue
            if not np.isfinite(v):
                continue
            xs, ys = self._data.setdefault(k, ([], []))
            xs.append(float(step))
            ys.append(float(v))
        self._dirty = True

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = self._data.get(key, ([], []))
        return np.asarray(xs), np.asarray(ys)

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for k, (xs, ys) in self._data.items():
            x, y = np.asarray(xs), np.asarray(ys)
            if x.size > self._max_points:  # keep the shape, drop the detail
                idx = np.linspace(0, x.size - 1, self._max_points).astype(int)
                x, y = x[idx], y[idx]
            curve = self._curves.get(k)
            if curve is None:
                colour = _COLOURS[len(self._curves) % len(_COLOURS)]
                curve = self._curves[k] = self.plot.plot(name=k, pen=pg.mkPen(colour, width=1.5))
            curve.setData(x, y)
