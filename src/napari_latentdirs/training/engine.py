"""The machinery shared by the GAN and VAE engines.

A :class:`Trainer` owns the models, optimisers, data order and checkpoints;
``Trainer.run(stop)`` is the event generator the CLI, napari and tests
consume. Subclasses define ``build`` and ``train_step``.

Reproducibility (bit-exact resume on CPU):
- data order: epoch e is ``DistributedSampler(seed=cfg.seed).set_epoch(e)``,
  so it is recomputed, not stored; a resumed run skips the epoch's first
  ``step % steps_per_epoch`` batches;
- every random draw of step t (latents, label targets, instance noise,
  augmentation, VAE eps) comes from a generator seeded with (seed, t), so
  no generator state needs saving; the global RNGs are checkpointed anyway
  (``training.state``);
- models, optimisers, AMP scaler and running metric sums are checkpointed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..data.preprocess import DEFAULT as PREPROCESSING
from ..events import (
    CheckpointSaved,
    EpochEnd,
    Event,
    Finished,
    Message,
    Samples,
    Started,
    Step,
    Stopped,
)
from ..models import registry
from ..utils.runtime import select_device
from ..utils.weights import read_meta
from . import ddp
from .config import TrainConfig
from .data import fingerprint_of
from .fid import FID, FIDUnavailable
from .state import RunDir, ScalarLogger

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "napari-latentdirs/checkpoint/1"
LAST = "last"
_MASK63 = (1 << 63) - 1


def step_seed(seed: int, step: int) -> int:
    """A well-mixed 63-bit seed for step ``step`` (splitmix64 finaliser)."""
    x = (seed * 0x9E3779B97F4A7C15 + step + 1) & ((1 << 64) - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (x ^ (x >> 31)) & _MASK63


def resolve_device(requested: str, info: ddp.DistInfo) -> torch.device:
    dev = select_device(requested)
    if info.enabled and dev.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return dev


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision only on CUDA; CPU and MPS stay float32."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class Trainer:
    kind = "base"  # "gan" | "vae"
    export_name = "G"  # key of the module exported as the generator

    def __init__(
        self,
        cfg: TrainConfig,
        data: Dataset,
        run_dir: str | Path,
        test_data: Dataset | None = None,
        dist: ddp.DistInfo | None = None,
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.data = data
        self.test_data = test_data
        self.dist = dist or ddp.DistInfo.current()
        self.device = resolve_device(cfg.device, self.dist)
        self.amp = amp_dtype(cfg.amp, self.device)
        self.channels_last = cfg.channels_last and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.data_fingerprint = fingerprint_of(data)

        n, gb, w = len(data), cfg.batch_size, self.dist.world_size
        if gb % w:
            raise ValueError(f"global batch {gb} is not divisible by the {w} ranks")
        self.local_batch = gb // w
        self.steps_per_epoch = n // gb
        if self.steps_per_epoch < 1:
            raise ValueError(f"the dataset has {n} slices, fewer than one batch of {gb}")
        total = cfg.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps else total
        self.last_epoch = (self.total_steps - 1) // self.steps_per_epoch

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank and every run
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.build()
        for m in self.modules.values():
            m.to(self.device)
            if self.channels_last:
                m.to(memory_format=torch.channels_last)
            m.train()
            if self.dist.enabled:  # before the optimisers: conversion makes new BN parameters
                ddp.convert_batchnorm(m, self.device)
        self.make_optimizers()
        self.wrapped = {k: ddp.wrap(m, self.dist, self.device) for k, m in self.modules.items()}

        self.run_dir = RunDir(run_dir, create=self.dist.is_main)
        self.step = 0
        self.state: dict[str, Any] = {"best_fid": None, "best_epoch": None, "sums": {}, "count": 0}
        g = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed_z = torch.randn(cfg.n_samples, self.latent_dim, generator=g)
        self._fid: FID | None = None
        self._fid_error: str | None = None if cfg.fid else "FID disabled in the config"
        self.logger: ScalarLogger | None = None

    # -- to define in subclasses -------------------------------------------------
    latent_dim = 32

    def build(self) -> None:
        raise NotImplementedError

    def make_optimizers(self) -> None:
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def generator_module(self) -> nn.Module:
        """The module exported as the generator (DCGAN G, or the whole VAE)."""
        return self.modules[self.export_name]

    def sample(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator_module().generate(z)

    def evaluate(self) -> dict[str, float]:
        return self.fid_metrics()

    # -- helpers for train_step --------------------------------------------------
    def step_generator(self, step: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(step_seed(self.cfg.seed, step))

    def global_draw(self, fn, *shape: int, g: torch.Generator) -> torch.Tensor:
        """Draw (global_batch, *shape) and keep this rank's rows."""
        t = fn((self.cfg.batch_size, *shape), generator=g, device=self.device)
        return ddp.shard(t, self.dist)

    def autocast(self):
        if self.amp is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def optimizer_step(self, opt: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(opt)
        else:
            opt.step()

    def backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        self.backward(loss)
        self.optimizer_step(opt)

    def prepare_batch(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, (list, tuple)):
            x = x[0]
        x = x.to(self.device, non_blocking=True).float()
        if x.ndim == 3:
            x = x[:, None]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # -- data order --------------------------------------------------------------
    def epoch_batches(self, epoch: int, start: int) -> list[list[int]]:
        sampler = DistributedSampler(
            self.data, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True, seed=self.cfg.seed
        )
        sampler.set_epoch(epoch)
        idx = list(sampler)
        b = self.local_batch
        return [idx[i * b : (i + 1) * b] for i in range(start, self.steps_per_epoch)]

    def batches(self, epoch: int, start: int) -> Iterator[torch.Tensor]:
        plan = self.epoch_batches(epoch, start)
        if self.cfg.num_workers > 0:
            loader = DataLoader(
                self.data, batch_sampler=plan, num_workers=self.cfg.num_workers, pin_memory=self.device.type == "cuda"
            )
            yield from loader
            return
        for idx in plan:
            yield torch.stack([torch.as_tensor(self.data[i]) for i in idx])

    # -- checkpoints -------------------------------------------------------------
    def checkpoint_meta(self) -> dict[str, Any]:
        desc = registry.describe(self.generator_module())
        return {
            "format": CHECKPOINT_FORMAT,
            "engine": self.kind,
            "kind": desc["kind"],  # generator kind + config: load_generator reads these
            "config": desc["config"],
            "latent_dim": desc["latent_dim"],
            "train_config": self.cfg.to_dict(),
            "preprocessing": PREPROCESSING.to_dict(),
            "data_fingerprint": self.data_fingerprint,
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.dist.world_size,
            "engine_state": self.state,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def save(self, name: str = LAST) -> Path:
        path = self.run_dir.path(name)
        if self.dist.is_main:
            self.run_dir.save(name, self.modules, self.optimizers, self.checkpoint_meta())
        ddp.barrier(self.dist)
        return path

    def try_resume(self) -> bool:
        if not self.run_dir.has(LAST):
            return False
        self._check_compatible(read_meta(self.run_dir.path(LAST)))
        meta = self.run_dir.load(LAST, self.modules, self.optimizers, map_location=self.device)
        self.step = int(meta["step"])
        self.state = meta["engine_state"]
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        return True

    def _check_compatible(self, meta: dict[str, Any]) -> None:
        desc = registry.describe(self.generator_module())
        if meta.get("engine") != self.kind or meta.get("config") != desc["config"]:
            raise ValueError(
                f"{self.run_dir.root}: existing checkpoint is a {meta.get('engine')} run with model "
                f"{meta.get('config')}; this run is {self.kind} with {desc['config']}. Use another --out folder."
            )
        fp = meta.get("data_fingerprint")
        if "unknown" not in (fp, self.data_fingerprint) and fp != self.data_fingerprint:
            raise ValueError(
                f"{self.run_dir.root}: checkpoint was trained on data {fp}, not {self.data_fingerprint}; "
                "resume with the same data or start a new run folder"
            )
        if int(meta.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            raise ValueError("batch size changed since the checkpoint; resume with the same batch size")

    # -- evaluation and export ---------------------------------------------------
    def eval_batches(self, limit: int) -> Iterator[torch.Tensor]:
        src = self.test_data if self.test_data is not None else self.data
        n = min(len(src), limit)
        for i in range(0, n, self.cfg.fid_batch):
            yield torch.stack([torch.as_tensor(src[j]) for j in range(i, min(n, i + self.cfg.fid_batch))])

    @torch.no_grad()
    def fake_batches(self, n: int) -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(self.cfg.seed + 2)
        for i in range(0, n, self.cfg.fid_batch):
            z = torch.randn(min(self.cfg.fid_batch, n - i), self.latent_dim, generator=g).to(self.device)
            with self.autocast():
                yield self.sample(z).float()

    def fid_metrics(self) -> dict[str, float]:
        if self._fid_error is not None:
            return {}
        try:
            if self._fid is None:
                self._fid = FID(self.cfg.fid_weights, device=self.device)
                self._fid.add_real(self.eval_batches(self.cfg.fid_samples))
        except FIDUnavailable as exc:
            self._fid_error = str(exc)
            return {}
        mod = self.generator_module()
        mod.eval()
        try:
            return {"fid": self._fid.score(self.fake_batches(self.cfg.fid_samples))}
        finally:
            mod.train()

    def export(self, epoch: int, metrics: dict[str, float], selected_by: str) -> Path:
        path = self.run_dir.root / registry.GENERATOR_FILE
        registry.save_generator(
            path,
            self.generator_module(),
            {
                "epoch": epoch,
                "step": self.step,
                "metrics": metrics,
                "selected_by": selected_by,
                "data_fingerprint": self.data_fingerprint,
                "train_config": self.cfg.to_dict(),
            },
        )
        return path

    @torch.no_grad()
    def samples_event(self) -> Samples:
        mod = self.generator_module()
        mod.eval()
        try:
            with self.autocast():
                imgs = self.sample(self.fixed_z.to(self.device)).float()
        finally:
            mod.train()
        arr = imgs[:, 0].cpu().numpy().astype(np.float32)
        if self.logger is not None:
            self.logger.log_images(self.step, "samples", arr)
        return Samples(self.step, arr)

    # -- the event loop ----------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> Iterator[Event]:
        stop = stop or threading.Event()
        resumed = self.try_resume()
        yield Started(self.total_steps, self.step, self.run_dir.root)
        if resumed:
            yield Message(f"resumed {self.kind} run from step {self.step} of {self.total_steps}")
        if self.dist.is_main:
            self.logger = ScalarLogger(self.run_dir.root)
        try:
            while self.step < self.total_steps:
                epoch, first = divmod(self.step, self.steps_per_epoch)
                for x in self.batches(epoch, first):
                    if stop.is_set():
                        path = self.save(LAST)
                        yield CheckpointSaved(self.step, path)
                        yield Stopped(self.step, path)
                        return
                    losses = self.train_step(self.prepare_batch(x), self.step)
                    self.step += 1
                    values = self._reduce(losses)
                    for k, v in values.items():
                        self.state["sums"][k] = self.state["sums"].get(k, 0.0) + v
                    self.state["count"] += 1
                    yield Step(self.step, self.total_steps, values)
                    if self.logger is not None and self.step % max(self.cfg.log_every, 1) == 0:
                        self.logger.log(self.step, {f"train/{k}": v for k, v in values.items()})
                    if self.cfg.sample_every and self.step % self.cfg.sample_every == 0:
                        yield self.samples_event()
                    if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                        yield CheckpointSaved(self.step, self.save(LAST))
                    if self.step >= self.total_steps:
                        break
                yield from self.end_epoch(epoch)
            yield from self.finish()
        finally:
            if self.logger is not None:
                self.logger.close()
                self.logger = None

    def _reduce(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        keys = sorted(losses)
        vec = torch.stack([torch.as_tensor(losses[k], dtype=torch.float32, device=self.device) for k in keys])
        vec = ddp.mean_across(vec.detach(), self.dist).cpu().tolist()
        return dict(zip(keys, vec))

    def end_epoch(self, epoch: int) -> Iterator[Event]:
        count = max(self.state["count"], 1)
        metrics = {f"epoch/{k}": v / count for k, v in self.state["sums"].items()}
        self.state["sums"], self.state["count"] = {}, 0
        in_window = epoch > self.last_epoch - self.cfg.select_last
        if self.dist.is_main:
            if in_window:
                metrics.update(self.evaluate())
                if self._fid_error is not None and not self.state.get("fid_warned"):
                    self.state["fid_warned"] = True
                    yield Message(self._fid_error + "; the last epoch's weights are kept instead")
            fid = metrics.get("fid")
            best = self.state["best_fid"]
            if not in_window:
                self.export(epoch + 1, metrics, "latest (before the selection window)")
            elif fid is None:
                self.export(epoch + 1, metrics, "last epoch (no FID)")
            elif best is None or fid < best or self.state["best_epoch"] is None:
                self.state["best_fid"], self.state["best_epoch"] = fid, epoch + 1
                self.export(epoch + 1, metrics, f"best FID of the last {self.cfg.select_last} epochs")
            if self.logger is not None:
                self.logger.log(self.step, metrics)
            yield self.samples_event()
        path = self.save(LAST)
        yield EpochEnd(epoch + 1, self.step, metrics)
        yield CheckpointSaved(self.step, path)

    def finish(self) -> Iterator[Event]:
        out = self.run_dir.root / registry.GENERATOR_FILE
        metrics: dict[str, float] = {}
        if self.state.get("best_fid") is not None:
            metrics = {"best_fid": float(self.state["best_fid"]), "best_epoch": float(self.state["best_epoch"])}
        ddp.barrier(self.dist)
        yield Finished(self.step, out, metrics)
