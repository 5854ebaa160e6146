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


def compact_combos(widget: QWidget, chars: int = 8) -> None:
    """Combo boxes elide long entries instead of widening the dock: docks side by side fit
    a column without a horizontal scroll bar (issue 19)."""
    from qtpy.QtWidgets import QComboBox

    for combo in widget.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(chars)


def fit_width(widget: QWidget) -> None:
    """Make the dock at least as wide as its content (plus the vertical scroll bar): it then
    never scrolls sideways, and napari lays docks side by side at their real widths."""
    area = widget.scroll_area
    need = area.widget().minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width() + 8
    area.setMinimumWidth(need)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
