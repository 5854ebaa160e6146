"""All four docks open at once fit a 1,000 px screen: their content scrolls (issue 12, part 4)."""

from __future__ import annotations

from qtpy.QtWidgets import QApplication

DOCKS = ("Train generator", "Discover directions", "Latent navigator", "Review directions")


def test_four_docks_fit_a_1000_px_screen_and_scroll(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    widgets = [viewer.window.add_plugin_dock_widget("napari-latentdirs", name)[1] for name in DOCKS]
    win = viewer.window._qt_window
    win.resize(1400, 1000)
    for _ in range(5):
        QApplication.processEvents()
    assert win.minimumSizeHint().height() <= 1000
    assert win.height() <= 1000, win.height()
    for w in widgets:
        area = w.scroll_area
        inner = area.widget()
        # the content is taller than its share of the window: it scrolls instead of growing it
        assert area.height() <= 1000 and inner.sizeHint().height() > 0
    assert any(w.scroll_area.verticalScrollBar().maximum() > 0 for w in widgets)
    win.grab().save(str(tmp_path / "four_docks.png"))
