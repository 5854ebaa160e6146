"""DCGAN and ResNet-VAE: shapes, ranges, the shared interface, initialisation, sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_latentdirs.models.dcgan import (
    DCGANConfig,
    Generator,
    build_dcgan,
    dcgan_config,
)
from napari_latentdirs.models.interface import LatentEncoder, LatentGenerator
from napari_latentdirs.models.vae import VAE, kl_divergence, vae_config, vae_loss


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_dcgan_paper_layout_and_size():
    G, D = build_dcgan(dcgan_config("paper"))
    # 32 -> 2048 channels at 4x4, halving up to 128 channels at 64x64, then 1 channel.
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [2048, 1024, 512, 256, 128, 1]
    assert convs[0] is G.first_layer and G.first_layer.in_channels == 32
    dconvs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in dconvs] == [128, 256, 512, 1024, 2048, 1]
    # no BatchNorm straight after the discriminator's first convolution
    assert isinstance(D.main[1], nn.LeakyReLU) and D.main[1].negative_slope == 0.2
    assert 44e6 < n_params(G) < 47e6 and 43e6 < n_params(D) < 47e6


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    G = Generator(dcgan_config("paper"))
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    bn = torch.cat([m.weight for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1.0) < 5e-3 and abs(bn.std().item() - 0.02) < 5e-3


def test_dcgan_interface_tiny():
    G, D = build_dcgan(dcgan_config("tiny"))
    assert isinstance(G, LatentGenerator) and G.latent_dim == 32
    z = torch.randn(3, 32, requires_grad=True)
    x = G.generate(z)
    assert x.shape == (3, 1, 128, 128) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(G.generate(z.detach()[:, :, None, None]), x.detach())
    x.sum().backward()  # generate is differentiable in z (direction discovery needs this)
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert D(x.detach()).shape == (3,)
    with pytest.raises(ValueError, match="expected z"):
        G.generate(torch.randn(2, 16))


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        DCGANConfig(image_size=100)
    with pytest.raises(ValueError, match="unknown"):
        dcgan_config("huge")


def test_vae_layout_and_interface():
    cfg = vae_config("paper")
    v = VAE(cfg)
    assert v.latent_dim == 32 and isinstance(v.first_layer, nn.ConvTranspose2d)
    assert [b.conv2.out_channels for b in v.encoder.blocks] == [64, 128, 256, 512, 512]
    assert [b.conv2.out_channels for b in v.decoder.blocks] == [512, 512, 256, 128, 64, 32]
    tiny = VAE(vae_config("tiny"))
    assert isinstance(tiny, LatentGenerator) and isinstance(tiny, LatentEncoder)
    x = torch.rand(4, 1, 128, 128) * 2 - 1
    mu = tiny.encode(x)
    assert mu.shape == (4, 32)
    y = tiny.generate(mu)
    assert y.shape == (4, 1, 128, 128) and y.abs().max() <= 1
    # first_layer really is the op applied to z: perturbing its weight changes the output
    with torch.no_grad():
        tiny.first_layer.weight.add_(0.5)
    assert not torch.allclose(tiny.generate(mu), y)


def test_vae_forward_uses_given_generator():
    v = VAE(vae_config("tiny")).train()
    x = torch.rand(2, 1, 128, 128) * 2 - 1
    r1 = v(x, generator=torch.Generator().manual_seed(1))[0]
    r2 = v(x, generator=torch.Generator().manual_seed(1))[0]
    r3 = v(x, generator=torch.Generator().manual_seed(2))[0]
    assert torch.equal(r1, r2) and not torch.equal(r1, r3)
    eps = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(v(x, eps=eps)[0], r1)


def test_vae_loss_terms():
    mu = torch.zeros(5, 32)
    logvar = torch.zeros(5, 32)
    assert kl_divergence(mu, logvar).item() == 0.0
    mu2 = torch.full((5, 32), 2.0)
    assert kl_divergence(mu2, logvar).item() == pytest.approx(2.0)  # 0.5 * mu^2 per dim
    x = torch.zeros(2, 1, 8, 8)
    loss, mse, kl = vae_loss(x + 0.1, x, mu2[:2], logvar[:2], beta=0.01)
    assert mse.item() == pytest.approx(0.01)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(0.01)).item() + 0.01 * 2.0, rel=1e-5)
