"""torchrun with 2 CPU processes (gloo) matches 1 process at the same global batch.

Tolerance: every weight, BatchNorm buffer and Adam moment within 2e-4 absolute
after 4 steps. The data, the per-sample random draws and the BatchNorm
statistics are the same by construction (see ``training/ddp.py``); what is left
is float summation order (all-reduce of gradients and batch statistics), which
Adam's normalised first steps can amplify to about lr (2e-4 / 1e-4) per step
for parameters whose gradient is near zero.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from _gen_helpers import run_all, state_tensors

from napari_latentdirs.training.config import config_from_dict
from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses
from napari_latentdirs.training.gan import GANTrainer, train_gan
from napari_latentdirs.training.vae import VAETrainer, train_vae

TOL = 2e-4


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
    keys = [k for k in b if k.startswith(("model/", "optim/"))]
    assert set(keys) <= set(a)
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in keys)
    assert worst < TOL, worst
    # and the runs really trained: the weights moved by far more than the tolerance
    init = GANTrainer if kind == "gan" else VAETrainer
    fresh = init(cfg, TensorSlices(x), tmp_path / "fresh")
    start = {f"model/{n}/{k}": v for n, m in fresh.modules.items() for k, v in m.state_dict().items()}
    moved = max((b[k].double() - start[k].double()).abs().max().item() for k in start if k.endswith("weight"))
    assert moved > 20 * TOL
