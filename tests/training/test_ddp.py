"""torchrun with 2 CPU processes (gloo) matches 1 process at the same global batch.

The data, the per-sample random draws and the BatchNorm statistics are the
same by construction (see ``training/ddp.py``); what is left is float
summation order. Stated tolerance, after 4 Adam steps (each moves a weight by
up to lr = 2e-4 / 1e-4):
- every weight within 2e-5 absolute, i.e. a tenth of one Adam step, except
  the biases of convolutions that feed a BatchNorm (VAE blocks, decoder input): their
  exact gradient is 0 because BatchNorm subtracts the batch mean, so Adam turns
  round-off into +-lr steps; they do not change the function;
- the trained networks' outputs (train-mode BatchNorm) on a fixed batch within 1e-4.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from _gen_helpers import run_all, state_tensors

from napari_latentdirs.training.config import config_from_dict
from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses
from napari_latentdirs.training.gan import GANTrainer, train_gan
from napari_latentdirs.training.vae import VAETrainer, train_vae

TOL = 2e-5


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_two_process_gloo_matches_single_process(tmp_path, kind):
    x = synthetic_ellipses(32, seed=3)
    npy = tmp_path / "slices.npy"
    np.save(npy, x)
    args = [kind, "--data", str(npy), "--preset", "tiny", "--epochs", "1", "--batch", "8",
            "--device", "cpu", "--no-fid", "--seed", "7"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "napari_latentdirs.training", *args, "--out", str(tmp_path / "ddp")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "x2" in res.stdout  # the run reported two ranks
    assert res.stdout.count("finished at step 4") == 1  # only rank 0 prints and writes

    cfg = config_from_dict(kind, {}, preset="tiny", epochs=1, batch_size=8, device="cpu", fid=False, seed=7)
    engine = train_gan if kind == "gan" else train_vae
    run_all(engine, cfg, TensorSlices(x), tmp_path / "single")

    a = state_tensors(tmp_path / "ddp" / "checkpoints" / "last.safetensors")
    b = state_tensors(tmp_path / "single" / "checkpoints" / "last.safetensors")
    trainer_cls = GANTrainer if kind == "gan" else VAETrainer
    fresh = trainer_cls(cfg, TensorSlices(x), tmp_path / "fresh")
    start = {f"model/{n}/{k}": v.clone() for n, m in fresh.modules.items() for k, v in m.state_dict().items()}
    cancelled = {f"model/{n}/{name}.bias" for n, m in fresh.modules.items() for name, mod in m.named_modules()
                 if name.endswith(("conv1", "conv2", "decoder.first_layer"))}
    weights = [k for k in b if k.startswith("model/") and k.endswith(("weight", "bias")) and k not in cancelled]
    assert len(weights) > 10 and set(weights) <= set(a)
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in weights)
    moved = max((b[k].double() - start[k].double()).abs().max().item() for k in weights)
    assert worst < TOL, worst
    assert moved > 10 * TOL  # and the runs really trained

    def outputs(state):
        for n, m in fresh.modules.items():
            m.load_state_dict({k[len(f"model/{n}/"):]: v for k, v in state.items() if k.startswith(f"model/{n}/")})
        batch = torch.as_tensor(x[:8])[:, None]
        z = torch.randn(8, 32, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            if kind == "gan":
                return torch.cat([fresh.modules["G"](z).flatten(), fresh.modules["D"](batch).flatten()])
            vae = fresh.modules["vae"]
            return torch.cat([vae.generate(z).flatten(), vae.encode(batch).flatten()])

    assert (outputs(a) - outputs(b)).abs().max().item() < 1e-4
