"""The DCGAN generator's upsampling: the paper's transposed convolutions, or checkerboard-free
resize-convolution / sub-pixel convolution (models/dcgan.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_latentdirs.analysis.quality import checkerboard_power
from napari_latentdirs.models.dcgan import (
    UPSAMPLING,
    DCGANConfig,
    Generator,
    SubPixelUp,
    dcgan_config,
)


@pytest.mark.parametrize("mode", UPSAMPLING)
def test_every_mode_draws_128px_slices(mode):
    torch.manual_seed(0)
    g = Generator(dcgan_config("tiny", g_upsample=mode))
    x = g.generate(torch.randn(3, 32))
    assert x.shape == (3, 1, 128, 128)
    assert x.abs().max() <= 1.0


def test_paper_keeps_transposed_convolutions_and_the_cpu_recipe_resizes():
    paper = Generator(dcgan_config("paper", g_width=4))
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in paper.main.modules()) == 5
    cpu = Generator(dcgan_config("cpu"))
    assert dcgan_config("cpu").g_upsample != "transposed"
    # Only the 1x1 -> 4x4 projection of z stays a transposed convolution.
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in cpu.main.modules())
    assert isinstance(cpu.first_layer, nn.ConvTranspose2d)


def test_files_without_the_setting_load_as_transposed():
    old = {k: v for k, v in DCGANConfig(g_width=4).to_dict().items() if k != "g_upsample"}
    assert DCGANConfig.from_dict(old).g_upsample == "transposed"
    with pytest.raises(ValueError, match="g_upsample"):
        DCGANConfig(g_upsample="deconv")


def test_icnr_starts_subpixel_as_nearest_resize_convolution():
    torch.manual_seed(0)
    up = SubPixelUp(3, 2)
    up.icnr_()
    y = up(torch.randn(1, 3, 8, 8))
    # Each 2x2 block of the output comes from one kernel: the four sub-pixels agree.
    assert torch.allclose(y[..., 0::2, 0::2], y[..., 1::2, 1::2])
    assert torch.allclose(y[..., 0::2, 0::2], y[..., 0::2, 1::2])


def test_resize_convolution_draws_less_grid_than_transposed_at_initialisation():
    """At initialisation (random weights) a transposed-convolution G already puts power at the
    checkerboard frequencies; resize-convolution does not (Odena et al. 2016)."""
    z = torch.randn(16, 32, generator=torch.Generator().manual_seed(1))
    power = {}
    for mode in ("transposed", "nearest", "bilinear"):
        torch.manual_seed(0)
        g = Generator(dcgan_config("tiny", g_upsample=mode)).eval()
        with torch.no_grad():
            power[mode] = float(checkerboard_power(g.generate(z)[:, 0].numpy()).mean())
    assert power["nearest"] < power["transposed"] / 5
    assert power["bilinear"] < power["transposed"] / 5
