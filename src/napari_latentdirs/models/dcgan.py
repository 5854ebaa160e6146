"""The paper's DCGAN for 128x128 single-channel CT slices (latent d = 32).

Generator: ConvTranspose-BatchNorm-ReLU from z (as a 1x1 map) to 16*width
channels at 4x4, halving the channels while doubling the size up to
``width`` channels at 64x64, then a ConvTranspose to one channel and tanh.
At the paper width (128) that is 32 -> 2048@4 -> 1024@8 -> 512@16 -> 256@32
-> 128@64 -> 1@128, about 45M parameters. The discriminator mirrors it with
LeakyReLU(0.2), no BatchNorm after the first convolution, and a raw logit
output (the loss is BCEWithLogits).

Upsampling (``g_upsample``): ``transposed`` is the paper's stride-2 transposed convolution,
whose uneven kernel overlap draws a checkerboard (Odena et al. 2016, "Deconvolution and
Checkerboard Artifacts"). ``nearest`` / ``bilinear`` resize first and then convolve 3x3
(resize-convolution, every output pixel sees the same number of taps); ``subpixel`` is a 3x3
convolution to 4x the channels and a pixel shuffle, initialised with ICNR (Aitken et al. 2017)
so that at initialisation it equals nearest-neighbour resize-convolution.

Ranges: ``generate(z)`` returns model space [-1, 1] (see ``data.preprocess``,
whose ``model_to_hu`` is the exact inverse to HU).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .blocks import as_latent_2d, dcgan_init_

KIND = "dcgan"
UPSAMPLING = ("transposed", "nearest", "bilinear", "subpixel")


@dataclass(frozen=True)
class DCGANConfig:
    latent_dim: int = 32
    g_width: int = 128  # generator channels at 64x64 (reference ``ngf``)
    d_width: int = 128  # discriminator channels at 64x64 (reference ``ndf``)
    image_size: int = 128
    channels: int = 1
    # The discriminator's normalisation: "batch" (the paper's DCGAN) or "none" (what an R1
    # penalty needs: a per-sample gradient, not one mixed through batch statistics).
    d_norm: str = "batch"
    # Minibatch standard deviation (Karras et al. 2018) before D's last layer: D sees how
    # varied a batch is, which counters mode collapse.
    d_mbstd: bool = False
    # How G doubles its feature maps: the paper's "transposed" convolution, or a checkerboard-free
    # "nearest" / "bilinear" resize-convolution or "subpixel" (ICNR) convolution.
    g_upsample: str = "transposed"

    def __post_init__(self) -> None:
        n = math.log2(self.image_size)
        if self.image_size < 16 or n != int(n):
            raise ValueError(f"image_size must be a power of two >= 16, got {self.image_size}")
        if min(self.latent_dim, self.g_width, self.d_width, self.channels) < 1:
            raise ValueError(f"all sizes must be positive: {self}")
        if self.d_norm not in ("batch", "none"):
            raise ValueError(f"d_norm must be 'batch' or 'none', got {self.d_norm!r}")
        if self.g_upsample not in UPSAMPLING:
            raise ValueError(f"g_upsample must be one of {UPSAMPLING}, got {self.g_upsample!r}")

    @property
    def levels(self) -> int:
        """Feature-map levels between 4x4 and image_size/2 inclusive (5 for 128)."""
        return int(math.log2(self.image_size)) - 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DCGANConfig:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


PRESETS: dict[str, DCGANConfig] = {
    "paper": DCGANConfig(),
    # Narrow channels, same 128x128 geometry: for CPU tests and demos.
    "tiny": DCGANConfig(g_width=4, d_width=4),
    # The CPU recipe (training/recipes.py): a 16-wide G that resizes then convolves (no
    # checkerboard), a lighter D without BatchNorm and with minibatch standard deviation.
    "cpu": DCGANConfig(g_width=16, d_width=8, d_norm="none", d_mbstd=True, g_upsample="bilinear"),
}


def dcgan_config(preset: str = "paper", **overrides) -> DCGANConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown DCGAN preset {preset!r}; choose from {sorted(PRESETS)}")
    return DCGANConfig(**{**PRESETS[preset].to_dict(), **overrides})


class SubPixelUp(nn.Module):
    """3x3 convolution to 4x the channels, then a 2x pixel shuffle."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out * 4, 3, 1, 1, bias=False)
        self.shuffle = nn.PixelShuffle(2)

    @torch.no_grad()
    def icnr_(self) -> None:
        """ICNR: the four sub-pixel kernels of each output channel start equal, so the layer
        starts as nearest-neighbour resize-convolution (no checkerboard at initialisation)."""
        w = self.conv.weight  # (c_out * 4, c_in, 3, 3), sub-pixel index fastest
        base = w[::4].clone()
        w.copy_(base.repeat_interleave(4, dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def upsample_x2(c_in: int, c_out: int, mode: str) -> nn.Module:
    """One doubling of G's feature maps (see the module docstring for the modes)."""
    if mode == "transposed":
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
    if mode == "subpixel":
        return SubPixelUp(c_in, c_out)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode),
                         nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))


class Generator(nn.Module):
    def __init__(self, cfg: DCGANConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DCGANConfig()
        self.latent_dim = cfg.latent_dim
        widths = [cfg.g_width * 2 ** (cfg.levels - 1 - i) for i in range(cfg.levels)]
        # The module applied directly to z (B, d, 1, 1); SeFa / GANSpace read its weight.
        self.first_layer = nn.ConvTranspose2d(cfg.latent_dim, widths[0], 4, 1, 0, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [upsample_x2(c_in, c_out, cfg.g_upsample), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [upsample_x2(widths[-1], cfg.channels, cfg.g_upsample), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)
        for m in self.modules():
            if isinstance(m, SubPixelUp):
                m.icnr_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(self.first_layer(as_latent_2d(z, self.latent_dim)))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d) latents -> (B, 1, H, W) images in [-1, 1]; differentiable in z."""
        return self.forward(z)


class MinibatchStd(nn.Module):
    """Appends one channel: the batch's mean per-feature standard deviation (Karras et al. 2018)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sd = x.float().std(dim=0, unbiased=False).mean().to(x.dtype)
        return torch.cat([x, sd.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


class Discriminator(nn.Module):
    def __init__(self, cfg: DCGANConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DCGANConfig()
        widths = [cfg.d_width * 2**i for i in range(cfg.levels)]
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            norm = [nn.BatchNorm2d(c_out)] if cfg.d_norm == "batch" else []
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), *norm, nn.LeakyReLU(0.2, inplace=True)]
        if cfg.d_mbstd:
            layers += [MinibatchStd(), nn.Conv2d(widths[-1] + 1, 1, 4, 1, 0, bias=False)]
        else:
            layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [-1, 1] -> (B,) logits."""
        return self.main(x).reshape(-1)


def build_dcgan(cfg: DCGANConfig | None = None) -> tuple[Generator, Discriminator]:
    cfg = cfg or DCGANConfig()
    return Generator(cfg), Discriminator(cfg)
