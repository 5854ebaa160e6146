"""Docks that fit the screen: their content scrolls instead of growing the window.

Four docks of settings, plots and lists stacked in napari's dock area grew the window
to 2,968 px on a 1,000 px screen, because a dock's minimum height is its content's.
Inside a QScrollArea a dock can be as short as the window allows.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

#: a dock's minimum height: enough for a few rows, far less than a screen
MIN_HEIGHT = 120


def scrolling_layout(widget: QWidget) -> QVBoxLayout:
    """Give ``widget`` a scroll area and return the layout to fill inside it."""
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    area = QScrollArea(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setMinimumHeight(MIN_HEIGHT)
    inner = QWidget(area)
    area.setWidget(inner)
    outer.addWidget(area)
    widget.scroll_area = area
    return QVBoxLayout(inner)
