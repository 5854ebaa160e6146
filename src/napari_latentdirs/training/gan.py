"""DCGAN training as in the paper (section 3.2), as an event generator.

Per step, with every random draw taken from the step's seeded generator:
- D: BCEWithLogits on real slices with one-sided smoothed targets
  U[0.9, 1] and on G(z) with target 0;
- G: BCEWithLogits of D(G(z)) against 1 (the non-saturating loss);
- instance noise N(0, sd^2) is added to *every* discriminator input; sd starts
  at 0.1, falls linearly and is 0 from the midpoint of training on (the
  reference code switched it off at epoch 0 by mistake);
- Adam(lr 2e-4, betas (0.5, 0.999)) for both networks.

Options beyond the paper, used by the CPU recipe (``training/recipes.py``):
an R1 penalty on D's gradient at real slices (``r1_gamma``), an exported
weight average of G (``ema``) with re-estimated BatchNorm statistics
(``recalibrate_bn``), and a D without BatchNorm and with minibatch standard
deviation (model ``d_norm``, ``d_mbstd``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..events import Event
from ..models.dcgan import Discriminator, Generator
from .augment import draw_affine, random_affine
from .config import GANTrainConfig
from .engine import Trainer


def no_sync(module: torch.nn.Module):
    """DDP's ``no_sync()`` (keep gradients local), or nothing for a plain module."""
    return module.no_sync() if hasattr(module, "no_sync") else nullcontext()


def instance_noise_sd(step: int, total_steps: int, sd0: float) -> float:
    """sd0 at step 0, linearly down to 0 at total_steps / 2, and 0 after."""
    mid = total_steps / 2.0
    if sd0 <= 0 or step >= mid:
        return 0.0
    return sd0 * (1.0 - step / mid)


class GANTrainer(Trainer):
    kind = "gan"
    export_name = "G"

    def build(self) -> None:
        if self.cfg.r1_gamma > 0 and self.dist.enabled:
            # R1 needs a double backward through D, which DDP's gradient hooks do not support.
            raise ValueError("the R1 penalty (the CPU recipe) is not supported under torchrun; use the paper recipe")
        mcfg = self.cfg.model_config()
        self.latent_dim = mcfg.latent_dim
        self.modules = {"G": Generator(mcfg), "D": Discriminator(mcfg)}

    def make_optimizers(self) -> None:
        c = self.cfg
        self.optimizers = {
            "G": torch.optim.Adam(self.modules["G"].parameters(), lr=c.lr, betas=tuple(c.betas)),
            "D": torch.optim.Adam(self.modules["D"].parameters(), lr=c.lr, betas=tuple(c.betas)),
        }

    def noise_sd(self, step: int) -> float:
        return instance_noise_sd(step, self.total_steps, self.cfg.instance_noise)

    def train_step(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        c = self.cfg
        G, D = self.wrapped["G"], self.wrapped["D"]
        d_params = self.modules["D"]
        opt_g, opt_d = self.optimizers["G"], self.optimizers["D"]
        g = self.step_generator(step)
        # Fixed draw order; each is drawn for the global batch, this rank keeps its rows.
        z = self.global_draw(torch.randn, self.latent_dim, g=g)
        lo, hi = c.label_smooth
        real_t = lo + (hi - lo) * self.global_draw(torch.rand, g=g)
        aug = self.global_draw(torch.rand, 2, g=g)
        sd = self.noise_sd(step)
        if sd > 0:
            noise = [sd * self.global_draw(torch.randn, *x.shape[1:], g=g) for _ in range(3)]
        if c.augment:
            x = random_affine(x, *draw_affine(aug))

        def noisy(t: torch.Tensor, i: int) -> torch.Tensor:
            return t + noise[i].to(t.dtype) if sd > 0 else t * 1.0

        # Discriminator step: real (smoothed targets) and fake (target 0), separate batches,
        # one forward and one backward each, as the reference. Under DDP the real half runs in
        # no_sync(): its gradients stay local, and the fake half's backward all-reduces the
        # sum of both, once per step (the average of sums equals the sum of averages).
        opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            fake = G(z)
        r1 = c.r1_gamma > 0 and step % c.r1_every == 0
        with no_sync(D):
            x_real = noisy(x, 0).detach().requires_grad_(True) if r1 else noisy(x, 0)
            with self.autocast():
                out_real = D(x_real)
                loss_real = F.binary_cross_entropy_with_logits(out_real.float(), real_t)
            if r1:
                (grad,) = torch.autograd.grad(out_real.float().sum(), x_real, create_graph=True)
                penalty = grad.float().square().flatten(1).sum(1).mean()
                self.backward(loss_real + 0.5 * c.r1_gamma * c.r1_every * penalty)
            else:
                self.backward(loss_real)
        with self.autocast():
            out_fake = D(noisy(fake.detach(), 1))
            loss_fake = F.binary_cross_entropy_with_logits(out_fake.float(), torch.zeros_like(real_t))
        self.backward(loss_fake)
        self.optimizer_step(opt_d)
        loss_d = loss_real.detach() + loss_fake.detach()

        # Generator step through a frozen D (no D weight gradients, no D all-reduce).
        opt_g.zero_grad(set_to_none=True)
        d_params.requires_grad_(False)
        try:
            with no_sync(D), self.autocast():
                out_gen = D(noisy(fake, 2))
                loss_g = F.binary_cross_entropy_with_logits(out_gen.float(), torch.ones_like(real_t))
            self.backward(loss_g)
            self.optimizer_step(opt_g)
        finally:
            d_params.requires_grad_(True)
        self.update_average()
        if self.scaler is not None:
            self.scaler.update()
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(out_real.detach().float()).mean(),
            "d_fake": torch.sigmoid(out_fake.detach().float()).mean(),
            "noise_sd": torch.full((), sd, device=loss_d.device),  # a fill kernel, not a host copy
        }


def train_gan(
    cfg: GANTrainConfig,
    data: Dataset,
    run_dir: str | Path,
    stop: threading.Event | None = None,
    test_data: Dataset | None = None,
) -> Iterator[Event]:
    """Train (or resume, if ``run_dir`` holds a checkpoint) a DCGAN; yields events."""
    # A generator function (not a function returning one) so napari's create_worker
    # makes a GeneratorWorker and the set-up runs in the worker thread.
    yield from GANTrainer(cfg, data, run_dir, test_data=test_data).run(stop)
