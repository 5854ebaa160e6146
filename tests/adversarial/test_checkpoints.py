"""Checkpoints are one atomic unit: a SIGKILL anywhere in a save leaves a resumable run.

Issue 14 items 1 and 15 (temp files, file modes). The kills are real: a
forked child SIGKILLs itself at each line of the save machinery
(``_kill_harness.py``), and a separate writer process is SIGKILLed at random
moments while saving a ~25 MB checkpoint in a loop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from napari_latentdirs.training.state import RunDir

HARNESS = Path(__file__).with_name("_kill_harness.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run_harness(mode: str, folder: Path) -> tuple[list[dict], dict]:
    res = subprocess.run([sys.executable, str(HARNESS), mode, str(folder)], env=ENV, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return lines[:-1], lines[-1]


@pytest.mark.parametrize("mode", ["rundir", "gan"])
def test_sigkill_at_every_line_of_a_save_leaves_one_complete_generation(tmp_path, mode):
    points, done = _run_harness(mode, tmp_path / "run")
    assert done["done"] and done["points"] == len(points) >= 20
    assert all(p["killed"] for p in points)
    bad = [p for p in points if p["outcome"] not in ("gen1", "gen2")]
    assert not bad, bad[:3]  # every kill leaves the old or the new checkpoint, complete and loadable
    outcomes = [p["outcome"] for p in points]
    assert "gen1" in outcomes and "gen2" in outcomes
    # once the new file is in place the save has committed: no later kill goes back to gen1
    first_new = outcomes.index("gen2")
    assert set(outcomes[first_new:]) == {"gen2"}
    # the kills leave temp files behind; the next save of the same file removes them
    assert any(p["temps"] for p in points)
    assert done["temps_after_clean_save"] == []


WRITER = r"""
import sys, torch
from torch import nn
from napari_latentdirs.training.state import RunDir
torch.set_num_threads(1)
run = RunDir(sys.argv[1])
m = nn.Sequential(*[nn.Linear(512, 512) for _ in range(24)])  # ~25 MB per checkpoint
i = 0
while True:
    i += 1
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(float(i))
    run.save("last", {"m": m}, meta={"i": i})
    if i == 1:
        print("saved", flush=True)
"""


def test_random_sigkills_while_saving_never_lose_the_run(tmp_path):
    """Kills at arbitrary moments (mid-write, mid-hash, between files): the run always loads."""
    rng = torch.Generator().manual_seed(0)
    delays = (0.05 + 0.6 * torch.rand(8, generator=rng)).tolist()
    seen = set()
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=ENV)
        assert proc.stdout.readline().strip() == b"saved"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        m = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(24)])
        meta = RunDir(tmp_path).load("last", {"m": m}, restore_rngs=False)  # never refused
        assert all(torch.all(p == meta["i"]) for p in m.parameters())
        seen.add(meta["i"])
    assert max(seen) > 1  # the writer really got past its first save


def test_files_of_a_checkpoint_share_one_mode_from_the_umask(tmp_path):
    from napari_latentdirs.utils.weights import save_weights, sidecar

    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(umask)
        try:
            path = save_weights(tmp_path / f"w{umask:o}.safetensors", {"x": torch.zeros(3)}, {"k": 1})
        finally:
            os.umask(old)
        assert oct(path.stat().st_mode & 0o777) == oct(mode)
        assert oct(sidecar(path).stat().st_mode & 0o777) == oct(mode)


def test_a_header_length_that_starts_like_a_pickle_is_still_safetensors(tmp_path):
    """A 1152-byte header (0x480) makes a safetensors file start with 80 04, a pickle's magic."""
    import pickle

    from safetensors.torch import save_file

    from napari_latentdirs.utils.weights import UnsafeWeightsError, load_weights

    path = tmp_path / "w.safetensors"
    for fill in range(1200):
        save_file({"x": torch.zeros(2)}, str(path), metadata={"napari_latentdirs.meta": json.dumps({"f": "." * fill})})
        if path.read_bytes()[:2] == b"\x80\x04":
            break
    assert path.read_bytes()[:2] == b"\x80\x04"
    tensors, meta = load_weights(path)
    assert torch.equal(tensors["x"], torch.zeros(2)) and set(meta) == {"f"}
    disguised = tmp_path / "evil.safetensors"  # a real pickle is still refused, whatever its name
    disguised.write_bytes(pickle.dumps({"x": 1}, protocol=4))
    with pytest.raises(UnsafeWeightsError):
        load_weights(disguised)


