"""A method registered in ``directions.METHODS`` appears in the directions dock and runs from it."""

from __future__ import annotations

import pytest

from napari_latentdirs.directions import MethodSpec, register_method, unregister_method
from napari_latentdirs.directions.set import DirectionSet


@pytest.fixture
def toy():
    import numpy as np

    def toy_method(G, K=None, *, generator="", **_):
        K = K or G.latent_dim
        return DirectionSet(A=np.eye(G.latent_dim, K, dtype=np.float32), method="toy-axes", generator=generator)

    register_method("toy-axes", MethodSpec(toy_method, False, (), "the first K axes", "toy axes"))
    register_method("toy-needs-slices", MethodSpec(toy_method, False, ("slices",), "needs slices", "toy slices"))
    yield
    unregister_method("toy-axes")
    unregister_method("toy-needs-slices")


def test_registered_method_in_dock(make_napari_viewer, sync_workers, tmp_path, saved_model, toy):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Discover directions")
    items = [dock.method_combo.itemText(i) for i in range(dock.method_combo.count())]
    assert {"Voynov & Babenko (learned)", "PCA / GANSpace", "SeFa", "random", "toy axes"} <= set(items)
    assert "toy slices" not in items  # the dock has no real slices to give
    dock.method_combo.setCurrentText("toy axes")
    assert not dock.variant_combo.isEnabled()  # closed-form: the learned settings are off
    dock.generator_edit.value = str(saved_model[0])
    dock.k_spin.setValue(3)
    dock.device_combo.setCurrentText("cpu")
    dock.out_edit.value = str(tmp_path / "runs")
    dock.start()
    assert dock.state == "finished", dock.status.text()
    ds = DirectionSet.load(dock.output)
    assert ds.method == "toy-axes" and ds.K == 3
