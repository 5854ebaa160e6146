"""Latent navigator: opens as a plugin dock, streams stacks, newest wins, shift 0 is G(z)."""

from __future__ import annotations

import numpy as np
import torch

from napari_latentdirs.data.preprocess import DEFAULT


def _open(make_napari_viewer):
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    return viewer, widget


def _g(gen, z):
    with torch.no_grad():
        return DEFAULT.model_to_hu(gen.generate(torch.from_numpy(np.asarray(z, np.float32)))[:, 0].numpy())


def test_direction_change_replaces_layer_data_and_shift0_is_G_z(make_napari_viewer, sync_workers, saved_model, tiny_gan):
    viewer, nav = _open(make_napari_viewer)
    nav.n_spin.setValue(2)
    nav.load(*saved_model)
    nav.frames_spin.setValue(9)
    layer = nav.layer
    # (latent, shift α, z, y, x): a z plane of its own, so it never shares an axis with a CT
    assert layer is not None and layer.data.shape == (2, 9, 1, 32, 32)
    assert viewer.dims.axis_labels[:2] == ("latent", "shift α")
    shifts = nav.shifts()
    k0 = int(np.flatnonzero(shifts == 0)[0])
    np.testing.assert_allclose(layer.data[:, k0, 0], _g(tiny_gan, nav.z), atol=1e-2)
    before = np.array(layer.data[:, :, 0])
    nav.direction_list.setCurrentRow(2)
    assert nav.layer is layer  # same layer, new data
    after = np.asarray(layer.data[:, :, 0])
    a = nav.directions.direction(2)
    np.testing.assert_allclose(after[:, -1], _g(tiny_gan, nav.z + shifts[-1] * a), atol=1e-2)
    assert not np.allclose(after[:, -1], before[:, -1])
    np.testing.assert_allclose(after[:, k0], before[:, k0], atol=1e-2)  # G(z) does not depend on the direction
    nav.window_combo.setCurrentText("bone")
    assert tuple(layer.contrast_limits) == (-500.0, 1500.0)
    copy = nav.copy_to_layer()
    assert copy is not layer and not np.shares_memory(copy.data, layer.data)


def test_threaded_stream_newest_request_wins(make_napari_viewer, threaded_workers, saved_model, tiny_gan, qtbot):
    viewer, nav = _open(make_napari_viewer)
    nav.n_spin.setValue(1)
    with qtbot.waitSignal(nav.stack_complete, timeout=20000):
        nav.load(*saved_model)
    # a burst of changes: only the last one may end up in the layer
    nav.frames_spin.setValue(7)
    nav.direction_list.setCurrentRow(1)
    with qtbot.waitSignal(nav.stack_complete, timeout=20000) as blocker:
        last = nav.direction_list.setCurrentRow(2) or nav.current
    assert blocker.args == [last.ticket]
    shifts = nav.shifts()
    np.testing.assert_allclose(nav.layer.data[0, :, 0], _g(tiny_gan, nav.z + shifts[:, None] * nav.directions.direction(2)), atol=1e-2)
    nav.shutdown()
    assert not nav.feed.thread_alive


def test_encode_ct_slice_with_a_vae(make_napari_viewer, sync_workers):
    from napari_latentdirs.directions.set import DirectionSet
    from napari_latentdirs.models.vae import VAE, vae_config

    torch.manual_seed(0)
    vae = VAE(vae_config("tiny", image_size=32)).eval().requires_grad_(False)
    viewer, nav = _open(make_napari_viewer)
    ct = np.random.default_rng(0).uniform(-1000, 400, (3, 64, 64)).astype(np.float32)
    viewer.add_image(ct, name="ct")
    nav.set_model(vae, DirectionSet(np.eye(vae.latent_dim, 2, dtype=np.float32), "unit"), "vae")
    nav.ct_combo.setCurrentText("ct")
    nav.source_combo.setCurrentIndex(1)
    nav.set_latents_from_source()
    x = nav.current_ct_slice()
    with torch.no_grad():
        expected = vae.encode(torch.from_numpy(x)[None, None]).numpy()
    np.testing.assert_allclose(nav.z, expected, atol=1e-5)
    assert nav.inversion_error is not None and "MSE" in nav.latent_label.text()


def test_bundled_demo_models_load_and_fit_the_budget(make_napari_viewer, sync_workers):
    from napari_latentdirs.analysis.demo import DEMO_NAMES, require_demo

    viewer, nav = _open(make_napari_viewer)
    nav.n_spin.setValue(1)
    nav.frames_spin.setValue(3)
    for name in DEMO_NAMES:
        m = require_demo(name)
        assert m.generator.stat().st_size <= 10 * 1024 * 1024 and m.directions.stat().st_size <= 10 * 1024 * 1024
        nav.demo_combo.setCurrentIndex(DEMO_NAMES.index(name))
        nav._load_clicked()  # no file chosen: the selected demo is offered
        assert nav.model_name == f"demo {name.upper()}" and nav.directions.labels is not None
        assert nav.layer.data.shape == (1, 3, 1, 128, 128)
        assert nav.direction_list.item(0).text().startswith("#0 ")


def test_a_set_that_did_not_learn_is_flagged_and_the_demo_sets_are_not(make_napari_viewer, sync_workers, tmp_path):
    import threading

    from napari_latentdirs.analysis.demo import DEMO_NAMES, require_demo
    from napari_latentdirs.directions.set import LEARNED_RCA, NOT_LEARNED, DirectionSet
    from napari_latentdirs.directions.voynov import DirectionsConfig, train_directions
    from napari_latentdirs.models.registry import load_generator

    viewer, nav = _open(make_napari_viewer)
    nav.n_spin.setValue(1)
    nav.frames_spin.setValue(3)
    for name in DEMO_NAMES:
        m = require_demo(name)
        demo = DirectionSet.load(m.directions)
        assert demo.metrics["rca"] >= LEARNED_RCA and demo.not_learned() is None
        nav.set_model(load_generator(m.generator), demo, f"demo {name}")
        assert NOT_LEARNED not in nav.model_label.text()

    g = load_generator(require_demo("vae").generator)
    cfg = DirectionsConfig(K=32, steps=3, batch_size=4, eval_batches=1, device="cpu", checkpoint_every=0,
                           generator_kind="vae")
    events = list(train_directions(cfg, g, tmp_path / "few", threading.Event()))
    few = DirectionSet.load(events[-1].output)
    assert few.metrics["rca"] < LEARNED_RCA  # three steps learn nothing: the premise of the flag
    nav.set_model(g, few, "three steps")
    # never labelled: not learned, but no labels to blame on the initialisation (issue 19, item 5)
    text = nav.model_label.text()
    assert "directions not learned" in text and NOT_LEARNED not in text and "unlabelled" in text
    assert all(nav.direction_list.item(k).text() == f"#{k} unlabelled" for k in range(few.K))
    labelled = DirectionSet(few.A, few.method, few.generator, ["width"] * few.K, few.metrics, few.meta)
    nav.set_model(g, labelled, "three steps, labelled")
    assert NOT_LEARNED in nav.model_label.text()
