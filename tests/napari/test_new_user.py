"""What a new user tripped on (issue 19): defaults that follow the device, status lines, labels,
a generator without a set, windows, exports, waits, tooltips, keys and remembered settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_latentdirs.analysis.navigation import window_limits
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.events import Message, Started, Step


def _dock(make_napari_viewer, name):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-latentdirs", name)
    return viewer, w


# -- item 4: defaults follow the device, expected time, status says what happens now ------------


def test_cpu_defaults_are_the_cpu_recipes_with_an_expected_time(make_napari_viewer, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, dirs = _dock(make_napari_viewer, "Discover directions")
    assert dirs.recipe_combo.currentText() == "cpu"
    assert dirs.steps_spin.value() == 800 and dirs.recon_combo.currentText() == "lenet"  # not the paper's 25,000
    dirs.demo_combo.setCurrentIndex(1)  # demo GAN: the demo's own timing is the reference
    dirs.refresh_expected()
    text = dirs.expected_label.text()
    assert text.startswith("expected time: about ") and "min" in text and "800 steps" in text
    _, train = _dock(make_napari_viewer, "Train generator")
    assert train.recipe_combo.currentText() == "cpu" and train.preset_combo.currentText() == "cpu"
    assert train.max_steps_spin.value() == 10_000 and train.batch_spin.value() == 32
    # The demo GAN's recorded timing is the reference only when it was a CPU run (its README.json says).
    from napari_latentdirs._napari.estimate import DEMO_DIR, duration_text

    rec = json.loads((DEMO_DIR / "README.json").read_text())["gan"]
    if rec.get("train_device", "cpu") == "cpu":
        want = f"about {duration_text(60.0 * rec['train_minutes'] / rec['generator_steps'] * 10_000)}"
    else:  # trained on a GPU: no CPU figure to scale, so none is claimed
        want = "known after the first steps"
    assert want in train.expected_label.text()
    cfg = train.config()
    assert cfg.r1_gamma == 1.0 and cfg.lr == pytest.approx(1e-4)  # the recipe's optimiser, not the tiny defaults


def test_cuda_defaults_are_the_papers(make_napari_viewer, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    _, dirs = _dock(make_napari_viewer, "Discover directions")
    assert dirs.device_combo.currentText() == "auto" and dirs.resolved_device() == "cuda"
    assert dirs.recipe_combo.currentText() == "paper" and dirs.steps_spin.value() == 0  # 0 = the paper's count
    _, train = _dock(make_napari_viewer, "Train generator")
    assert train.recipe_combo.currentText() == "paper" and train.preset_combo.currentText() == "paper"


def test_status_says_what_is_happening_now(make_napari_viewer):
    _, dock = _dock(make_napari_viewer, "Train generator")
    dock.on_event(Started(total_steps=80))
    dock.on_event(Message("sampling 512 phantom slices"))
    dock.flush()
    assert dock.status.text() == "sampling 512 phantom slices"
    dock.on_event(Step(12, 80, {"loss_g": 1.0}))
    dock.flush()
    assert dock.status.text().startswith("training the generator: step 12 of 80")
    assert "sampling" not in dock.status.text()


# -- item 8: settings remembered, never in the real user's folder --------------------------------


def test_settings_are_remembered_between_sessions(make_napari_viewer, tmp_path, monkeypatch):
    from napari_latentdirs._napari.settings import settings_path

    monkeypatch.setenv("LATENTDIRS_CONFIG_DIR", str(tmp_path / "cfg"))
    _, dirs = _dock(make_napari_viewer, "Discover directions")
    dirs.k_spin.setValue(7)
    dirs.seed_spin.setValue(42)
    _, nav = _dock(make_napari_viewer, "Latent navigator")
    nav.window_combo.setCurrentText("bone")
    assert settings_path() == tmp_path / "cfg" / "settings.json"
    doc = json.loads(settings_path().read_text())
    assert doc["DirectionsDock"]["K"] == 7 and doc["LatentNavigator"]["window"] == "bone"
    _, again = _dock(make_napari_viewer, "Discover directions")  # a new session reads them back
    assert again.k_spin.value() == 7 and again.seed_spin.value() == 42
    _, nav2 = _dock(make_napari_viewer, "Latent navigator")
    assert nav2.window_combo.currentText() == "bone"


def test_resume_a_run_folder_chosen_from_disk(make_napari_viewer, sync_workers, tmp_path):
    from napari_latentdirs.events import Finished

    def tiny(w, steps):
        w.data_combo.setCurrentIndex(0)
        w.device_combo.setCurrentText("cpu")
        w.preset_combo.setCurrentText("tiny")
        w.phantom_n.setValue(16)
        w.epochs_spin.setValue(10)
        w.batch_spin.setValue(4)
        w.max_steps_spin.setValue(steps)
        w.out_edit.value = str(tmp_path)

    _, first = _dock(make_napari_viewer, "Train generator")
    tiny(first, 3)
    first.start()
    assert first.state == "finished"
    run_dir = first.run_dir
    _, later = _dock(make_napari_viewer, "Train generator")  # another session: no run of its own
    tiny(later, 5)
    assert later.run_dir is None
    assert not later.resume_from(tmp_path / "nothing-here")
    assert later.resume_from(run_dir)
    started = [e for e in [later.last_event] if isinstance(e, Finished)]
    assert started and later.run_dir == run_dir and later.last_step == 5


# -- item 8: tooltips on every control, keys, docks side by side --------------------------------


DOCKS = ["Latent navigator", "Train generator", "Discover directions", "Review directions"]


@pytest.mark.parametrize("name", DOCKS)
def test_every_control_has_a_tooltip(make_napari_viewer, name):
    from qtpy.QtWidgets import (
        QAbstractButton,
        QAbstractSlider,
        QAbstractSpinBox,
        QComboBox,
        QLineEdit,
        QListWidget,
        QScrollBar,
    )

    _, w = _dock(make_napari_viewer, name)
    kinds = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QListWidget, QAbstractSlider)
    missing = []
    for c in w.findChildren(kinds):
        if isinstance(c, QScrollBar):
            continue  # the dock's own scrolling, not a setting
        if isinstance(c, QLineEdit) and isinstance(c.parent(), QAbstractSpinBox | QComboBox):
            continue  # the editor inside a spin box or combo: its owner's tooltip shows
        # Qt shows the nearest ancestor's tooltip: a control inside a file field has the field's
        p, tip = c, ""
        while p is not None and p is not w and not tip:
            tip = p.toolTip()
            p = p.parentWidget()
        if not tip:
            missing.append(f"{type(c).__name__} {getattr(c, 'text', lambda: '')()!r}")
    assert not missing, missing


def test_keys_step_directions_and_play(make_napari_viewer, sync_workers, tiny_gan, tiny_dirs):
    from napari_latentdirs._napari.navigator import SHORTCUTS

    viewer, nav = _dock(make_napari_viewer, "Latent navigator")
    nav.frames_spin.setValue(3)
    nav.set_model(tiny_gan, tiny_dirs, "tiny")

    def press(key):
        from napari.utils.key_bindings import KeyBinding

        viewer.keymap[KeyBinding.from_str(key)](viewer)

    press(SHORTCUTS["next direction"])
    assert nav.direction_index() == 1
    press(SHORTCUTS["next direction"])
    press(SHORTCUTS["previous direction"])
    assert nav.direction_index() == 1
    press(SHORTCUTS["play / pause"])
    assert nav.view.playing
    press(SHORTCUTS["play / pause"])
    assert not nav.view.playing


def test_docks_fit_side_by_side(make_napari_viewer):
    from qtpy.QtCore import Qt

    """Each dock's content fits a 360 px column without a horizontal scroll bar."""
    for name in DOCKS:
        _, w = _dock(make_napari_viewer, name)
        area = w.scroll_area
        need = area.widget().minimumSizeHint().width()
        assert need <= 360, (name, need)
        # the dock is never narrower than its content: no sideways scrolling
        assert area.minimumWidth() >= need and area.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff


