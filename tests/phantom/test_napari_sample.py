"""The sample-data contribution opens through napari's plugin machinery."""

from __future__ import annotations

import numpy as np


def test_open_sample_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-latentdirs", "synthetic_thorax")
    assert len(viewer.layers) == 1
    layer = viewer.layers[0]
    assert layer.name == "Synthetic thorax CT"
    assert layer.data.ndim == 3
    assert np.all(np.asarray(layer.scale) > 0) and layer.scale[0] != 1.0
