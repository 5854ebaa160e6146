"""Building blocks shared by the DCGAN and the ResNet-VAE.

The residual blocks follow the reference code's ``Res_down`` / ``Res_up``
(average pooling down, nearest-neighbour up, a 3x3 skip convolution). The
reference activates with ``F.rrelu`` *without* ``training=True``, which in
PyTorch is a deterministic leaky ReLU with slope (1/8 + 1/3) / 2; we use that
slope explicitly so the network is the same and needs no random numbers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

RRELU_EVAL_SLOPE = (1.0 / 8.0 + 1.0 / 3.0) / 2.0


def act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, RRELU_EVAL_SLOPE)


def dcgan_init_(module: nn.Module) -> None:
    """Radford et al.: conv weights N(0, 0.02); BatchNorm weights N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ResDown(nn.Module):
    """Residual block halving the spatial size (average pooling)."""

    def __init__(self, c_in: int, c_out: int, scale: int = 2) -> None:
        super().__init__()
        mid = max(c_out // 2, 1)
        self.conv1 = nn.Conv2d(c_in, mid, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, c_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.pool = nn.AvgPool2d(scale, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(self.pool(x))
        x = act(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(self.pool(x)))
        return act(x + skip)


class ResUp(nn.Module):
    """Residual block doubling the spatial size (nearest-neighbour upsampling)."""

    def __init__(self, c_in: int, c_out: int, scale: int = 2) -> None:
        super().__init__()
        mid = max(c_out // 2, 1)
        self.conv1 = nn.Conv2d(c_in, mid, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, c_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.up = nn.Upsample(scale_factor=scale, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(self.up(x))
        x = act(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(self.up(x)))
        return act(x + skip)


def as_latent_2d(z: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """Accept z as (B, d) or (B, d, 1, 1); return (B, d, 1, 1)."""
    if z.ndim == 2:
        z = z[:, :, None, None]
    if z.ndim != 4 or z.shape[1] != latent_dim or z.shape[2:] != (1, 1):
        raise ValueError(f"expected z of shape (B, {latent_dim}) or (B, {latent_dim}, 1, 1), got {tuple(z.shape)}")
    return z
