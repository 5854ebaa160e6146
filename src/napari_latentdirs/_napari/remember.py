"""Dock controls that keep their values between sessions (stored by settings.py)."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import FileEdit
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from . import settings


def _get(w: Any) -> Any:
    if isinstance(w, FileEdit):
        v = str(w.value or "")
        return "" if v == "." else v
    if isinstance(w, QSpinBox | QDoubleSpinBox):
        return w.value()
    if isinstance(w, QComboBox):
        return w.currentText()
    if isinstance(w, QCheckBox):
        return w.isChecked()
    if isinstance(w, QLineEdit):
        return w.text()
    raise TypeError(f"cannot remember a {type(w).__name__}")


def _set(w: Any, v: Any) -> None:
    if isinstance(w, FileEdit):
        if isinstance(v, str) and v:
            w.value = v
    elif isinstance(w, QSpinBox) and isinstance(v, int) and not isinstance(v, bool):
        w.setValue(v)
    elif isinstance(w, QDoubleSpinBox) and isinstance(v, int | float) and not isinstance(v, bool):
        w.setValue(float(v))
    elif isinstance(w, QComboBox) and isinstance(v, str) and w.findText(v) >= 0:
        w.setCurrentText(v)  # an entry this version no longer has is ignored
    elif isinstance(w, QCheckBox) and isinstance(v, bool):
        w.setChecked(v)
    elif isinstance(w, QLineEdit) and isinstance(v, str):
        w.setText(v)


def change_signal(w: Any) -> Any:
    if isinstance(w, FileEdit):
        return w.changed
    if isinstance(w, QSpinBox | QDoubleSpinBox):
        return w.valueChanged
    if isinstance(w, QComboBox):
        return w.currentTextChanged
    if isinstance(w, QCheckBox):
        return w.toggled
    return w.textChanged


class Remembered:
    """Restore ``controls`` from the ``section`` of the settings now, save them on every change."""

    def __init__(self, section: str, controls: dict[str, Any]) -> None:
        self.section = section
        self.controls = controls
        self._restoring = True
        stored = settings.load(section)
        for name, w in controls.items():  # in order: a combo that sets others' defaults goes first
            if name in stored:
                _set(w, stored[name])
        self._restoring = False
        for w in controls.values():
            change_signal(w).connect(self._changed)

    def values(self) -> dict[str, Any]:
        return {name: _get(w) for name, w in self.controls.items()}

    def _changed(self, *_: Any) -> None:
        if not self._restoring:
            settings.save(self.section, self.values())
