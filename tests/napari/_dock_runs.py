"""Helpers for the dock tests: record a dock's events, give the training dock a tiny run."""

from __future__ import annotations

from typing import Any


def record(widget: Any) -> list[Any]:
    """The events the dock receives from now on, in order (the dock still handles each)."""
    events: list[Any] = []
    orig = widget.on_event

    def spy(ev: Any) -> None:
        events.append(ev)
        orig(ev)

    widget.runner._on_event = spy
    return events


def tiny_training(widget: Any, out: Any, steps: int = 6) -> None:
    """A training run of ``steps`` steps on 16 phantom slices with the tiny preset, on the CPU."""
    widget.data_combo.setCurrentIndex(0)
    widget.phantom_n.setValue(16)
    widget.preset_combo.setCurrentText("tiny")
    widget.model_combo.setCurrentIndex(0)
    widget.epochs_spin.setValue(10)
    widget.batch_spin.setValue(4)
    widget.max_steps_spin.setValue(steps)
    widget.device_combo.setCurrentText("cpu")
    widget.out_edit.value = str(out)


def tiny_directions(widget: Any, generator: Any, out: Any, K: int = 3, steps: int = 4) -> None:
    """A direction run of ``steps`` steps with ``K`` directions for ``generator`` (a file), on the CPU."""
    widget.generator_edit.value = str(generator)
    widget.k_spin.setValue(K)
    widget.steps_spin.setValue(steps)
    widget.batch_spin.setValue(4)
    widget.device_combo.setCurrentText("cpu")
    widget.out_edit.value = str(out)
