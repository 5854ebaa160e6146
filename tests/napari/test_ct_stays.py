"""The CT stays on the slice the user chose whatever generated layers come and go (issue 19, item 1)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from napari_latentdirs.analysis.demo import require_demo
from napari_latentdirs.data.preprocess import DEFAULT

CHOSEN = 47  # heart level of the 96-slice sample; the bug jumped to 95


def _ct_slice(viewer, ct):
    return int(np.round(ct.world_to_data(viewer.dims.point)[0]))


def _rendered(ct) -> bool:
    return bool((np.asarray(ct.data).reshape(len(ct.data), -1).max(1) > -1000).all())


def test_open_sample_returns_at_once_and_fills_in(make_napari_viewer, qtbot):
    """Open Sample froze napari for seconds (issue 19, item 7): the slices render in the background."""
    import time

    viewer = make_napari_viewer()
    t0 = time.perf_counter()
    [ct] = viewer.open_sample("napari-latentdirs", "synthetic_thorax")
    assert not _rendered(ct)  # returned before the 96 slices were drawn
    assert time.perf_counter() - t0 < 5.0
    qtbot.waitUntil(lambda: _rendered(ct), timeout=120000)
    from napari_latentdirs._napari.sample_data import synthetic_thorax_volume

    hu, spacing, _ = synthetic_thorax_volume()
    np.testing.assert_array_equal(np.asarray(ct.data), hu)  # the same volume as rendered in one go
    np.testing.assert_allclose(ct.scale, spacing)


def test_generated_layers_never_move_the_ct(make_napari_viewer, sync_workers, qtbot):
    viewer = make_napari_viewer()
    [ct] = viewer.open_sample("napari-latentdirs", "synthetic_thorax")
    qtbot.waitUntil(lambda: _rendered(ct), timeout=120000)
    viewer.dims.set_current_step(0, CHOSEN)
    assert _ct_slice(viewer, ct) == CHOSEN
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    nav.n_spin.setValue(2)
    nav.frames_spin.setValue(5)
    nav.load_demo("gan")  # the navigator's stack layer appears
    assert nav.layer is not None and nav.layer in viewer.layers
    assert _ct_slice(viewer, ct) == CHOSEN
    copy = nav.copy_to_layer()  # copy to new layer
    assert _ct_slice(viewer, ct) == CHOSEN
    _, train = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Train generator")
    train.show_samples(np.zeros((8, 32, 32), dtype=np.float32))  # the training-samples layer
    assert "training samples" in viewer.layers
    assert _ct_slice(viewer, ct) == CHOSEN
    _, rev = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Review directions")
    m = require_demo("gan")
    rev.n_latents.setValue(1)
    rev.frames_spin.setValue(3)
    rev.start(m.generator, m.directions)  # the review stack
    assert rev.layer in viewer.layers
    assert _ct_slice(viewer, ct) == CHOSEN
    for layer in (copy, viewer.layers["training samples"], rev.layer):  # and removing them
        viewer.layers.remove(layer)
        assert _ct_slice(viewer, ct) == CHOSEN
    # the encoded slice is the one the user chose, not the last one
    nav.ct_combo.setCurrentText(ct.name)
    x = nav.current_ct_slice()
    prep = replace(DEFAULT, size=nav.frame_shape[0])
    np.testing.assert_allclose(x, prep(np.asarray(ct.data[CHOSEN], dtype=np.float32)), atol=1e-6)
    assert not np.allclose(x, prep(np.asarray(ct.data[-1], dtype=np.float32)), atol=1e-3)
    nav.source_combo.setCurrentIndex(2)  # invert (GAN): runs on that slice
    nav.inversion_steps = 5
    nav.set_latents_from_source()
    assert nav.z is not None and nav.z.shape == (1, nav.generator.latent_dim)
    assert _ct_slice(viewer, ct) == CHOSEN
    nav.shutdown()
    rev.shutdown()
