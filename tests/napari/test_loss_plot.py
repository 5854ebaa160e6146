"""The live loss plot: round ticks, the right way up, spikes kept when thinned."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qtpy.QtGui import QColor

from napari_latentdirs._napari.loss_plot import LossPlot, nice_ticks


@pytest.mark.parametrize("lo,hi", [(-0.09, 1.91), (0, 1500), (2.5e-5, 1e-4), (-3e3, -2.9e3), (0.1234, 0.1239)])
def test_ticks_are_round_evenly_spaced_and_inside_the_range(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert 3 <= len(ticks) <= 9
    assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0], rtol=1e-6)
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-6


def _pixels(img, colour: str) -> np.ndarray:
    """(row, col) of every pixel of exactly ``colour``."""
    c = QColor(colour).rgb()
    w, h = img.width(), img.height()
    arr = np.array([[img.pixel(x, y) for x in range(w)] for y in range(h)], dtype=np.uint32)
    return np.argwhere(arr == c)


def test_a_rising_series_is_drawn_rising_and_a_spike_survives_thinning(qtbot):
    plot = LossPlot(("up", "spiky"), fps=None)
    qtbot.addWidget(plot)
    plot.resize(300, 170)
    for i in range(5000):
        plot.add(i, {"up": i / 5000, "spiky": 10.0 if i == 2500 else 0.0, "ignored": 1.0})
    assert plot.keys() == ["up", "spiky"] and plot.series("up")[0].size == 5000
    img = plot.render_image(300, 170)
    up, spiky = _pixels(img, "#1f77b4"), _pixels(img, "#ff7f0e")
    assert up.size and spiky.size
    left, right = up[up[:, 1] < up[:, 1].min() + 20], up[up[:, 1] > up[:, 1].max() - 20]
    assert left[:, 0].mean() > right[:, 0].mean() + 5  # rows grow downwards: the right end is higher
    # one spike in 5000 points, thinned to a few hundred: it still reaches the top of the plot
    assert spiky[:, 0].min() < 30