# -- item 5: a set never labelled, the Label step, a generator without a set ---------------------


def test_label_step_labels_a_set_and_says_which_probes(make_napari_viewer, sync_workers, saved_model):
    gen_path, dirs_path = saved_model
    assert DirectionSet.load(dirs_path).meta.get("labelling") is None
    _, dock = _dock(make_napari_viewer, "Discover directions")
    dock.generator_edit.value = str(gen_path)
    dock.label_set_edit.value = str(dirs_path)
    dock.probes_combo.setCurrentText("phantom")
    dock.label_clicked()
    assert dock.labelled is not None
    back = DirectionSet.load(dirs_path)
    assert back.labels is not None and len(back.labels) == back.K
    assert back.meta["labelling"]["probes"] == "phantom"
    assert "phantom probes" in dock.label_status.text()


def test_unlabelled_set_and_a_generator_without_a_set(make_napari_viewer, sync_workers, tiny_gan):
    viewer, nav = _dock(make_napari_viewer, "Latent navigator")
    nav.n_spin.setValue(3)
    nav.set_model(tiny_gan, None, "my own GAN")
    # samples, and the offer to compute or discover a set
    assert nav.layer is not None and nav.layer.data.shape[:2] == (3, 1)
    assert np.ptp(np.asarray(nav.layer.data)) > 0
    assert nav.offer_box.isVisibleTo(nav) and "no direction set" in nav.model_label.text()
    from napari_latentdirs.directions import METHODS

    assert set(nav.baseline_methods.values()) <= set(METHODS) and "random" in nav.baseline_methods.values()
    nav.compute_baseline("random", 5)
    assert nav.directions is not None and nav.directions.K == 5
    assert [nav.direction_list.item(k).text() for k in range(5)] == [f"#{k} unlabelled" for k in range(5)]
    assert not nav.offer_box.isVisibleTo(nav)
    assert "labels reflect" not in nav.model_label.text()
    dock = nav.open_discovery()
    assert dock is not None and type(dock).__name__ == "DirectionsDock"


