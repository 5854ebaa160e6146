"""DistributedDataParallel support for the engines (launched by torchrun).

- ``DistInfo.from_env(device=...)`` reads torchrun's RANK / WORLD_SIZE /
  LOCAL_RANK and initialises the process group: nccl when the *configured*
  device is CUDA (bound to the local GPU with ``device_id``), gloo otherwise,
  so ``--device cpu`` on a GPU machine runs on gloo.
- Control decisions (stop now?) are agreed with a tiny all-reduce of a CPU
  tensor over gloo (:func:`any_across`), so every rank leaves the loop at
  the same step and no GPU stream is synchronised for it.
- Data: each epoch's order comes from ``DistributedSampler(seed, epoch)``;
  rank r takes every W-th index of the shuffled list, so one global batch is
  the same set of slices whatever the number of ranks.
- Per-sample random draws (latents, targets, noise, augmentation) are drawn
  for the *global* batch from a per-step seeded generator and each rank takes
  its rows ``[r::W]``: the same numbers as a single process would use.
- BatchNorm: statistics over the global batch. On CUDA that is
  ``nn.SyncBatchNorm``; it refuses CPU tensors, so on CPU/gloo every
  BatchNorm2d becomes :class:`DistBatchNorm2d`, which all-reduces the batch
  sums with an autograd-aware all_reduce (same state-dict keys).
- Only rank 0 writes checkpoints, logs and the final generator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def current(cls) -> DistInfo:
        """The running process group, or a single process when there is none."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
        return cls()

    @classmethod
    def from_env(cls, backend: str | None = None, device: str | None = "auto") -> DistInfo:
        """Initialise the process group from torchrun's environment if present."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            backend = backend or backend_for(device)
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            kwargs: dict[str, Any] = {}
            if backend == "nccl":
                torch.cuda.set_device(local_rank)
                # Binds the communicator to this GPU: no "barrier() using device ..." guess and warning.
                kwargs["device_id"] = torch.device("cuda", local_rank)
            dist.init_process_group(backend=backend, timeout=timedelta(minutes=60), **kwargs)
        return cls.current()


def backend_for(device: str | None, cuda_available: bool | None = None) -> str:
    """nccl when the configured device is CUDA, gloo otherwise (not: whenever CUDA exists)."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    requested = (device or "auto").strip()
    kind = ("cuda" if cuda_available else "cpu") if requested == "auto" else torch.device(requested).type
    return "nccl" if kind == "cuda" else "gloo"


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(clean: bool = True) -> None:
    """Destroy the process group, after a barrier when every rank got here normally.

    Without the barrier a rank that finished first tore gloo down while its peer's last
    collective was still in flight, and the peer aborted ("terminate called without an active
    exception"). After an error the barrier is skipped: a dead peer would make it wait.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if clean:
        dist.barrier()
    _CONTROL_GROUPS.clear()
    dist.destroy_process_group()


_CONTROL_GROUPS: dict[int, Any] = {}


def _control_group() -> Any:
    """A gloo group for CPU-side decisions (the default group when it is gloo already)."""
    if dist.get_backend() == "gloo":
        return None
    key = id(dist.group.WORLD)
    if key not in _CONTROL_GROUPS:  # created lazily, at the same call on every rank
        _CONTROL_GROUPS[key] = dist.new_group(backend="gloo")
    return _CONTROL_GROUPS[key]


def any_across(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is True on any rank (a MAX all-reduce of one CPU int)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_control_group())
    return bool(t.item())


def mean_across(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values)
        values /= info.world_size
    return values


def shard(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's rows of a tensor drawn for the global batch."""
    return t[info.rank :: info.world_size] if info.enabled else t


class DistBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover every rank's batch (any backend)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        xf = x.float()
        count = torch.tensor([x.numel() // c], dtype=torch.float32, device=x.device)
        # Two passes (mean, then centred squares) as cuDNN/ATen do, for accuracy.
        total = all_reduce(torch.cat([xf.sum(dim=(0, 2, 3)), count]))
        n = total[c]
        mean = total[:c] / n
        centred = xf - mean[None, :, None, None]
        var = all_reduce(centred.square().sum(dim=(0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Global-batch BatchNorm for DDP: SyncBatchNorm on CUDA, DistBatchNorm2d elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = DistBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.to(child.weight.device if child.affine else device)
            setattr(module, name, new)
        else:
            convert_batchnorm(child, device)
    return module


def wrap(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP-wrap ``module`` when running distributed.

    Call :func:`convert_batchnorm` first, before creating the optimiser.
    """
    if not info.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    # Buffers (BN running stats) are kept equal by the synchronised statistics.
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)
