"""A live loss plot drawn with QPainter into a cached image.

Steps arrive from the engine many times a second. Points are buffered and
rendered into an image only on :meth:`redraw` (at most ``fps`` times a second,
or when the owner calls it); a repaint just copies that image. pyqtgraph, used
before, took 10-20 ms of the GUI thread per update and painted twice when its
axes resized, a large share of the 50 ms stall budget under software OpenGL
(``benchmarks/bench_gui_stall.py``); this takes about 3 ms per update with
2000 points and 0.1 ms per repaint (measured on the 2-core VM).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QImage, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_BACKGROUND = QColor("#000000")
_AXES = QColor("#9a9a9a")
_GRID = QColor(255, 255, 255, 38)
_MARGIN = (52, 8, 10, 24)  # left, top, right, bottom


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 times a power of ten apart) in [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda st: abs(math.log(st / raw)))
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def data_range(values: list[np.ndarray]) -> tuple[float, float]:
    """Padded (lo, hi) over all values; a flat series gets a unit-wide range around it."""
    finite = [v[np.isfinite(v)] for v in values if v.size]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0, 1.0
    lo = float(min(v.min() for v in finite))
    hi = float(max(v.max() for v in finite))
    if hi - lo < 1e-12:
        return lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


class LossPlot(QWidget):
    def __init__(self, keys: tuple[str, ...] | None = None, fps: float | None = 5.0, max_points: int = 2000, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._keys = keys  # None: plot every key that arrives
        self._max_points = max_points
        self._data: dict[str, tuple[list[float], list[float]]] = {}
        self._colours: dict[str, QColor] = {}
        self._dirty = False
        self._image: QImage | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(170)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.redraw)
        if fps:  # None: the owner calls redraw() itself
            self._timer.start(int(1000 / fps))

    # -- data --------------------------------------------------------------------------------
    def clear(self) -> None:
        self._data.clear()
        self._colours.clear()
        self._dirty = True
        self.redraw()

    def add(self, step: int, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            if self._keys is not None and k not in self._keys:
                continue
            if not np.isfinite(v):
                continue
            xs, ys = self._data.setdefault(k, ([], []))
            self._colours.setdefault(k, QColor(_COLOURS[len(self._colours) % len(_COLOURS)]))
            xs.append(float(step))
            ys.append(float(v))
            self._dirty = True

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = self._data.get(key, ([], []))
        return np.asarray(xs), np.asarray(ys)

    def keys(self) -> list[str]:
        return list(self._data)

    # -- drawing -----------------------------------------------------------------------------
    def redraw(self) -> None:
        """Render the buffered points into the cached image and schedule one repaint."""
        if not self._dirty and self._image is not None and self._image.size() == self.size():
            return
        self._dirty = False
        self._image = self.render_image(self.width(), self.height())
        self.update()

    def render_image(self, width: int, height: int) -> QImage:
        img = QImage(max(width, 1), max(height, 1), QImage.Format.Format_RGB32)
        img.fill(_BACKGROUND)
        p = QPainter(img)
        try:
            self._paint(p, width, height)
        finally:
            p.end()
        return img

    def _paint(self, p: QPainter, width: int, height: int) -> None:
        left, top, right, bottom = _MARGIN
        area = QRectF(left, top, max(width - left - right, 1), max(height - top - bottom, 1))
        series = {k: self._thin(*map(np.asarray, v)) for k, v in self._data.items()}
        xlo, xhi = data_range([x for x, _ in series.values()]) if series else (0.0, 1.0)
        ylo, yhi = data_range([y for _, y in series.values()])

        def to_px(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return (area.left() + (x - xlo) / (xhi - xlo) * area.width(), area.bottom() - (y - ylo) / (yhi - ylo) * area.height())

        font = p.font()
        font.setPointSizeF(max(font.pointSizeF() - 1.5, 6.0))
        p.setFont(font)
        fm = p.fontMetrics()
        for v in nice_ticks(ylo, yhi):
            py = float(to_px(np.array([xlo]), np.array([v]))[1][0])
            p.setPen(QPen(_GRID, 1))
            p.drawLine(QPointF(area.left(), py), QPointF(area.right(), py))
            p.setPen(_AXES)
            label = f"{v:.3g}"
            p.drawText(QPointF(area.left() - fm.horizontalAdvance(label) - 4, py + fm.ascent() / 2 - 1), label)
        for v in nice_ticks(xlo, xhi):
            px = float(to_px(np.array([v]), np.array([ylo]))[0][0])
            p.setPen(QPen(_GRID, 1))
            p.drawLine(QPointF(px, area.top()), QPointF(px, area.bottom()))
            p.setPen(_AXES)
            label = f"{v:.6g}"
            p.drawText(QPointF(px - fm.horizontalAdvance(label) / 2, area.bottom() + fm.ascent() + 3), label)
        p.setPen(QPen(_AXES, 1))
        p.drawRect(area)
        p.setClipRect(area)
        for k, (x, y) in series.items():
            if x.size == 0:
                continue
            px, py = to_px(x, y)
            p.setPen(QPen(self._colours[k], 1))  # aliased, 1 px: an order of magnitude cheaper to raster
            if x.size == 1:
                p.drawEllipse(QPointF(px[0], py[0]), 2.0, 2.0)
            else:
                p.drawPolyline(QPolygonF([QPointF(a, b) for a, b in zip(px.tolist(), py.tolist(), strict=True)]))
        p.setClipping(False)
        lx, ly = area.left() + 6, area.top() + fm.ascent() + 3
        for k, (_x, y) in series.items():
            p.setPen(self._colours[k])
            last = f" {y[-1]:.4g}" if y.size else ""
            text = f"{k}{last}"
            if lx > area.left() + 6 and lx + fm.horizontalAdvance(text) > area.right():
                lx, ly = area.left() + 6, ly + fm.height() + 2  # next legend row
            p.fillRect(QRectF(lx - 2, ly - fm.ascent() - 1, fm.horizontalAdvance(text) + 4, fm.height() + 2), QColor(0, 0, 0, 170))
            p.drawText(QPointF(lx, ly), text)
            lx += fm.horizontalAdvance(text) + 12

    def _thin(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """At most two points per pixel column, its lowest and highest, so spikes survive."""
        bins = max(min(self._max_points, self.width() - _MARGIN[0] - _MARGIN[2]) // 2, 1)
        if x.size <= 2 * bins:
            return x, y
        starts = np.unique(np.linspace(0, x.size, bins, endpoint=False).astype(int))
        lo, hi = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
        return np.repeat(x[starts], 2), np.column_stack([lo, hi]).ravel()

    def paintEvent(self, event) -> None:  # noqa: ANN001 - Qt API
        if self._image is None or self._image.size() != self.size():
            self._image = self.render_image(self.width(), self.height())
        p = QPainter(self)
        p.drawImage(0, 0, self._image)
        p.end()