def test_descriptions_show_in_the_list(make_napari_viewer, sync_workers, tiny_gan, tiny_dirs):
    _, nav = _dock(make_napari_viewer, "Latent navigator")
    ds = DirectionSet(tiny_dirs.A, tiny_dirs.method, labels=tiny_dirs.labels,
                      meta={"descriptions": ["width ↑ 0.48 · height ↓ 0.31", "", ""]})
    nav.set_model(tiny_gan, ds, "described")
    assert nav.direction_list.item(0).text() == "#0 width ↑ 0.48 · height ↓ 0.31"
    assert nav.direction_list.item(1).text() == "#1 unlabelled"
    assert nav.direction_list.item(2).text() == "#2 rotation"


# -- item 6: one window, DICOM into a new subfolder, the PNG grid, the TIFF ---------------------


def test_one_window_for_the_ct_and_its_neighbours(make_napari_viewer, sync_workers, tiny_gan, tiny_dirs):
    viewer, nav = _dock(make_napari_viewer, "Latent navigator")
    ct = viewer.add_image(np.zeros((4, 16, 16), np.float32), contrast_limits=(-1000, 400), name="CT")
    nav.frames_spin.setValue(3)
    nav.set_model(tiny_gan, tiny_dirs, "tiny")
    assert tuple(ct.contrast_limits) == window_limits("lung")  # linked from the start
    nav.window_combo.setCurrentText("bone")
    assert tuple(ct.contrast_limits) == tuple(nav.layer.contrast_limits) == window_limits("bone")
    nav.link_check.setChecked(False)
    nav.window_combo.setCurrentText("mediastinum")
    assert tuple(ct.contrast_limits) == window_limits("bone")
    assert tuple(nav.layer.contrast_limits) == window_limits("mediastinum")


def test_dicom_export_into_an_existing_folder_makes_a_subfolder(make_napari_viewer, sync_workers, saved_model,
                                                              tmp_path, monkeypatch):
    from qtpy.QtWidgets import QFileDialog

    viewer, nav = _dock(make_napari_viewer, "Latent navigator")
    nav.n_spin.setValue(1)
    nav.frames_spin.setValue(3)
    nav.load(*saved_model)
    chosen = tmp_path / "exports"
    chosen.mkdir()
    (chosen / "older.txt").write_text("not empty")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(chosen))
    nav.export_combo.setCurrentIndex(nav.export_combo.findData("dicom"))
    nav._export_clicked()
    nav._export_clicked()  # again: a second new subfolder, never the first one
    subs = sorted(p for p in chosen.iterdir() if p.is_dir())
    assert len(subs) == 2 and all(len(list(p.glob("*.dcm"))) == 3 for p in subs)
    # an export that fails is a notification and one short line, not a traceback in the Latents box
    width = nav.sizeHint().width()
    before = nav.latent_label.text()
    nav.export(chosen, "dicom")  # the non-empty folder itself: refused
    assert nav.latent_label.text() == before
    assert "failed" in nav.status.text() and len(nav.status.text()) < 80
    assert nav.sizeHint().width() <= width


