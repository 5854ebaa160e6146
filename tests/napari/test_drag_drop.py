"""Drag and drop into a real viewer window: the reader claims only what can be DICOM (issue 12, part 5)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from qtpy.QtGui import QDropEvent
from qtpy.QtWidgets import QApplication

DISPLAY = "Latent Directions for CT"


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory):
    from napari_latentdirs.phantom.tree import write_phantom_tree

    out = tmp_path_factory.mktemp("dnd")
    write_phantom_tree(out, patients=1, seed=2, matrix=32, n_slices=4, workers=1)
    return out


class DialogWatcher:
    """Answers napari's reader-choice dialog (modal) by picking ``choose``; records what it offered."""

    def __init__(self, choose: str | None = None) -> None:
        self.offered: list[list[str]] = []
        self.choose = choose
        self.timer = QTimer()
        self.timer.timeout.connect(self._poll)
        self.timer.start(50)

    def _poll(self) -> None:
        from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog

        for w in QApplication.topLevelWidgets():
            if isinstance(w, QtReaderDialog) and w.isVisible():
                buttons = w.reader_btn_group.buttons()
                self.offered.append([b.text() for b in buttons])
                w.persist_checkbox.setChecked(False)
                pick = [b for b in buttons if b.text() == self.choose]
                if pick:
                    pick[0].setChecked(True)
                    w.accept()
                else:
                    w.reject()

    def stop(self) -> None:
        self.timer.stop()


def _drop(viewer, path) -> None:
    qt_viewer = viewer.window._qt_viewer
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    ev = QDropEvent(QPointF(QPoint(10, 10)), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    qt_viewer.dropEvent(ev)
    QApplication.processEvents()


def test_dropping_a_png_never_offers_this_plugin(make_napari_viewer, tmp_path):
    import imageio.v3 as iio

    png = tmp_path / "photo.png"
    iio.imwrite(png, (np.arange(64 * 64).reshape(64, 64) % 255).astype(np.uint8))
    viewer = make_napari_viewer(show=True)
    watcher = DialogWatcher()
    try:
        _drop(viewer, png)
    finally:
        watcher.stop()
    assert watcher.offered == []  # no reader-choice dialog: only napari's own reader claims a PNG
    assert [ly.name for ly in viewer.layers] == ["photo"]


def test_dropping_a_dicom_folder_opens_the_ct_through_this_plugin(make_napari_viewer, ct_folder):
    viewer = make_napari_viewer(show=True)
    watcher = DialogWatcher(choose=DISPLAY)
    try:
        _drop(viewer, ct_folder)
    finally:
        watcher.stop()
    # napari's own reader claims every folder too, so napari asks once; this plugin is offered
    assert all(DISPLAY in offered for offered in watcher.offered)
    [ct] = list(viewer.layers)
    assert ct.data.shape[0] == 4 and ct.scale[-1] > 0 and "series_uid" in ct.metadata


def test_extension_less_dicom_is_read_through_its_folder(make_napari_viewer, ct_folder, tmp_path):
    from napari.plugins._npe2 import get_readers

    from napari_latentdirs._napari.reader import get_reader

    bare = tmp_path / "IMAGES"
    bare.mkdir()
    for i, f in enumerate(sorted(ct_folder.rglob("*.dcm"))):
        (bare / f"IM{i:04d}").write_bytes(f.read_bytes())
    assert "napari-latentdirs" not in get_readers(str(bare / "IM0000"))  # a bare file is not claimed ...
    assert "napari-latentdirs" in get_readers(str(bare))  # ... its folder is
    assert get_reader(str(bare)) is not None
    viewer = make_napari_viewer()
    [ct] = viewer.open(str(bare), plugin="napari-latentdirs", stack=False)
    assert ct.data.shape[0] == 4
