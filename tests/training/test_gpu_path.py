"""The GPU-server path, checked on a CPU (issue 15).

What a CPU can show: FID autocast leaking into the caller (CPU autocast does
the same as CUDA's), RNG states of more GPUs than there are (crafted state
tensors), a directions checkpoint from another device type (a crafted CUDA
generator state), the process-group backend for a configured device, the
.npy loading's peak memory, the host transfers per training step (counted
with a TorchFunctionMode: on a GPU each is a sync), DataLoader workers and
the backend settings. Names new in the fix are imported inside the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _gen_helpers import ellipse_data, tiny_cfg
from torch.overrides import TorchFunctionMode

import napari_latentdirs
from napari_latentdirs.events import Message, Step
from napari_latentdirs.models import fid as fidmod
from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses
from napari_latentdirs.training.gan import GANTrainer

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# -- item 7: FID features of the fakes in float32 ------------------------------------------------

def test_fid_fakes_leave_no_autocast_in_the_caller(tmp_path):
    trainer = GANTrainer(tiny_cfg("gan", fid_batch=2), ellipse_data(16), tmp_path)
    trainer.amp = torch.bfloat16  # CPU autocast stands in for CUDA's: same mechanism
    w = torch.randn(3, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    extractor = fidmod.InceptionPool3() if fidmod.bundled_weights() is not None else None
    seen = []
    for x in trainer.fake_batches(4):
        # what the consumer (FID's update) computes while the generator is suspended
        feats = extractor(x) if extractor is not None else None
        seen.append((x.clone(), F.conv2d(x, w), feats))
    assert len(seen) == 2
    for x, conv, feats in seen:
        assert x.dtype == torch.float32
        assert conv.dtype == torch.float32  # a leaked bf16 autocast would make this bfloat16
        assert torch.equal(conv, F.conv2d(x, w))  # the same as an fp32 computation of the same images
        if feats is not None:
            assert torch.equal(feats, extractor(x))


# -- item 2: CUDA RNG states on fewer GPUs, in device order ----------------------------------------

def test_cuda_rng_states_restore_onto_fewer_gpus_in_device_order():
    from napari_latentdirs.training.state import cuda_states, restore_cuda_rng

    # 12 GPUs' states, each a distinct tensor; as text, "rng/cuda/10" would sort before "rng/cuda/2"
    tensors = {f"rng/cuda/{i}": torch.full((16,), i, dtype=torch.uint8) for i in range(12)}
    tensors["rng/torch"] = torch.get_rng_state()
    assert [int(s[0]) for s in cuda_states(tensors)] == list(range(12))
    for devices in (0, 1, 3, 12, 16):
        calls = []
        n = restore_cuda_rng(tensors, device_count=devices, set_state=lambda s, i, calls=calls: calls.append((i, int(s[0]))))
        assert n == min(devices, 12)
        assert calls == [(i, i) for i in range(min(devices, 12))]  # state i onto device i, the rest dropped


def test_checkpoint_from_eight_gpus_resumes_on_this_machine(tmp_path):
    from napari_latentdirs.training.state import RunDir

    run = RunDir(tmp_path)
    model = torch.nn.Linear(4, 2)
    run.save("last", {"m": model}, meta={"step": 1})
    from napari_latentdirs.utils.weights import load_weights, save_weights

    tensors, meta = load_weights(run.path("last"))
    tensors.update({f"rng/cuda/{i}": torch.zeros(16, dtype=torch.uint8) for i in range(8)})
    save_weights(run.path("last"), tensors, meta)
    assert run.load("last", {"m": torch.nn.Linear(4, 2)})["step"] == 1


# -- item 3: a directions run resumed on another device type ----------------------------------------

def test_direction_run_resumes_from_a_checkpoint_of_another_device_type(tmp_path):
    from napari_latentdirs.directions.voynov import DirectionsConfig, train_directions
    from napari_latentdirs.models.analytic import AnalyticEllipseGenerator
    from napari_latentdirs.utils.weights import load_weights, save_weights

    cfg = DirectionsConfig(K=4, steps=4, batch_size=4, eval_batches=1, log_every=1, checkpoint_every=0,
                           device="cpu", generator_kind="analytic", seed=3)
    stop = threading.Event()
    for ev in train_directions(cfg, AnalyticEllipseGenerator().eval(), tmp_path, stop):
        if isinstance(ev, Step) and ev.step == 2:
            stop.set()
    ckpt = tmp_path / "checkpoints" / "last.safetensors"
    tensors, meta = load_weights(ckpt)
    assert tensors["rng/gen/sample"].numel() > 16  # a CPU generator's state
    # What a CUDA run wrote: a Philox generator's state (seed and offset, 16 bytes).
    tensors["rng/gen/sample"] = torch.arange(16, dtype=torch.uint8)
    save_weights(ckpt, tensors, meta)
    events = list(train_directions(cfg, AnalyticEllipseGenerator().eval(), tmp_path))
    assert events[0].start_step == 2 and type(events[-1]).__name__ == "Finished"
    assert any(isinstance(e, Message) and "another device type" in e.text for e in events)


# -- item 4: backend from the configured device --------------------------------------------------------

def test_process_group_backend_follows_the_configured_device():
    from napari_latentdirs.training.ddp import backend_for

    assert backend_for("cpu", cuda_available=True) == "gloo"  # was nccl whenever CUDA existed
    assert backend_for("cuda", cuda_available=True) == "nccl"
    assert backend_for("cuda:3", cuda_available=True) == "nccl"
    assert backend_for("auto", cuda_available=True) == "nccl"
    assert backend_for("auto", cuda_available=False) == "gloo"
    assert backend_for(None, cuda_available=False) == "gloo"
    assert backend_for("mps", cuda_available=False) == "gloo"


# -- item 6: .npy memory-mapped, checked and hashed in chunks ----------------------------------------

PEAK = r"""
import json, sys
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from napari_latentdirs.commands.train import load_data
base = peak_mb()
train, test = load_data(sys.argv[1])
fp = getattr(train, "fingerprint", "")
x = train[len(train) - 1]
print(json.dumps({"peak_mb": peak_mb() - base, "n": len(train), "fingerprint": fp, "shape": list(x.shape)}))
"""


def test_npy_data_is_memory_mapped_and_hashed_in_chunks(tmp_path):
    n = 3072  # (3072, 128, 128) float32: 192 MiB
    rng = np.random.default_rng(0)
    arr = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(n, 128, 128))
    for a in range(0, n, 256):
        arr[a : a + 256] = rng.uniform(-1, 1, (min(256, n - a), 128, 128)).astype(np.float32)
    arr.flush()
    del arr
    size_mb = (tmp_path / "big.npy").stat().st_size / 2**20
    res = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path / "big.npy")], env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["n"] == n and out["shape"] == [1, 128, 128]
    assert out["peak_mb"] < 0.25 * size_mb, (out, size_mb)  # was ~2x the file: a full load plus .tobytes()


def test_npy_fingerprint_equals_the_in_memory_one(tmp_path):
    """Runs started from an in-memory array (or before the change) resume from the mapped file."""
    from napari_latentdirs.training.data import NpySlices

    x = synthetic_ellipses(10, 0)
    for name, arr in (("a.npy", x), ("b.npy", x[:, None]), ("c.npy", np.asfortranarray(x[:, None])),
                      ("d.npy", x.astype(np.float16))):
        np.save(tmp_path / name, arr)
        mapped = NpySlices(tmp_path / name)
        in_memory = TensorSlices(np.load(tmp_path / name), name=name)
        assert mapped.fingerprint == in_memory.fingerprint, name
        assert all(torch.equal(mapped[i], in_memory[i]) for i in range(10))


# -- slow on a GPU: host transfers, workers, backend settings, autocast in direction discovery --------

class HostTransfers(TorchFunctionMode):
    """Counts the calls in our code that copy a tensor's values to the host (a sync on a GPU).

    Calls made inside torch are left out: Adam's ``step.item()`` and the sampler's
    ``randperm(...).tolist()`` work on tensors that stay on the CPU in a GPU run too.
    """

    NAMES = {"tolist", "item", "cpu", "numpy", "__float__", "__bool__", "__int__"}
    OURS = os.path.dirname(napari_latentdirs.__file__)

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.NAMES and sys._getframe(1).f_code.co_filename.startswith(self.OURS):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_training_brings_losses_to_the_host_once_per_window(tmp_path):
    cfg = tiny_cfg("gan", epochs=1, batch_size=2, log_every=4, sync_every=4)
    trainer = GANTrainer(cfg, ellipse_data(16), tmp_path)  # 8 steps
    per_step = {}
    counter = HostTransfers()
    with counter:
        last = 0
        for ev in trainer.run():
            if isinstance(ev, Step):
                per_step[ev.step] = counter.count - last
            last = counter.count
    assert sorted(per_step) == list(range(1, 9))
    quiet = [s for s in per_step if s % 4]
    assert all(per_step[s] == 0 for s in quiet), per_step  # no host transfer at all between syncs
    assert all(per_step[s] == 1 for s in (4, 8)), per_step  # one per window (was one or more every step)


def test_direction_training_brings_stats_to_the_host_once_per_window(tmp_path):
    from napari_latentdirs.directions.voynov import DirectionsConfig, train_directions
    from napari_latentdirs.models.analytic import AnalyticEllipseGenerator

    cfg = DirectionsConfig(K=4, steps=8, batch_size=4, eval_batches=1, log_every=4, sync_every=4,
                           checkpoint_every=0, device="cpu", generator_kind="analytic")
    counter = HostTransfers()
    per_step, last = {}, 0
    with counter:
        for ev in train_directions(cfg, AnalyticEllipseGenerator().eval(), tmp_path):
            if isinstance(ev, Step):
                per_step[ev.step] = counter.count - last
                assert bool(ev.losses) == (ev.step % 4 == 0)
            last = counter.count
    assert [per_step[s] for s in range(1, 9)] == [0, 0, 0, 1, 0, 0, 0, 1], per_step


def test_loader_workers_give_the_same_batches(tmp_path):
    data = ellipse_data(16)
    plain = GANTrainer(tiny_cfg("gan", num_workers=0), data, tmp_path / "a")
    workers = GANTrainer(tiny_cfg("gan", num_workers=2), data, tmp_path / "b")
    a, b = list(plain.batches(1, 1)), list(workers.batches(1, 1))
    assert [i for i, _ in a] == [i for i, _ in b] and len(a) == 3
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a, b))


def test_loader_workers_default_to_none_on_cpu_and_several_per_gpu():
    from napari_latentdirs.utils.runtime import loader_workers

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert loader_workers(None, cpu) == 0 and loader_workers(3, cpu) == 3
    cores = len(os.sched_getaffinity(0))
    assert loader_workers(None, gpu, world_size=1) == max(0, min(8, cores - 1))
    assert loader_workers(None, gpu, world_size=cores) == 0  # one core per rank: none to spare
    assert loader_workers(2, gpu) == 2


def test_backend_settings_autotune_or_determinism():
    from napari_latentdirs.utils.runtime import configure_backends

    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    try:
        configure_backends(torch.device("cuda", 0), deterministic=False)
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        configure_backends(torch.device("cuda", 0), deterministic=True)
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert torch.are_deterministic_algorithms_enabled() and os.environ["CUBLAS_WORKSPACE_CONFIG"]
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[:2]
        torch.use_deterministic_algorithms(saved[2])
        if saved[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def test_deterministic_flag_reaches_the_config():
    import argparse

    from napari_latentdirs.commands.train import add_arguments, build_config

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert build_config(p.parse_args(["gan", "--deterministic"])).deterministic is True
    assert build_config(p.parse_args(["gan"])).deterministic is False


def test_mixed_precision_stays_off_the_cpu():
    from napari_latentdirs.utils.runtime import amp_dtype

    for amp in ("auto", "bf16", "fp16", "off"):
        assert amp_dtype(amp, torch.device("cpu")) is None
    assert amp_dtype("off", torch.device("cuda", 0)) is None
    assert amp_dtype("fp16", torch.device("cuda", 0)) is torch.float16
    assert amp_dtype("bf16", torch.device("cuda", 0)) is torch.bfloat16


def test_direction_step_under_bf16_autocast_keeps_float32_losses():
    from napari_latentdirs.directions.matrix import DirectionModel
    from napari_latentdirs.directions.voynov import direction_step, freeze, sample_inputs
    from napari_latentdirs.models.analytic import AnalyticEllipseGenerator
    from napari_latentdirs.models.reconstructors import build_reconstructor

    torch.manual_seed(0)
    G = freeze(AnalyticEllipseGenerator())
    A = DirectionModel(32, 4, "unit", generator=torch.Generator().manual_seed(0))
    R = build_reconstructor("lenet", 4, 1)
    opts = [torch.optim.Adam(A.parameters(), lr=1e-3), torch.optim.Adam(R.parameters(), lr=1e-3)]
    before = A.matrix().detach().clone()
    z, k, alpha = sample_inputs(torch.Generator().manual_seed(0), 8, 32, 4, 6.0, 0.5, torch.device("cpu"))
    stats = direction_step(G, A, R, opts, z, k, alpha, 0.25, amp=torch.bfloat16)
    assert stats.dtype == torch.float32 and torch.isfinite(stats).all()
    assert not torch.equal(A.matrix().detach(), before)  # the gradient reached A through bf16 G and R
    assert all(p.dtype == torch.float32 for p in [*A.parameters(), *R.parameters()])


@pytest.mark.parametrize("device", ["cpu"])
def test_directions_amp_is_off_on_the_cpu(device):
    from napari_latentdirs.directions.voynov import directions_amp

    for amp in ("auto", "bf16", "off"):
        assert directions_amp(amp, torch.device(device)) is None
    assert directions_amp("bf16", torch.device("cuda", 0)) is torch.bfloat16
    assert directions_amp("off", torch.device("cuda", 0)) is None
