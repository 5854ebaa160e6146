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
On CUDA a resumed run continues from the same state; its kernels are
bit-for-bit repeatable only with ``deterministic: true`` and on the same GPU
model and library versions (``utils.runtime.configure_backends``).

Losses stay on the device and are brought to the host every ``sync_every``
steps (every step on the CPU, where that costs nothing; every ``log_every``
steps on a GPU), summed since the last time: a NaN or inf anywhere in that
window stops the run with :class:`NonFiniteLossError` before any checkpoint
or export is written. ``Step`` events between those points carry no losses.
Under DDP the ranks agree every step on whether to stop (``ddp.any_across``),
so they all checkpoint at the same step.
"""

from __future__ import annotations

import json
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
from ..models.fid import FID, FIDUnavailable, check_weights_file
from ..utils.folderlock import locked_events
from ..utils.runtime import amp_dtype, configure_backends, loader_workers, select_device, step_seed
from ..utils.weights import read_meta
from . import ddp
from .averaging import WeightEMA, recalibrate_batchnorm
from .config import TrainConfig
from .data import check_slices, fingerprint_of, preprocessing_of_data
from .state import NonFiniteLossError, RunDir, ScalarLogger, check_run_folder

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "napari-latentdirs/checkpoint/1"
LAST = "last"

__all__ = ["CHECKPOINT_FORMAT", "LAST", "NonFiniteLossError", "Trainer", "amp_dtype", "resolve_device", "step_seed"]


def resolve_device(requested: str, info: ddp.DistInfo) -> torch.device:
    dev = select_device(requested)
    if info.enabled and dev.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return dev


class ChangedSettingsError(ValueError):
    """A re-run changes a setting that defines what the checkpoint trained (named in the message)."""


#: Training settings a re-run may change: they steer the rest of the run only (its length, rate,
#: logging, model selection, hardware). Every other setting refuses a re-run that changes it.
APPLIED_ON_RESUME = frozenset({
    "lr", "epochs", "max_steps", "device", "amp", "channels_last", "deterministic", "num_workers", "log_every",
    "sync_every", "sample_every", "n_samples", "checkpoint_every", "fid", "select_last", "fid_samples",
    "fid_batch", "fid_weights",
})


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
        configure_backends(self.device, cfg.deterministic)
        # Refuse bad inputs before anything is written or trained.
        check_run_folder(run_dir)
        mcfg = cfg.model_config()
        check_slices(data, mcfg.image_size, mcfg.channels, f"training data {fingerprint_of(data)}")
        if cfg.fid and cfg.fid_weights:
            check_weights_file(cfg.fid_weights)
        self.data_fingerprint = fingerprint_of(data)
        # The HU window of the data: recorded in every checkpoint, export and samples event.
        self.preprocessing = preprocessing_of_data(data)

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
        self.num_workers = loader_workers(cfg.num_workers, self.device, self.dist.world_size)
        # Host syncs cost nothing on the CPU; on a GPU each one stalls the queue of kernels.
        self.sync_every = cfg.sync_every or (1 if self.device.type == "cpu" else max(cfg.log_every, 1))

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
        self.ema = WeightEMA(self.generator_module(), cfg.ema) if cfg.ema > 0 else None

        self.run_dir = RunDir(run_dir, create=self.dist.is_main)
        if self.dist.is_main:
            self.run_dir.clean_stale_temps()
        self.step = 0
        self._applied = ""  # settings changed since the checkpoint (try_resume)
        self.state: dict[str, Any] = {"best_fid": None, "best_epoch": None, "sums": {}, "count": 0}
        g = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed_z = torch.randn(cfg.n_samples, self.latent_dim, generator=g)
        self._fid: FID | None = None
        self._fid_error: str | None = None if cfg.fid else "FID disabled in the config"
        self.logger: ScalarLogger | None = None
        # Losses summed on the device since the last sync, and the batches they came from.
        self._window: torch.Tensor | None = None
        self._last: torch.Tensor | None = None
        self._window_keys: list[str] = []
        self._window_steps = 0
        self._window_batches: list[list[int]] = []

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

    def state_modules(self) -> dict[str, nn.Module]:
        """What a checkpoint holds: the trained modules and, when averaging, the average."""
        return {**self.modules, **({"ema": self.ema.shadow} if self.ema is not None else {})}

    def update_average(self) -> None:
        """Call after each generator update."""
        if self.ema is not None:
            self.ema.update(self.generator_module(), self.step)

    def export_module(self) -> nn.Module:
        """The generator as it is exported: the average when averaging, BatchNorm statistics
        re-estimated on z ~ N(0, I) when configured (on a plain copy, so DDP's synchronised
        BatchNorm never runs on one rank alone); eval mode."""
        mod = self.ema.shadow if self.ema is not None else self.generator_module()
        if not self.cfg.recalibrate_bn:
            return mod
        desc = registry.describe(mod)
        plain = registry.build(desc["kind"], desc["config"]).to(self.device)
        plain.load_state_dict(mod.state_dict())
        recalibrate_batchnorm(getattr(plain, "decoder", plain), self.latent_dim, generate=plain.generate,
                              seed=self.cfg.seed + 3, device=self.device)
        return plain.eval().requires_grad_(False)


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

    def batches(self, epoch: int, start: int) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(dataset indices, batch) for this rank, from step ``start`` of the epoch on."""
        plan = self.epoch_batches(epoch, start)
        if self.num_workers > 0:
            loader = DataLoader(self.data, batch_sampler=plan, num_workers=self.num_workers,
                                pin_memory=self.device.type == "cuda", prefetch_factor=4)
            yield from zip(plan, loader)  # the loader keeps the plan's order
            return
        getitems = getattr(self.data, "__getitems__", None)  # one read per batch (slice cache, .npy)
        for idx in plan:
            items = getitems(idx) if getitems is not None else [self.data[i] for i in idx]
            yield idx, torch.stack([torch.as_tensor(v) for v in items])

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
            "preprocessing": self.preprocessing.to_dict(),
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
        self.sync_losses()  # every rank; raises before a non-finite state is written
        path = self.run_dir.path(name)
        if self.dist.is_main:
            self.run_dir.check_in_place()
            self.run_dir.save(name, self.state_modules(), self.optimizers, self.checkpoint_meta())
        ddp.barrier(self.dist)
        return path

    def try_resume(self) -> bool:
        if not self.run_dir.has(LAST):
            return False
        saved = read_meta(self.run_dir.path(LAST))
        self._check_compatible(saved)
        self._applied = self._changed_settings(saved.get("train_config", {}))
        meta = self.run_dir.load(LAST, self.state_modules(), self.optimizers, map_location=self.device)
        for opt in self.optimizers.values():  # the saved optimiser state carries the old rate
            for group in opt.param_groups:
                group["lr"] = self.cfg.lr
        self.step = int(meta["step"])
        self.state = meta["engine_state"]
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        return True

    def _changed_settings(self, saved: dict[str, Any]) -> str:
        """Compare the checkpoint's training config with this run's, setting by setting.

        Settings that steer only the rest of the run (:data:`APPLIED_ON_RESUME`) are applied from
        the checkpoint's step on and listed in the returned text; any other difference would mix two
        runs in one set of weights, so it refuses the re-run, naming the settings (as ``directions`` does)."""
        now = json.loads(json.dumps(self.cfg.to_dict()))  # as the checkpoint stores it (tuples are lists)
        diff = {k: (saved[k], now[k]) for k in sorted(set(saved) & set(now)) if saved[k] != now[k]}
        refused = {k: v for k, v in diff.items() if k not in APPLIED_ON_RESUME}
        if refused:
            shown = ", ".join(f"{k} ({a!r} in the checkpoint, {b!r} now)" for k, (a, b) in refused.items())
            raise ChangedSettingsError(
                f"{self.run_dir.root} holds a {self.kind} run with other settings: {shown}. These define what was "
                "trained so far: continue it with its own settings (--resume RUN) or start a new --out folder")
        return ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diff.items())

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
    def fake_batches(self, n: int, module: nn.Module | None = None) -> Iterator[torch.Tensor]:
        module = module if module is not None else self.generator_module()
        g = torch.Generator().manual_seed(self.cfg.seed + 2)
        for i in range(0, n, self.cfg.fid_batch):
            z = torch.randn(min(self.cfg.fid_batch, n - i), self.latent_dim, generator=g).to(self.device)
            with self.autocast():
                x = module.generate(z)
            # Yield outside the autocast block: a suspended generator would leave autocast on
            # in the caller, and the Inception features of the fakes would be bf16 ones.
            yield x.float()

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
        mod = self.export_module()
        was = mod.training
        mod.eval()
        try:
            return {"fid": self._fid.score(self.fake_batches(self.cfg.fid_samples, mod))}
        finally:
            mod.train(was)

    def export(self, epoch: int, metrics: dict[str, float], selected_by: str) -> Path:
        self.run_dir.check_in_place()  # never recreate a moved run's old path with a generator
        path = self.run_dir.root / registry.GENERATOR_FILE
        registry.save_generator(
            path,
            self.export_module(),
            {
                "epoch": epoch,
                "step": self.step,
                "metrics": metrics,
                "selected_by": selected_by,
                "data_fingerprint": self.data_fingerprint,
                "train_config": self.cfg.to_dict(),
                "preprocessing": self.preprocessing.to_dict(),
            },
        )
        return path

    @torch.no_grad()
    def samples_event(self) -> Samples:
        mod = self.export_module()  # show what would be exported
        was = mod.training
        mod.eval()
        try:
            with self.autocast():
                imgs = mod.generate(self.fixed_z.to(self.device)).float()
        finally:
            mod.train(was)
        arr = imgs[:, 0].cpu().numpy().astype(np.float32)
        if self.logger is not None:
            self.run_dir.check_in_place()
            self.logger.log_images(self.step, "samples", arr)
        return Samples(self.step, arr, self.preprocessing.to_dict())

    # -- the event loop ----------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> Iterator[Event]:
        """The events of the run; rank 0 holds the run folder's lock throughout (one writer)."""
        events = self._run(stop)
        return locked_events(self.run_dir.root, events) if self.dist.is_main else events

    def _run(self, stop: threading.Event | None = None) -> Iterator[Event]:
        stop = stop or threading.Event()
        resumed = self.try_resume()
        yield Started(self.total_steps, self.step, self.run_dir.root)
        if resumed:
            yield Message(f"resumed {self.kind} run from step {self.step} of {self.total_steps}")
            if self._applied:
                yield Message(f"settings changed since the checkpoint, applied from step {self.step}: {self._applied}")
        if self.dist.is_main:
            self.logger = ScalarLogger(self.run_dir.root)
        log_every = max(self.cfg.log_every, 1)
        try:
            while self.step < self.total_steps:
                epoch, first = divmod(self.step, self.steps_per_epoch)
                for idx, x in self.batches(epoch, first):
                    # Every rank takes part, so all stop at the same step and checkpoint together.
                    if ddp.any_across(stop.is_set(), self.dist):
                        path = self.save(LAST)
                        yield CheckpointSaved(self.step, path)
                        yield Stopped(self.step, path)
                        return
                    losses = self.train_step(self.prepare_batch(x), self.step)
                    self.step += 1
                    self._accumulate(losses, idx)
                    values: dict[str, float] = {}
                    if self.step % self.sync_every == 0 or self.step % log_every == 0:
                        values = self.sync_losses()
                    yield Step(self.step, self.total_steps, values)
                    if self.logger is not None and values and self.step % log_every == 0:
                        self.run_dir.check_in_place()
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

    def _accumulate(self, losses: dict[str, torch.Tensor], idx: list[int]) -> None:
        """Add a step's losses to the device-side window (no host transfer)."""
        keys = sorted(losses)
        vec = torch.stack([torch.as_tensor(losses[k], device=self.device).detach().float().reshape(())
                           for k in keys])
        if self._window is None:
            self._window, self._window_keys = vec.clone(), keys
        else:
            self._window += vec
        self._last = vec
        self._window_steps += 1
        self._window_batches.append(list(idx))

    def sync_losses(self) -> dict[str, float]:
        """Bring the window of losses to the host (collective: every rank calls it at the same step).

        Adds the window to the epoch sums and returns the last step's losses,
        averaged over ranks; raises :class:`NonFiniteLossError` if any is NaN or inf.
        """
        if self._window is None:
            return {}
        keys, n = self._window_keys, len(self._window_keys)
        vec = ddp.mean_across(torch.cat([self._last, self._window]), self.dist).tolist()  # the one transfer
        last, window = vec[:n], vec[n:]
        if not all(np.isfinite(v) for v in vec):
            raise NonFiniteLossError(self._non_finite_message(keys, vec[n:], last))
        for k, v in zip(keys, window):
            self.state["sums"][k] = self.state["sums"].get(k, 0.0) + v
        self.state["count"] += self._window_steps
        self._window, self._window_steps, self._window_batches = None, 0, []
        return dict(zip(keys, last))

    def _non_finite_message(self, keys: list[str], window: list[float], last: list[float]) -> str:
        names = sorted({k for k, v, w in zip(keys, last, window) if not (np.isfinite(v) and np.isfinite(w))})
        first = self.step - self._window_steps + 1
        span = f"step {self.step}" if first == self.step else f"steps {first}-{self.step}"
        bad: list[int] = []
        for idx in self._window_batches:  # re-read only on failure
            bad += [i for i in idx if not torch.isfinite(torch.as_tensor(self.data[i])).all()]
        cause = (f"the training data {self.data_fingerprint} has non-finite pixels (NaN/inf) in item(s) "
                 f"{sorted(set(bad))[:8]}" if bad else
                 "the slices of those batches are finite, so the model diverged (try a lower learning rate, "
                 "or --amp off)")
        return (f"non-finite training loss ({', '.join(names)}) at {span}; stopped before writing any checkpoint "
                f"or generator from it: {cause}")

    def end_epoch(self, epoch: int) -> Iterator[Event]:
        self.sync_losses()
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
