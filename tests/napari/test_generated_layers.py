"""Generated stacks beside a real CT (issue 12, part 3) and what the navigator names (part 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_latentdirs.analysis.demo import require_demo
from napari_latentdirs.analysis.navigation import model_pixel_mm, window_limits
from napari_latentdirs.data.preprocess import DEFAULT, Preprocessing


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory):
    from napari_latentdirs.phantom.tree import write_phantom_tree

    out = tmp_path_factory.mktemp("ct")
    write_phantom_tree(out, patients=1, seed=5, matrix=64, n_slices=8, workers=1)
    return out


def _viewer_with_ct(make_napari_viewer, ct_folder):
    viewer = make_napari_viewer()
    [ct] = viewer.open(str(ct_folder), plugin="napari-latentdirs", stack=False)
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    return viewer, ct, nav


def _edges(layer):
    from napari_latentdirs._napari.placement import _yx_bounds

    return _yx_bounds(layer)


def _ct_slice(viewer, ct):
    return int(np.round(ct.world_to_data(viewer.dims.point)[0]))


def test_stack_sits_beside_the_ct_on_axes_of_its_own(make_napari_viewer, sync_workers, ct_folder):
    viewer, ct, nav = _viewer_with_ct(make_napari_viewer, ct_folder)
    nav.n_spin.setValue(2)
    nav.load_demo("vae")
    nav.frames_spin.setValue(5)
    stack = nav.layer
    # mm scale of the model's pixels, and no overlap with the CT in the world
    px = model_pixel_mm(128)
    np.testing.assert_allclose(stack.scale[-2:], (px, px))
    cy0, cy1, cx0, cx1 = _edges(ct)
    sy0, sy1, sx0, sx1 = _edges(stack)
    assert sx0 > cx1 and sy0 == pytest.approx(cy0)
    # named axes in front of the CT's; stepping them never moves the CT's slice
    labels = viewer.dims.axis_labels
    assert labels[:2] == ("latent", "shift α") and viewer.dims.ndim == 5
    z_axis = viewer.dims.ndim - 3
    viewer.dims.set_current_step(z_axis, 6)
    assert _ct_slice(viewer, ct) == 6
    for s in range(5):
        viewer.dims.set_current_step(1, s)
        viewer.dims.set_current_step(0, s % 2)
        assert _ct_slice(viewer, ct) == 6
        # the frame on screen is the stack's frame at that shift, at every CT slice
        np.testing.assert_array_equal(np.asarray(stack._slice.image.raw), stack.data[s % 2, s, 0])
        assert nav.alpha_label.text().startswith(f"shift α = {nav.shifts()[s]:+.2f}")
    for z in (0, 7):
        viewer.dims.set_current_step(z_axis, z)
        assert _ct_slice(viewer, ct) == z and stack._slice.image.raw.size > 1  # still shown
    # contrast follows the window and stays adjustable over the whole HU range
    assert tuple(stack.contrast_limits) == window_limits("lung")
    nav.window_combo.setCurrentText("mediastinum")
    assert tuple(stack.contrast_limits) == window_limits("mediastinum")
    lo, hi = stack.contrast_limits_range
    assert lo <= -1350 and hi >= 2000
    stack.contrast_limits = (400.0, 1800.0)
    assert tuple(stack.contrast_limits) == (400.0, 1800.0)


def test_encode_uses_the_ct_slice_on_screen(make_napari_viewer, sync_workers, ct_folder):
    viewer, ct, nav = _viewer_with_ct(make_napari_viewer, ct_folder)
    nav.n_spin.setValue(1)
    nav.load_demo("vae")
    vae = nav.generator
    z_axis = viewer.dims.ndim - 3
    nav.ct_combo.setCurrentText(ct.name)
    nav.source_combo.setCurrentIndex(1)
    codes = {}
    for k in (2, 5):
        viewer.dims.set_current_step(z_axis, k)
        viewer.dims.set_current_step(1, 3)  # a shift index that is not the slice index
        nav.set_latents_from_source()
        x = Preprocessing(size=128)(np.asarray(ct.data[k], dtype=np.float32))
        with torch.no_grad():
            want = vae.encode(torch.from_numpy(x)[None, None]).numpy()
        np.testing.assert_allclose(nav.z, want, atol=1e-5)
        codes[k] = nav.z.copy()
        assert _ct_slice(viewer, ct) == k
    assert not np.allclose(codes[2], codes[5])


def test_training_samples_and_review_stack_also_sit_apart(make_napari_viewer, sync_workers, ct_folder):
    from napari_latentdirs._napari.placement import is_generated

    viewer, ct, nav = _viewer_with_ct(make_napari_viewer, ct_folder)
    nav.n_spin.setValue(1)
    nav.frames_spin.setValue(3)
    nav.load_demo("gan")
    _, train = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Train generator")
    # a barely trained model's samples sit near +500 HU: visible through the adjustable range
    train.show_samples(np.full((8, 32, 32), DEFAULT.hu_to_model(np.array(500.0)), dtype=np.float32))
    samples = viewer.layers["training samples"]
    assert samples.ndim == 3 and is_generated(samples)
    np.testing.assert_allclose(samples.scale[-2:], (model_pixel_mm(32),) * 2)
    train.window_combo.setCurrentText("bone")
    assert tuple(samples.contrast_limits) == window_limits("bone")  # 500 HU is mid-grey there
    _, rev = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Review directions")
    m = require_demo("gan")
    rev.n_latents.setValue(1)
    rev.frames_spin.setValue(3)
    rev.start(m.generator, m.directions)
    boxes = [_edges(ly) for ly in (ct, nav.layer, samples, rev.layer)]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            assert a[3] < b[2] or b[3] < a[2], (i, j, a, b)  # side by side in x, never on top
    z_axis = viewer.dims.ndim - 3
    viewer.dims.set_current_step(z_axis, 4)
    viewer.dims.set_current_step(1, 2)
    assert _ct_slice(viewer, ct) == 4
    assert rev.alpha_label.text().startswith("shift α = ")


def test_switching_demo_models_newest_wins(make_napari_viewer, threaded_workers, qtbot):
    viewer = make_napari_viewer()
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    nav.n_spin.setValue(2)
    nav.frames_spin.setValue(5)
    complete: list[int] = []
    nav.stack_complete.connect(complete.append)
    for _ in range(2):  # the issue saw it stuck 2 of 2 times
        nav.load_demo("gan")  # loads in the background (issue 19, item 7)
        qtbot.waitUntil(lambda: nav.model_name == "demo GAN" and nav.current is not None, timeout=60000)
        nav.load_demo("vae")  # while the GAN's stack is still streaming
        qtbot.waitUntil(lambda: nav.model_name == "demo VAE" and nav.current is not None
                        and nav.current.ticket in complete, timeout=60000)
        assert "VAE" in nav.model_label.text()
        shifts = nav.shifts()
        k = nav.direction_index()
        with torch.no_grad():
            z = torch.from_numpy(nav.z[:, None, :] + shifts[None, :, None] * nav.directions.direction(k)[None, None])
            want = DEFAULT.model_to_hu(nav.generator.generate(z.reshape(-1, z.shape[-1]))[:, 0].numpy())
        np.testing.assert_allclose(nav.layer.data[:, :, 0].reshape(-1, 128, 128), want, atol=1e-2)
    nav.shutdown()


def _run_folder(tmp_path, tiny_gan, tiny_dirs):
    """A `latentdirs run`-shaped folder: manifest, direction set, automatic labels."""
    from napari_latentdirs.analysis.labelling import LabelResult
    from napari_latentdirs.directions.set import DirectionSet
    from napari_latentdirs.models.registry import generator_fingerprint, save_generator

    run = tmp_path / "myrun"
    g = save_generator(run / "generators" / "gan" / "generator.safetensors", tiny_gan)
    ds = DirectionSet(tiny_dirs.A, "unit", generator_fingerprint(g))  # no labels in the set itself
    dpath = ds.save(run / "directions" / "gan-lenet-unit32" / "directions.safetensors")
    (run / "manifest.json").write_text(json.dumps({"sets": {"gan-lenet-unit32": {"path": "/elsewhere/myrun/directions/gan-lenet-unit32/directions.safetensors"}}}))
    K, F = ds.K, 2
    z = np.zeros((K, F))
    res = LabelResult(factors=["width", "z_level"], probe_set="phantom", method="unit", effects=z, signed=z, ci_low=z,
                      ci_high=z, significant=z, selectivity=np.array([0.31, 0.82, 0.5]), consistency=np.ones(K),
                      image_change=np.ones(K), labels=["entangled", "z_level", "width"], top_factor=["width", "z_level", "width"],
                      score=np.ones(K), rank=np.arange(1, K + 1), groups=[], factor_sd=np.ones(F), config={})
    res.save(run / "analysis" / "labels" / "gan-lenet-unit32.json")
    return g, dpath


def test_main_job_sets_show_index_label_selectivity_and_run(make_napari_viewer, sync_workers, tmp_path, tiny_gan, tiny_dirs):
    g, dpath = _run_folder(tmp_path, tiny_gan, tiny_dirs)
    viewer = make_napari_viewer()
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    nav.n_spin.setValue(1)
    nav.load(g, dpath)
    assert [nav.direction_list.item(k).text() for k in range(3)] == [
        "#0 entangled (selectivity 0.31)", "#1 z_level (selectivity 0.82)", "#2 width (selectivity 0.50)"]
    assert "run myrun / gan-lenet-unit32" in nav.model_label.text() and nav.model_name == "gan"
    assert not nav.fingerprint_mismatch and "⚠" not in nav.model_label.text()


def test_a_set_for_another_generator_gives_a_warning(make_napari_viewer, sync_workers, tmp_path, saved_model, tiny_gan):
    from napari.utils.notifications import notification_manager

    from napari_latentdirs.models.registry import save_generator

    other = tiny_gan.__class__(tiny_gan.cfg)
    other_path = save_generator(tmp_path / "other.safetensors", other)
    viewer = make_napari_viewer()
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    nav.n_spin.setValue(1)
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        nav.load(saved_model[0], saved_model[1])
        assert not nav.fingerprint_mismatch and not any("another generator" in str(n.message) for n in seen)
        nav.load(other_path, saved_model[1])
        assert nav.fingerprint_mismatch and "⚠" in nav.model_label.text()
        assert any("another generator" in str(n.message) for n in seen)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)


def test_exported_gif_frames_carry_their_shift(make_napari_viewer, sync_workers, saved_model, tmp_path):
    from napari_latentdirs.analysis import export as ex
    from napari_latentdirs.analysis.annotate import stamp_alpha

    viewer = make_napari_viewer()
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    nav.n_spin.setValue(1)
    nav.load(*saved_model)
    nav.frames_spin.setValue(5)
    for scale in (1, 3):  # the GIF's scale option (issue 19: 128 px was too small for a slide)
        nav.scale_spin.setValue(scale)
        nav.export(tmp_path / f"sweep{scale}.gif", ".gif")
        [path] = nav.last_export
        frames = ex.read_animation(path)
        plain = ex.to_uint8(nav.layer.data[0, :, 0], "lung")
        plain = plain.repeat(scale, axis=-2).repeat(scale, axis=-1)
        shifts = nav.shifts()
        want = ex.ping_pong(stamp_alpha(plain, shifts.tolist()))
        assert frames.shape[-2:] == (32 * scale, 32 * scale)
        np.testing.assert_array_equal(frames, want)
    # the stamp is visible: the frames at -α and +α differ where the text is, not elsewhere
    assert not np.array_equal(want[0], ex.ping_pong(plain)[0])
    a, b = stamp_alpha(plain[[0, 0]], [-6.0, 6.0])
    assert not np.array_equal(a, b)