KILL_AFTER_COMMIT = r"""
import os, runpy, signal, sys
seen = {"n": 0}
def tracer(frame, event, arg):
    # _sidecar_text runs after the weights file has been renamed into place, before the sidecar is
    # written: the window in which a kill used to leave new tensors beside an old hash.
    if event == "call" and frame.f_code.co_name == "_sidecar_text":
        seen["n"] += 1
        if seen["n"] == int(os.environ["KILL_AT_SAVE"]):
            os.kill(os.getpid(), signal.SIGKILL)
    return None
sys.settrace(tracer)
sys.argv = ["latentdirs", *sys.argv[1:]]
runpy.run_module("napari_latentdirs.cli", run_name="__main__")
"""


def _cli(*args: str, kill_at_save: int | None = None) -> subprocess.CompletedProcess:
    env = {**ENV, "KILL_AT_SAVE": str(kill_at_save or 0)}  # 0: never
    return subprocess.run([sys.executable, "-c", KILL_AFTER_COMMIT, *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_after_a_kill_between_weights_and_sidecar_the_cli_resumes_and_restarts(tmp_path):
    import numpy as np
    import yaml

    from napari_latentdirs.training.data import synthetic_ellipses
    from napari_latentdirs.utils.weights import read_meta

    npy = tmp_path / "slices.npy"
    np.save(npy, synthetic_ellipses(16, 0))
    conf = tmp_path / "every2.yaml"
    conf.write_text(yaml.safe_dump({"kind": "gan", "checkpoint_every": 2, "sample_every": 0}))
    out = tmp_path / "run"
    train = ["train", "gan", "--config", str(conf), "--data", str(npy), "--preset", "tiny", "--epochs", "2",
             "--batch", "4", "--device", "cpu", "--no-fid"]
    killed = _cli(*train, "--out", str(out), kill_at_save=2)  # the step-4 checkpoint: file renamed, sidecar not
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert json.loads((out / "checkpoints" / "last.json").read_text())["step"] == 2  # the stale copy
    assert read_meta(out / "checkpoints" / "last.safetensors")["step"] == 4  # what counts
    resumed = _cli(*train, "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "starting at 4" in resumed.stdout and "finished at step 8" in resumed.stdout

    again = tmp_path / "again"  # the same kill, then a plain start on the same --out
    assert _cli(*train, "--out", str(again), kill_at_save=2).returncode == -signal.SIGKILL
    fresh = _cli(*train, "--out", str(again))
    assert fresh.returncode == 0 and "starting at 4" in fresh.stdout, fresh.stderr[-3000:]

    directions = ["directions", "--generator", "analytic", "--out", str(tmp_path / "dirs"), "--K", "4", "--steps", "6",
                  "--batch-size", "4", "--eval-batches", "1", "--checkpoint-every", "2", "--device", "cpu"]
    assert _cli(*directions, kill_at_save=2).returncode == -signal.SIGKILL  # the step-4 checkpoint
    done = _cli(*directions, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed direction training at step 4" in done.stderr


def test_a_new_start_removes_the_temp_files_of_dead_writers_only(tmp_path):
    """Temps of killed writers go at the next start of the run; a live writer's temp stays."""
    import socket

    from napari_latentdirs.training.gan import GANTrainer
    from napari_latentdirs.training.state import check_run_folder
    from napari_latentdirs.utils import atomic

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = atomic._HOST
    assert host and socket.gethostname()
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = [run / f".generator.safetensors.{dead.pid}@{host}.ab12cd34.tmp",
             run / "checkpoints" / f".last.json.{dead.pid}@{host}.zz99yy88.tmp",
             run / "checkpoints" / f".last.safetensors.{dead.pid}@{host}.q1w2e3r4.tmp"]
    live = [run / "checkpoints" / f".last.safetensors.{os.getpid()}@{host}.live0001.tmp",  # this process: alive
            run / "checkpoints" / f".last.safetensors.{dead.pid}@otherhost.remote01.tmp"]  # another machine's
    for p in stale + live:
        p.write_bytes(b"partial")
    check_run_folder(run)  # temp files of ours do not make the folder foreign
    from _tiny_runs import ellipses, tiny

    GANTrainer(tiny(), ellipses(), run)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in live)
