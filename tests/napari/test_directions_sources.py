"""Every generator source and method the directions dock offers, end to end; the user's own
generator (module:factory + weights) in the directions dock and the navigator (issue 12, parts 2 and 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_latentdirs.directions.set import DirectionSet

HERE = __name__


class UserG(nn.Module):
    """A user's generator: 5 latents -> (B, 1, 32, 32) in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 5
        self.fc = nn.Linear(5, 8 * 8)
        self.up = nn.Upsample(scale_factor=4)

    def forward(self, z):
        return torch.tanh(self.up(self.fc(z).view(-1, 1, 8, 8)) * 3)


def make_g():
    torch.manual_seed(0)
    return UserG()


def make_bad():
    g = UserG()
    g.latent_dim = "five"
    return g


CASES = [  # (generator, method, A columns, reconstructor)
    ("file", "Voynov & Babenko (learned)", "unit", "lenet"),
    ("demo GAN", "PCA / GANSpace", None, None),
    ("demo VAE", "Voynov & Babenko (learned)", "ortho", "resnet18"),
    ("factory", "SeFa", None, None),
    ("factory", "Voynov & Babenko (learned)", "random", "lenet"),
    ("file", "random", None, None),
]


@pytest.mark.parametrize(("source", "method", "variant", "recon"), CASES)
def test_every_generator_source_and_method(make_napari_viewer, sync_workers, tmp_path, saved_model, source, method,
                                           variant, recon):
    from safetensors.torch import save_file

    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Discover directions")
    if source == "file":
        dock.generator_edit.value = str(saved_model[0])
    elif source == "factory":
        g = make_g()
        with torch.no_grad():
            g.fc.weight.mul_(2)
        save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(tmp_path / "w.safetensors"))
        dock.factory_edit.setText(f"{HERE}:make_g")
        dock.weights_edit.value = str(tmp_path / "w.safetensors")
    else:
        dock.demo_combo.setCurrentText(source)
    dock.method_combo.setCurrentText(method)
    if variant:
        dock.variant_combo.setCurrentText(variant)
        dock.recon_combo.setCurrentText(recon)
    dock.k_spin.setValue(3)
    dock.steps_spin.setValue(2)
    dock.batch_spin.setValue(4)
    dock.device_combo.setCurrentText("cpu")
    dock.out_edit.value = str(tmp_path / "runs")
    dock.start()
    assert dock.state == "finished", dock.status.text()
    ds = DirectionSet.load(dock.output)
    assert ds.K == 3
    if source == "factory":
        from napari_latentdirs.directions.voynov import resolve_generator

        assert ds.latent_dim == 5
        assert ds.generator == resolve_generator(f"{HERE}:make_g", weights=tmp_path / "w.safetensors")[1]
    if variant:
        assert "direction samples" in viewer.layers and "RCA" in dock.metrics_label.text()


def test_a_wrong_factory_is_a_message_before_start(make_napari_viewer, sync_workers, tmp_path):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Discover directions")
    dock.out_edit.value = str(tmp_path / "runs")
    for spec, message in ((f"{HERE}:make_bad", "latent_dim"), ("not a spec", "package.module:factory"),
                          ("no_such_mod:make", "cannot import")):
        dock.factory_edit.setText(spec)
        dock.start()
        assert dock.state == "failed" and message in dock.status.text(), dock.status.text()
        assert not (tmp_path / "runs").exists()


def test_navigator_takes_a_factory_beside_select_file(make_napari_viewer, sync_workers, tmp_path):
    viewer = make_napari_viewer()
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    A = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))[0][:, :2]
    DirectionSet(A, "unit").save(tmp_path / "d.safetensors")
    nav.factory_edit.setText(f"{HERE}:make_g")
    nav.directions_edit.value = str(tmp_path / "d.safetensors")
    nav.n_spin.setValue(2)
    nav.frames_spin.setValue(3)
    nav._load_clicked()
    assert nav.model_name == f"{HERE}:make_g" and nav.generator.latent_dim == 5
    assert nav.layer.data.shape == (2, 3, 1, 32, 32)
    with torch.no_grad():
        from napari_latentdirs.data.preprocess import DEFAULT

        want = DEFAULT.model_to_hu(make_g()(torch.from_numpy(nav.z))[:, 0].numpy())
    k0 = int(np.flatnonzero(nav.shifts() == 0)[0])
    np.testing.assert_allclose(nav.layer.data[:, k0, 0], want, atol=1e-2)
