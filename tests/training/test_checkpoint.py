"""Training checkpoints: round trip, pickles refused, and SIGKILL during a write."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from _gen_helpers import ellipse_data, run_all, tiny_cfg

from napari_latentdirs.models.registry import load_generator
from napari_latentdirs.training.gan import GANTrainer, train_gan
from napari_latentdirs.training.state import RunDir
from napari_latentdirs.utils.weights import IncompleteCheckpointError, UnsafeWeightsError


def test_checkpoint_round_trip_and_contents(tmp_path):
    data = ellipse_data(16)
    cfg = tiny_cfg("gan", epochs=1)
    run_all(train_gan, cfg, data, tmp_path)
    meta = json.loads((tmp_path / "checkpoints" / "last.json").read_text())
    assert meta["kind"] == "dcgan" and meta["config"]["g_width"] == 4
    assert meta["train_config"]["lr"] == 2e-4 and meta["train_config"]["betas"] == [0.5, 0.999]
    assert meta["preprocessing"] == {"hu_min": -1000.0, "hu_max": 2000.0, "size": 128}
    assert meta["data_fingerprint"] == data.fingerprint and meta["step"] == 4 and meta["epoch"] == 1
    # a fresh trainer loads model, optimiser and step exactly
    fresh = GANTrainer(cfg, data, tmp_path)
    assert fresh.try_resume() and fresh.step == 4
    G = load_generator(tmp_path / "checkpoints" / "last.safetensors")
    for k, v in G.state_dict().items():
        assert torch.equal(v, fresh.modules["G"].state_dict()[k])
    st = fresh.optimizers["D"].state_dict()["state"]
    assert st and all(float(s["step"]) == 4 for s in st.values())


def test_pickled_checkpoint_refused(tmp_path):
    run = RunDir(tmp_path)
    run.path("last").write_bytes(pickle.dumps({"evil": 1}))
    run.path("last").with_suffix(".json").write_text("{}")
    with pytest.raises(UnsafeWeightsError):
        run.load("last", {"G": torch.nn.Linear(1, 1)})
    torch_saved = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, torch_saved)
    with pytest.raises(UnsafeWeightsError):
        load_generator(torch_saved)


WRITER = r"""
import sys, torch
from torch import nn
from napari_latentdirs.training.state import RunDir
run = RunDir(sys.argv[1])
m = nn.Sequential(*[nn.Linear(512, 512) for _ in range(24)])  # ~25 MB per checkpoint
print("ready", flush=True)
i = 0
while True:
    i += 1
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(float(i))
    run.save("last", {"m": m}, meta={"i": i})
"""


def test_kill_during_write_never_leaves_a_valid_looking_file(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outcomes = {"ok": 0, "refused": 0}
    for delay in (0.4, 0.9, 1.5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        m = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(24)])
        try:
            meta = RunDir(tmp_path).load("last", {"m": m}, restore_rngs=False)
        except (IncompleteCheckpointError, FileNotFoundError):
            outcomes["refused"] += 1
            continue
        # whatever loads is one complete checkpoint: every tensor holds its own step's value
        values = {float(p.detach().flatten()[0]) for p in m.parameters()}
        assert values == {float(meta["i"])}
        assert all(torch.all(p == meta["i"]) for p in m.parameters())
        outcomes["ok"] += 1
    assert outcomes["ok"] + outcomes["refused"] == 3
