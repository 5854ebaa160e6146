"""Weight averaging and BatchNorm statistics for the exported generator.

- :class:`WeightEMA`: an exponential moving average of a module's parameters
  (Yazıcı et al. 2019, "The unusual effectiveness of averaging in GAN
  training"). GAN weights oscillate around a good solution; their average
  draws cleaner, steadier images than any single step's weights.
- :func:`recalibrate_batchnorm`: re-estimates BatchNorm running statistics
  on the input the exported generator will see downstream, G(z) with
  z ~ N(0, I). The running averages gathered during training lag behind
  fast-moving weights, belong to the raw rather than the averaged weights,
  and, for a VAE decoder, to posterior rather than prior latents. In eval mode
  that mismatch turns a varied generator into a nearly constant one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

_BN = nn.modules.batchnorm._BatchNorm


class WeightEMA:
    """``shadow`` holds the average; buffers (BatchNorm statistics) are copied, not averaged."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        # A warm-up (decay (1 + t) / (10 + t) early on) so the average forgets the initialisation.
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for avg, p in zip(self.shadow.parameters(), module.parameters()):
            avg.lerp_(p.detach().to(avg.dtype), 1.0 - d)
        for avg, b in zip(self.shadow.buffers(), module.buffers()):
            avg.copy_(b)


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, latent_dim: int, generate=None, batches: int = 20,
                          batch_size: int = 100, seed: int = 0, device: torch.device | str = "cpu") -> int:
    """Replace the running statistics of ``module``'s BatchNorm layers by exact averages over
    ``batches`` x ``batch_size`` fresh latents (seeded). ``generate(z)`` runs the module
    (default ``module(z)``). Returns the number of BatchNorm layers re-estimated."""
    layers = [m for m in module.modules() if isinstance(m, _BN)]
    if not layers:
        return 0
    run = generate or module
    was_training = module.training
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    module.train()
    g = torch.Generator().manual_seed(seed)
    try:
        for _ in range(batches):
            run(torch.randn(batch_size, latent_dim, generator=g).to(device))
    finally:
        for m, mom in zip(layers, momenta):
            m.momentum = mom
        module.train(was_training)
    return len(layers)