def test_png_grid_shows_the_selected_directions_neighbourhood(make_napari_viewer, sync_workers, tiny_gan, tmp_path):
    from napari_latentdirs.analysis import export as ex

    _, nav = _dock(make_napari_viewer, "Latent navigator")
    K = 12
    A = np.random.default_rng(1).standard_normal((tiny_gan.latent_dim, K)).astype(np.float32)
    nav.n_spin.setValue(1)
    nav.frames_spin.setValue(3)
    nav.set_model(tiny_gan, DirectionSet(A, "unit", labels=[f"d{k}" for k in range(K)]), "tiny")
    nav.direction_list.setCurrentRow(9)
    nav.export(tmp_path / "g.png", ".png")
    _, layout = ex.read_png_grid(tmp_path / "g.png")
    assert "d9" in layout["rows"] and "d0" not in layout["rows"] and len(layout["rows"]) == 8


def test_tiff_does_not_call_the_shift_step_a_spacing_in_mm(make_napari_viewer, sync_workers, saved_model, tmp_path):
    import tifffile

    from napari_latentdirs.analysis import export as ex

    _, nav = _dock(make_napari_viewer, "Latent navigator")
    nav.load(*saved_model)
    nav.frames_spin.setValue(5)
    nav.export(tmp_path / "s.tif", ".tif")
    with tifffile.TiffFile(tmp_path / "s.tif") as tf:
        ij = tf.imagej_metadata
    assert "spacing" not in ij  # ImageJ would read it as a z spacing in mm
    assert ex.read_tiff(tmp_path / "s.tif").frame_step == pytest.approx(float(np.diff(nav.shifts()).mean()))


# -- item 6: review widget --------------------------------------------------------------------


def test_review_spreads_items_says_what_to_do_and_reveals_the_key(make_napari_viewer, sync_workers, tmp_path,
                                                                  tiny_gan):
    from napari_latentdirs._napari.review import review_path_for, spread_indices
    from napari_latentdirs.analysis.demo import require_demo
    from napari_latentdirs.models.registry import save_generator

    assert spread_indices(32, 5) == [0, 8, 16, 23, 31]
    g = save_generator(tmp_path / "g.safetensors", tiny_gan)
    A = np.random.default_rng(2).standard_normal((tiny_gan.latent_dim, 10)).astype(np.float32)
    d = DirectionSet(A, "unit").save(tmp_path / "d.safetensors")
    viewer, w = _dock(make_napari_viewer, "Review directions")
    w.n_dirs.setValue(3)
    w.n_random.setValue(2)
    w.n_latents.setValue(3)
    w.frames_spin.setValue(3)
    w.start(g, d)
    assert sorted(it.index for it in w.session.items if it.source == "discovered") == [0, 4, 9]
    assert "choose a generator" not in w.status.text() and "Save & next" in w.status.text()
    # every latent of the item side by side at the shift on screen, following the shift slider
    grid = viewer.layers["review grid"]
    stack = w.view.stack
    h = stack.shape[-1]
    s = w.view.position()[1]
    np.testing.assert_array_equal(grid.data[0, :h, h + 1: 2 * h + 1], stack[1, s])
    viewer.dims.set_current_step(1, 0)
    np.testing.assert_array_equal(grid.data[0, :h, :h], stack[0, 0])
    for _ in w.session.items:
        w.label_combo.setCurrentText("entangled")
        w.record_and_next()
    assert "Key" in w.result.text() and "random" in w.result.text()
    # a demo set's review goes to the user's folder, not into the installed package
    m = require_demo("vae")
    path = review_path_for(m.directions, "reader")
    assert m.directions.parent not in path.parents


# -- item 7: the inversion shows progress and can be cancelled -----------------------------------


def test_inversion_progress_and_cancel(make_napari_viewer, threaded_workers, tiny_gan, qtbot):
    viewer, nav = _dock(make_napari_viewer, "Latent navigator")
    ct = viewer.add_image(np.random.default_rng(0).uniform(-1000, 300, (3, 64, 64)).astype(np.float32), name="CT")
    nav.n_spin.setValue(1)
    nav.frames_spin.setValue(3)
    nav.set_model(tiny_gan, None, "tiny")
    z0 = nav.z.copy()
    nav.ct_combo.setCurrentText(ct.name)
    nav.source_combo.setCurrentIndex(2)
    nav.inversion_steps = 100_000  # far longer than the test waits
    nav.set_latents_from_source()
    assert nav.cancel_btn.isVisibleTo(nav) and nav.job_bar.isVisibleTo(nav)
    qtbot.waitUntil(lambda: nav.job_bar.value() >= 20, timeout=30000)
    assert "%" in nav.latent_label.text()
    nav.cancel_job()
    qtbot.waitUntil(lambda: not nav._jobs.running, timeout=30000)
    assert "cancelled" in nav.latent_label.text() and np.array_equal(nav.z, z0)
    assert not nav.cancel_btn.isVisibleTo(nav)
    nav.shutdown()
