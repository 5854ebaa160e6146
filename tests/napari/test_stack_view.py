"""StackView: chunks land in one layer, a new shape replaces its data, the sweep plays back and forth."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QWidget

from napari_latentdirs._napari.placement import GENERATED, axis_of
from napari_latentdirs._napari.stack_view import EMPTY_HU, StackView
from napari_latentdirs.analysis.navigation import StackChunk, StackRequest, window_limits


def _req(n, s, ticket, visible=(0, 0)):
    return StackRequest(np.zeros((n, 2), np.float32), np.ones(2, np.float32), np.linspace(-1, 1, s), visible, ticket)


def _chunk(ticket, pairs, value, done=False, size=8):
    li, si = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    return StackChunk(ticket, li, si, np.full((len(pairs), size, size), value, np.float32), done)


def test_chunks_fill_one_layer_and_the_sweep_ping_pongs(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    owner = QWidget()
    qtbot.addWidget(owner)
    view = StackView(owner, viewer, "test stack")
    assert view.current_alpha() is None and view.position() is None
    req = _req(2, 3, 1, visible=(1, 2))
    assert view.apply(req, _chunk(1, [(1, 2)], 100.0), pixel_mm=0.5, window="lung", metadata={"latentdirs": {"a": 1}})
    layer = view.layer
    assert layer.data.shape == (2, 3, 1, 8, 8) and layer.metadata["latentdirs"] == {"a": 1}
    assert view.position() == (1, 2) and view.current_alpha() == 1.0
    assert view.state.written == 1 and view.state.stack[0, 0, 0, 0] == EMPTY_HU
    assert not view.apply(req, _chunk(1, [(0, 0), (0, 1)], 200.0, done=True), pixel_mm=0.5, window="lung")
    assert view.layer is layer and view.state.written == 3
    np.testing.assert_array_equal(np.asarray(layer.data)[0, :2, 0, 0, 0], [200.0, 200.0])

    # the sweep: 2 -> 1 -> 0 -> 1 along the shift axis
    axis = axis_of(viewer, layer, 1)
    seen = []
    for _ in range(3):
        view.play_step()
        seen.append(int(viewer.dims.current_step[axis]))
    assert seen == [1, 0, 1]
    view.play(20.0)
    assert view.playing
    view.stop()
    assert not view.playing

    # a new request of another shape: same layer, new data and pixel size, counting anew
    view.reset()
    assert not layer.visible and view.current_alpha() is None
    req2 = _req(1, 5, 2)
    assert not view.apply(req2, _chunk(2, [(0, 4)], 300.0, size=16), pixel_mm=0.25, window="lung")
    assert view.layer is layer and layer.visible and layer.data.shape == (1, 5, 1, 16, 16)
    assert layer.metadata[GENERATED]["pixel_mm"] == 0.25 and view.state.written == 1
    np.testing.assert_allclose(layer.scale[-2:], (0.25, 0.25))
    view.set_window("bone")
    assert tuple(layer.contrast_limits) == window_limits("bone")
