"""The stack layer of a widget that streams shifted stacks: frames in, sweep played.

:class:`StackFeed` delivers chunks of the newest request on the GUI thread; a
:class:`StackView` writes them into its (latent, shift, H, W) array, shows that
array as one generated (latent, shift α, z, y, x) layer (placed by placement.py),
reads which frame is on screen and plays the sweep along the shift axis. The
navigator and the review widget each own one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QWidget

from ..analysis.navigation import StackChunk, StackRequest, window_limits
from .placement import GENERATED, add_generated, arrange, as_stack, axis_of

#: HU of frames not generated yet (air)
EMPTY_HU = -1000.0


@dataclass
class StackState:
    """What the layer holds: the frames written so far of the newest request."""

    stack: np.ndarray | None = None  # (latent, shift, H, W) HU, EMPTY_HU where not written yet
    shifts: np.ndarray | None = None  # the shift α of each index along the shift axis
    ticket: int = 0  # the request the last chunk belonged to
    written: int = 0  # frames of that request written so far


class StackView:
    def __init__(self, owner: QWidget, viewer: Any, name: str) -> None:
        self.viewer = viewer
        self.name = name
        self.state = StackState()
        self.layer: Any = None
        self._play_dir = 1
        self._timer = QTimer(owner)
        self._timer.timeout.connect(self.play_step)

    @property
    def stack(self) -> np.ndarray | None:
        return self.state.stack

    @property
    def shown(self) -> bool:
        """The layer exists and is still in the viewer."""
        return self.layer is not None and self.layer in self.viewer.layers

    def reset(self) -> None:
        """Forget the frames (a new model): the layer stays but is hidden until new frames land."""
        self.state = StackState()
        if self.shown:
            self.layer.visible = False

    def apply(self, req: StackRequest, chunk: StackChunk, *, pixel_mm: float, window: str,
              metadata: dict | None = None) -> bool:
        """Write ``chunk`` of ``req`` into the stack and show it; True when the layer was created.

        A stack of a new shape replaces the layer's data (its contrast limits are the
        user's: left as they are); otherwise the layer is refreshed in place."""
        shape = (*req.shape, *chunk.frames.shape[-2:])
        st = self.state
        fresh = st.stack is None or st.stack.shape != shape
        if fresh:
            st.stack = np.full(shape, EMPTY_HU, dtype=np.float32)
        assert st.stack is not None
        if chunk.ticket != st.ticket:
            st.ticket, st.written = chunk.ticket, 0
        st.stack[chunk.latent_idx, chunk.shift_idx] = chunk.frames
        st.written += len(chunk.frames)
        st.shifts = req.shifts
        if not self.shown:
            self.layer = add_generated(self.viewer, as_stack(st.stack), name=self.name, pixel_mm=pixel_mm,
                                       window=window, metadata=metadata)
            self.viewer.dims.set_current_step(axis_of(self.viewer, self.layer, 0), req.visible[0])
            self.viewer.dims.set_current_step(axis_of(self.viewer, self.layer, 1), req.visible[1])
            return True
        layer = self.layer
        if metadata:
            layer.metadata.update(metadata)
        if fresh:
            layer.data = as_stack(st.stack)
            layer.metadata[GENERATED]["pixel_mm"] = float(pixel_mm)
            arrange(self.viewer)
        else:
            layer.refresh()
        if not layer.visible:
            layer.visible = True
        return False

    def position(self) -> tuple[int, int] | None:
        """The (latent, shift) indices the viewer's dims show on the layer (None without one)."""
        if not self.shown:
            return None
        step = self.viewer.dims.current_step
        return int(step[axis_of(self.viewer, self.layer, 0)]), int(step[axis_of(self.viewer, self.layer, 1)])

    def current_alpha(self) -> float | None:
        """The shift α of the frame on screen (None before the first frames)."""
        pos = self.position()
        shifts = self.state.shifts
        if pos is None or shifts is None:
            return None
        return float(shifts[min(max(pos[1], 0), shifts.size - 1)])

    def set_window(self, name: str) -> None:
        if self.layer is not None:
            self.layer.contrast_limits = window_limits(name)

    # ------------------------------------------------------------------ play
    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def play(self, fps: float) -> None:
        self._timer.start(int(1000 / fps))

    def stop(self) -> None:
        self._timer.stop()

    def play_step(self) -> None:
        """One frame along the shift axis, back and forth like the exported sweeps."""
        if self.state.stack is None or not self.shown:
            return
        s = self.state.stack.shape[1]
        axis = axis_of(self.viewer, self.layer, 1)
        cur = int(self.viewer.dims.current_step[axis])
        nxt = cur + self._play_dir
        if not 0 <= nxt < s:
            self._play_dir = -self._play_dir
            nxt = cur + self._play_dir
        self.viewer.dims.set_current_step(axis, int(np.clip(nxt, 0, s - 1)))
