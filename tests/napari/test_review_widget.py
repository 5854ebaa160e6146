"""Review widget: blind mode hides identities, records labels/ratings/notes, saves and reloads, scores."""

from __future__ import annotations

import numpy as np

from napari_latentdirs.analysis.review import ReviewSession


def test_blind_review_saves_reloads_and_scores(make_napari_viewer, sync_workers, saved_model, tmp_path):
    gen_path, dirs_path = saved_model
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Review directions")
    w.reader_edit.setText("rad1")
    w.blind_check.setChecked(True)
    w.n_dirs.setValue(3)
    w.n_random.setValue(2)
    w.seed_spin.setValue(7)
    w.n_latents.setValue(2)
    w.frames_spin.setValue(5)
    w.start(gen_path, dirs_path)
    s = w.session
    assert len(s.items) == 5 and w.layer.data.shape == (2, 5, 32, 32)
    assert w.title.text() == "item 1 of 5" and "width" not in w.title.text()
    # the stack shown is the item's own direction (random ones included)
    shown = [np.array(w.layer.data)]
    for it in s.items:
        w.label_combo.setCurrentText("rotation" if it.source == "discovered" else "not interpretable")
        w.rating_group.button(5 if it.source == "discovered" else 1).setChecked(True)
        w.notes.setPlainText(f"note {it.position}")
        w.record_and_next()
        shown.append(np.array(w.layer.data))
    assert not np.allclose(shown[0], shown[1])
    json_path, csv_path = w.saved
    assert json_path.parent == dirs_path.parent and csv_path.exists()
    assert "accuracy 1.00" in w.result.text() and "AUC 1.00" in w.result.text()

    back = ReviewSession.load(json_path)
    assert [(i.source, i.index, i.label, i.rating, i.notes) for i in back.items] == [
        (i.source, i.index, i.label, i.rating, i.notes) for i in s.items
    ]
    # reopen in a fresh widget: the stored answers come back into the controls
    _, w2 = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Review directions")
    w2.load_review(json_path, gen_path)
    w2.go(2)
    assert w2.label_combo.currentText() == back.items[2].label
    assert w2.rating_group.checkedId() == back.items[2].rating
    assert w2.notes.toPlainText() == "note 2" and w2.session.blind
