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
    assert len(s.items) == 5 and w.layer.data.shape == (2, 5, 1, 32, 32)
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


def test_bad_review_files_are_refused_and_two_readers_compared(make_napari_viewer, sync_workers, saved_model):
    import json

    import pytest

    from napari_latentdirs.analysis.review import RATING_ANCHORS, ReviewFormatError

    gen_path, dirs_path = saved_model
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Review directions")
    w.n_dirs.setValue(3)
    w.n_random.setValue(3)
    w.n_latents.setValue(1)
    w.frames_spin.setValue(3)
    saved = []
    for reader, good in (("rad1", True), ("rad2", False)):
        w.reader_edit.setText(reader)
        w.start(gen_path, dirs_path)
        for it in w.session.items:
            yes = (it.source == "discovered") == good or it.position == 0
            w.label_combo.setCurrentText("rotation" if yes else "entangled")
            w.rating_group.button(4).setChecked(True)
            w.record_and_next()
        saved.append(w.saved[0])
    assert RATING_ANCHORS[4] in w.rating_hint.text()
    st = w.compare_readers()
    assert [r["reader"] for r in st["readers"]] == ["rad1", "rad2"]
    assert "Cohen's κ" in w.result.text() and "specificity" in w.result.text()
    assert st["pairs"][0]["n"] == 6  # the same seed: the same six items for both readers
    # item 9 of issue 14: an index past K is a clear error, not an IndexError in the widget
    doc = json.loads(saved[0].read_text())
    doc["items"][0].update(source="discovered", index=999)
    saved[0].write_text(json.dumps(doc))
    with pytest.raises(ReviewFormatError, match="direction 999"):
        w.load_review(saved[0], gen_path)
    assert "skipped" in (w.compare_readers() or {}).get("x", "skipped") and "skipped" in w.result.text()
