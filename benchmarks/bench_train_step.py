"""GAN and VAE train-step time at paper width, engine vs. a bare loop (same run, same CPU).

For each model: the engine's ``train_step`` (per-step seeded draws, instance
noise, label smoothing, augmentation, loss bookkeeping) against a bare
forward+backward+Adam loop of the same networks on the same batch. The figure
is bare_time / engine_time (1.0 = no overhead; goal >= 0.9).

    .venv/bin/python benchmarks/bench_train_step.py [--batch 32] [--iters 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch
import torch.nn.functional as F

from napari_latentdirs.models.dcgan import build_dcgan, dcgan_config
from napari_latentdirs.models.vae import VAE, kl_divergence, vae_config
from napari_latentdirs.training.config import config_from_dict
from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses
from napari_latentdirs.training.gan import GANTrainer
from napari_latentdirs.training.vae import VAETrainer


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed_pair(a, b, iters: int, dev: torch.device) -> tuple[float, float]:
    """Best-of-``iters`` times of a and b, alternating a, b, a, b so that load changes
    on a shared machine hit both equally."""
    a()
    b()  # warm-up
    best = [float("inf"), float("inf")]
    for _ in range(iters):
        for i, fn in enumerate((a, b)):
            sync(dev)
            t = time.perf_counter()
            fn()
            sync(dev)
            best[i] = min(best[i], time.perf_counter() - t)
    return best[0], best[1]


def bare_gan(batch: torch.Tensor, dev: torch.device):
    torch.manual_seed(0)
    G, D = build_dcgan(dcgan_config("paper"))
    G.to(dev).train()
    D.to(dev).train()
    og = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    b = batch.shape[0]

    def step() -> None:
        z = torch.randn(b, 32, device=dev)
        od.zero_grad(set_to_none=True)
        fake = G(z)
        F.binary_cross_entropy_with_logits(D(batch), torch.ones(b, device=dev)).backward()
        F.binary_cross_entropy_with_logits(D(fake.detach()), torch.zeros(b, device=dev)).backward()
        od.step()
        og.zero_grad(set_to_none=True)
        D.requires_grad_(False)
        F.binary_cross_entropy_with_logits(D(fake), torch.ones(b, device=dev)).backward()
        D.requires_grad_(True)
        og.step()

    return step


def bare_vae(batch: torch.Tensor, dev: torch.device):
    torch.manual_seed(0)
    vae = VAE(vae_config("paper")).to(dev).train()
    opt = torch.optim.Adam(vae.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        recon, mu, logvar = vae(batch)
        loss = torch.log(F.mse_loss(recon, batch)) + 0.01 * kl_divergence(mu, logvar)
        loss.backward()
        opt.step()

    return step


def engine_step(kind: str, data: TensorSlices, batch: torch.Tensor, device: str, run_dir: str):
    cls = GANTrainer if kind == "gan" else VAETrainer
    cfg = config_from_dict(kind, {}, preset="paper", batch_size=batch.shape[0], device=device, fid=False)
    tr = cls(cfg, data, run_dir)

    def step() -> None:
        # step 0 keeps the instance noise on (the most expensive GAN configuration)
        tr.train_step(tr.prepare_batch(batch), 0)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    data = TensorSlices(synthetic_ellipses(args.batch, 0))
    batch = data.x[: args.batch].to(dev)
    print(f"machine: {platform.machine()} {platform.processor() or ''} cores={os.cpu_count()} "
          f"torch threads={torch.get_num_threads()} device={dev} torch={torch.__version__}")
    print(f"batch {args.batch}, 128x128, paper width; best of {args.iters} alternating timed steps after one warm-up each")
    for kind, bare in (("gan", bare_gan), ("vae", bare_vae)):
        with tempfile.TemporaryDirectory() as tmp:
            t_bare, t_eng = timed_pair(bare(batch, dev), engine_step(kind, data, batch, args.device, tmp),
                                       args.iters, dev)
        print(f"{kind}: engine step {t_eng:.3f} s, bare fwd+bwd+Adam loop {t_bare:.3f} s, "
              f"ratio bare/engine = {t_bare / t_eng:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
