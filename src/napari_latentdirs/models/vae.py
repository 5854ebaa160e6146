"""The paper's ResNet-VAE for 128x128 single-channel CT slices (latent d = 32).

Encoder: residual down blocks 128 -> 64 -> 32 -> 16 -> 8 -> 4 with
ch, 2ch, 4ch, 8ch, 8ch channels, then two 4x4/stride-4 convolutions give
``mu`` and ``logvar`` (B, d, 1, 1). Decoder (the generator G used downstream):
from z as a 1x1 map, residual up blocks back to 128x128 with 16ch, 8ch, 8ch,
4ch, 2ch, ch, ch/2 channels, a 3x3 convolution to one channel and tanh.

One deliberate change to the reference decoder: its first step on z is a
residual up block (two non-linear branches). Here the first op on z is a
single ``ConvTranspose2d(d, 16ch, 2)`` (1x1 -> 2x2) followed by BatchNorm and
the activation, so ``first_layer`` is a linear map of z that SeFa / GANSpace
can factorise; the remaining six up blocks are the reference's.

Ranges: ``encode`` takes model space [-1, 1]; ``generate`` returns it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .blocks import ResDown, ResUp, act, as_latent_2d

KIND = "vae"


@dataclass(frozen=True)
class VAEConfig:
    latent_dim: int = 32
    width: int = 64  # reference ``ch``
    image_size: int = 128
    channels: int = 1

    def __post_init__(self) -> None:
        n = math.log2(self.image_size)
        if self.image_size < 16 or n != int(n):
            raise ValueError(f"image_size must be a power of two >= 16, got {self.image_size}")
        if self.width < 2 or min(self.latent_dim, self.channels) < 1:
            raise ValueError(f"sizes too small: {self}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


PRESETS: dict[str, VAEConfig] = {
    "paper": VAEConfig(),
    "tiny": VAEConfig(width=4),
    "cpu": VAEConfig(width=8),  # the CPU recipe (training/recipes.py)
}


def vae_config(preset: str = "paper", **overrides) -> VAEConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown VAE preset {preset!r}; choose from {sorted(PRESETS)}")
    return VAEConfig(**{**PRESETS[preset].to_dict(), **overrides})


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        n_down = int(math.log2(cfg.image_size)) - 2  # to 4x4
        widths = [cfg.width * min(2**i, 8) for i in range(n_down)]
        blocks = [ResDown(cfg.channels, widths[0])]
        blocks += [ResDown(a, b) for a, b in zip(widths[:-1], widths[1:])]
        self.blocks = nn.Sequential(*blocks)
        self.conv_mu = nn.Conv2d(widths[-1], cfg.latent_dim, 4, 4)
        self.conv_logvar = nn.Conv2d(widths[-1], cfg.latent_dim, 4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.blocks(x)
        return self.conv_mu(h).flatten(1), self.conv_logvar(h).flatten(1)


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.latent_dim = cfg.latent_dim
        n_up = int(math.log2(cfg.image_size)) - 1  # from 2x2 to full size
        ch = cfg.width
        widths = [16 * ch] + [ch * min(2**i, 8) for i in reversed(range(n_up - 1))] + [max(ch // 2, 1)]
        # widths for 128: 16ch (2x2), 8ch, 8ch, 4ch, 2ch, ch, ch/2 -- the reference's.
        self.first_layer = nn.ConvTranspose2d(cfg.latent_dim, widths[0], 2, 1, 0)
        self.first_bn = nn.BatchNorm2d(widths[0])
        self.blocks = nn.Sequential(*[ResUp(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.out = nn.Conv2d(widths[-1], cfg.channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = act(self.first_bn(self.first_layer(as_latent_2d(z, self.latent_dim))))
        return torch.tanh(self.out(self.blocks(h)))


class VAE(nn.Module):
    def __init__(self, cfg: VAEConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or VAEConfig()
        self.latent_dim = cfg.latent_dim
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    @property
    def first_layer(self) -> nn.ConvTranspose2d:
        return self.decoder.first_layer

    def forward(
        self, x: torch.Tensor, eps: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, mu, logvar).

        The reparameterisation noise is ``eps`` if given (the engines pass
        pre-drawn, checkpointable noise), else drawn from ``generator``.
        """
        mu, logvar = self.encoder(x)
        if eps is None:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps.to(mu.dtype) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [-1, 1] -> posterior mean (B, d)."""
        return self.encoder(x)[0]

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d) latents -> (B, 1, H, W) in [-1, 1]; the decoder is G."""
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) averaged over batch *and* latent dimensions.

    The reference divides the summed KL by batch * d; with beta = 0.01 that is
    the regularisation strength the paper's numbers come from.
    """
    return 0.5 * torch.mean(mu.square() + logvar.exp() - 1.0 - logvar)


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log(MSE) + beta * KL; returns (loss, mse, kl)."""
    mse = torch.mean((recon.float() - x.float()).square())
    kl = kl_divergence(mu.float(), logvar.float())
    return torch.log(mse) + beta * kl, mse, kl


def build_vae(cfg: VAEConfig | None = None) -> VAE:
    return VAE(cfg)
