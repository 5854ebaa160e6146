"""ResNet-VAE training as in the paper (section 3.2), as an event generator.

loss = log(MSE(recon, x)) + beta * KL with beta = 0.01 (KL averaged over the
batch and latent dimensions, as the reference), Adam lr 1e-4. The
reparameterisation noise is drawn for the global batch from the step's
seeded generator. At the end of each epoch of the selection window the
engine reports the test reconstruction error (model-space MSE and RMSE in
HU) and the FID of decoder samples z ~ N(0, I) against test slices.

Under DDP, log(MSE) is not an average over ranks; each rank minimises
``mse_r / M`` with M the all-reduced batch MSE held constant, whose
DDP-averaged gradient is exactly that of log(M) for the global batch.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..events import Event
from ..models.vae import VAE, kl_divergence
from . import ddp
from .augment import draw_affine, random_affine
from .config import VAETrainConfig
from .engine import Trainer


class VAETrainer(Trainer):
    kind = "vae"
    export_name = "vae"

    def build(self) -> None:
        mcfg = self.cfg.model_config()
        self.latent_dim = mcfg.latent_dim
        self.modules = {"vae": VAE(mcfg)}

    def make_optimizers(self) -> None:
        c = self.cfg
        self.optimizers = {"vae": torch.optim.Adam(self.modules["vae"].parameters(), lr=c.lr, betas=tuple(c.betas))}

    def train_step(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        c = self.cfg
        g = self.step_generator(step)
        eps = self.global_draw(torch.randn, self.latent_dim, g=g)
        aug = self.global_draw(torch.rand, 2, g=g)
        if c.augment:
            x = random_affine(x, *draw_affine(aug))
        opt = self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        with self.autocast():
            recon, mu, logvar = self.wrapped["vae"](x, eps)
        mse = torch.mean((recon.float() - x.float()).square())
        kl = kl_divergence(mu.float(), logvar.float())
        if self.dist.enabled:
            m = ddp.mean_across(mse.detach(), self.dist)
            rec = torch.log(m) + (mse - mse.detach()) / m
        else:
            m = mse.detach()
            rec = torch.log(mse)
        loss = rec + c.beta * kl
        self.backward_step(loss, opt)
        self.update_average()
        if self.scaler is not None:
            self.scaler.update()
        return {"loss": loss.detach(), "mse": mse.detach(), "log_mse": torch.log(m), "kl": kl.detach()}

    @torch.no_grad()
    def reconstruction_error(self) -> dict[str, float]:
        vae = self.modules["vae"]
        vae.eval()
        total, n = 0.0, 0
        try:
            for x in self.eval_batches(self.cfg.fid_samples):
                x = x.to(self.device).float()
                with self.autocast():
                    r = vae.reconstruct(x).float()
                total += float(torch.sum((r - x).square()))
                n += x.numel()
        finally:
            vae.train()
        mse = total / max(n, 1)
        hu_per_unit = self.preprocessing.hu_per_unit  # the window of the data trained on
        return {"test_mse": mse, "test_rmse_hu": math.sqrt(mse) * hu_per_unit}

    def evaluate(self) -> dict[str, float]:
        return {**self.reconstruction_error(), **self.fid_metrics()}


def train_vae(
    cfg: VAETrainConfig,
    data: Dataset,
    run_dir: str | Path,
    stop: threading.Event | None = None,
    test_data: Dataset | None = None,
) -> Iterator[Event]:
    """Train (or resume, if ``run_dir`` holds a checkpoint) a ResNet-VAE; yields events."""
    yield from VAETrainer(cfg, data, run_dir, test_data=test_data).run(stop)
