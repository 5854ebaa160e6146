"""torchrun with 2 CPU processes (gloo) matches 1 process at the same global batch.

The data, the per-sample random draws and the BatchNorm statistics are the
same by construction (see ``training/ddp.py``); what is left is float
summation order, which differs between machines and kernels. What DDP
guarantees, and what is asserted:

- the loss at the first step (identical weights, identical data) agrees to
  float32 round-off of a mean over the batch;
- the losses at every later step agree closely. Adam turns round-off in a
  near-zero gradient into a full +-lr step, so a few weights of two equal runs
  can differ by up to one Adam step per step; but a weight whose gradient is
  round-off-small changes the loss only to second order, so the loss
  trajectories stay together;
- every weight stays within the bound Adam itself puts on that divergence:
  each step moves a weight by at most ``lr * c_t`` with ``c_t`` from
  Cauchy-Schwarz on Adam's moment averages (``adam_step_bound``), so two runs
  differ by at most ``2 * lr * sum_t c_t``.

Measured on a 2-core AMD EPYC (for scale, not asserted): first-step losses
equal to 2e-7 relative, later ones to 5e-5; the largest weight difference
5e-7 (GAN) and 5e-4 (VAE, a bias feeding BatchNorm) against bounds of
1.8e-3 and 8.0e-4.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from _gen_helpers import run_all, state_tensors

from napari_latentdirs.training.config import config_from_dict
from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses
from napari_latentdirs.training.gan import GANTrainer, train_gan
from napari_latentdirs.training.state import read_metrics
from napari_latentdirs.training.vae import VAETrainer, train_vae

STEPS = 4  # 32 slices, global batch 8, one epoch


def adam_step_bound(t: int, beta1: float, beta2: float) -> float:
    """Largest |m_hat / sqrt(v_hat)| at step t over any gradient sequence (eps = 0).

    m_hat = sum_i a_i g_i and v_hat = sum_i b_i g_i^2 with Adam's bias-corrected
    weights; Cauchy-Schwarz gives |m_hat| <= sqrt(sum a_i^2 / b_i) * sqrt(v_hat).
    """
    a = [(1 - beta1) * beta1 ** (t - i) / (1 - beta1**t) for i in range(1, t + 1)]
    b = [(1 - beta2) * beta2 ** (t - i) / (1 - beta2**t) for i in range(1, t + 1)]
    return math.sqrt(sum(ai * ai / bi for ai, bi in zip(a, b)))


def test_adam_step_bound_holds_for_torch_adam():
    """The bound is exact at step 1 and no gradient sequence makes torch's Adam exceed it."""
    import torch

    assert adam_step_bound(1, 0.5, 0.999) == pytest.approx(1.0)
    gen = torch.Generator().manual_seed(0)
    lr, betas = 1e-3, (0.5, 0.999)
    worst = [0.0] * STEPS
    for _ in range(200):
        w = torch.zeros(64, requires_grad=True)
        opt = torch.optim.Adam([w], lr=lr, betas=betas)
        scale = 10.0 ** (-6 * torch.rand(STEPS, 64, generator=gen))  # uneven magnitudes: the worst case
        signs = torch.randint(0, 2, (STEPS, 64), generator=gen) * 2.0 - 1.0
        for t in range(STEPS):
            before = w.detach().clone()
            w.grad = signs[t] * scale[t]
            opt.step()
            worst[t] = max(worst[t], float((w.detach() - before).abs().max()) / lr)
    for t in range(STEPS):
        assert worst[t] <= adam_step_bound(t + 1, *betas) * (1 + 1e-5), (t, worst[t])
    assert worst[-1] > 1.0  # later steps really can exceed lr, so the bound is needed


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_two_process_gloo_matches_single_process(tmp_path, kind):
    x = synthetic_ellipses(32, seed=3)
    npy = tmp_path / "slices.npy"
    np.save(npy, x)
    conf = tmp_path / "log_every_step.yaml"
    conf.write_text(yaml.safe_dump({"kind": kind, "log_every": 1}))
    args = [kind, "--config", str(conf), "--data", str(npy), "--preset", "tiny", "--epochs", "1", "--batch", "8",
            "--device", "cpu", "--no-fid", "--seed", "7"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "napari_latentdirs.training", *args, "--out", str(tmp_path / "ddp")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "x2" in res.stdout  # the run reported two ranks
    assert res.stdout.count(f"finished at step {STEPS}") == 1  # only rank 0 prints and writes

    cfg = config_from_dict(kind, {}, preset="tiny", epochs=1, batch_size=8, device="cpu", fid=False, seed=7,
                           log_every=1)
    engine = train_gan if kind == "gan" else train_vae
    run_all(engine, cfg, TensorSlices(x), tmp_path / "single")

    # Losses, step by step.
    la = read_metrics(tmp_path / "ddp" / "metrics.csv")
    lb = read_metrics(tmp_path / "single" / "metrics.csv")
    loss_tags = ["train/loss_d", "train/loss_g"] if kind == "gan" else ["train/loss", "train/mse"]
    for tag in loss_tags:
        a_vals, b_vals = dict(la[tag]), dict(lb[tag])
        assert sorted(a_vals) == sorted(b_vals) == list(range(1, STEPS + 1)), tag
        assert a_vals[1] == pytest.approx(b_vals[1], rel=1e-5, abs=1e-6), tag
        for s in range(2, STEPS + 1):
            assert a_vals[s] == pytest.approx(b_vals[s], rel=1e-3, abs=1e-5), (tag, s)

    # Weights: within Adam's own bound everywhere.
    a = state_tensors(tmp_path / "ddp" / "checkpoints" / "last.safetensors")
    b = state_tensors(tmp_path / "single" / "checkpoints" / "last.safetensors")
    trainer_cls = GANTrainer if kind == "gan" else VAETrainer
    fresh = trainer_cls(cfg, TensorSlices(x), tmp_path / "fresh")
    start = {f"model/{n}/{k}": v.clone() for n, m in fresh.modules.items() for k, v in m.state_dict().items()}
    weights = [k for k in b if k.startswith("model/") and k.endswith(("weight", "bias"))]
    assert len(weights) > 10 and set(weights) <= set(a)
    b1, b2 = cfg.betas
    bound = 2 * cfg.lr * sum(adam_step_bound(t, b1, b2) for t in range(1, STEPS + 1))
    diffs = np.concatenate([(a[k].double() - b[k].double()).abs().flatten().numpy() for k in weights])
    moved = np.concatenate([(b[k].double() - start[k].double()).abs().flatten().numpy() for k in weights])
    assert diffs.max() <= bound * (1 + 1e-6), (diffs.max(), bound)
    assert np.median(moved) > bound / 10  # and the runs really trained
