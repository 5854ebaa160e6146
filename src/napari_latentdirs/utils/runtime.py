"""Seeding and device selection shared by every engine."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def select_device(requested: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is taken literally."""
    if requested and requested != "auto":
        dev = torch.device(requested)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {requested!r} requested but CUDA is not available")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> list[str]:
    devs = ["auto", "cpu"]
    if torch.cuda.is_available():
        devs += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    return devs


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


_MASK64 = (1 << 64) - 1


def step_seed(seed: int, step: int) -> int:
    """A well-mixed 63-bit seed for step ``step`` (splitmix64 finaliser)."""
    x = (seed * 0x9E3779B97F4A7C15 + step + 1) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) & ((1 << 63) - 1)


def bf16_supported(device: torch.device) -> bool:
    """Native bfloat16 on *this* CUDA device (compute capability 8.0+), not on the current one."""
    if device.type != "cuda":
        return False
    major, _minor = torch.cuda.get_device_capability(device)
    return major >= 8


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: mixed precision only on CUDA; CPU and MPS stay float32.

    ``auto`` is bfloat16 where the configured GPU supports it natively (Ampere
    and newer), else float16 (with a gradient scaler); ``off`` is float32.
    """
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or bf16_supported(device):
        return torch.bfloat16
    return torch.float16


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """cuDNN autotuning for fixed shapes, or deterministic kernels when asked.

    ``deterministic``: cuDNN picks deterministic algorithms, autotuning is off,
    cuBLAS gets a fixed workspace and torch raises a warning for any op with
    no deterministic implementation. That makes a CUDA run repeatable on the
    same GPU model, driver and library versions, at some speed cost; across
    GPU models results still differ in the last bits. On the CPU every run is
    deterministic anyway.
    """
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = not deterministic  # every step has the same shapes
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def loader_workers(requested: int | None, device: torch.device, world_size: int = 1) -> int:
    """DataLoader workers: as requested, else none on the CPU (they would compete with the
    training threads) and up to 8 per rank on a GPU, leaving one core per rank free."""
    if requested is not None:
        return max(0, int(requested))
    if device.type != "cuda":
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores // max(world_size, 1) - 1))
