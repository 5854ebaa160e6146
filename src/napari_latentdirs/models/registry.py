"""Save and load generators as safetensors + JSON; never unpickle.

A generator file holds the state dict of a :class:`dcgan.Generator` or of a
whole :class:`vae.VAE` (decoder = G, encoder for ``encode``); its JSON sidecar
holds ``kind``, the architecture config, ``latent_dim`` and the
preprocessing (in the file's header, copied to a JSON sidecar), so
:func:`load_generator` rebuilds the network from the file alone. Training checkpoints (``<run>/checkpoints/*.safetensors``) and run
folders (``<run>/generator.safetensors``) load the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.preprocess import DEFAULT as PREPROCESSING
from ..utils.weights import (
    WeightsFormatError,
    check_shapes,
    load_weights,
    read_header,
    read_meta,
    save_weights,
    sha256_file,
)
from .dcgan import DCGANConfig, Generator
from .vae import VAE, VAEConfig

FORMAT = "napari-latentdirs/generator/1"
GENERATOR_FILE = "generator.safetensors"
# Module names used inside training checkpoints (see training/gan.py, training/vae.py).
CHECKPOINT_MODULE = {"dcgan": "G", "vae": "vae"}


def describe(model: nn.Module) -> dict[str, Any]:
    """``{"kind", "config", "latent_dim"}`` for a DCGAN generator or a VAE."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    if isinstance(model, Generator):
        return {"kind": "dcgan", "config": model.cfg.to_dict(), "latent_dim": model.latent_dim}
    if isinstance(model, VAE):
        return {"kind": "vae", "config": model.cfg.to_dict(), "latent_dim": model.latent_dim}
    raise TypeError(f"cannot save {type(model).__name__}: expected dcgan.Generator or vae.VAE")


def build(kind: str, config: dict[str, Any]) -> nn.Module:
    if kind == "dcgan":
        return Generator(DCGANConfig.from_dict(config))
    if kind == "vae":
        return VAE(VAEConfig.from_dict(config))
    raise ValueError(f"unknown generator kind {kind!r} (expected 'dcgan' or 'vae')")


def save_generator(path: str | Path, model: nn.Module, meta: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically."""
    model = getattr(model, "module", model)
    info = describe(model)
    full = {"preprocessing": PREPROCESSING.to_dict(), **(meta or {}), "format": FORMAT, **info}
    tensors = dict(model.state_dict())
    return save_weights(Path(path), tensors, full)


def resolve(path: str | Path) -> Path:
    """A generator file, or a run folder holding ``generator.safetensors``."""
    p = Path(path)
    if p.is_dir():
        cand = p / GENERATOR_FILE
        if not cand.is_file():
            raise FileNotFoundError(f"{p} is a folder without {GENERATOR_FILE} (has the run finished?)")
        return cand
    return p


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the generator from its metadata and load its weights: eval mode, frozen.

    The metadata (not covered by any hash) is checked against the tensor shapes
    in the file's header before anything is allocated: a forged architecture
    fails at once, whatever size it claims.
    """
    p = resolve(path)
    meta = read_meta(p)
    kind, config = meta.get("kind"), meta.get("config")
    if kind is None or config is None:
        raise ValueError(f"{p}: its metadata has no generator 'kind'/'config'; not a napari-latentdirs generator")
    if kind not in CHECKPOINT_MODULE:
        raise ValueError(f"{p}: unknown generator kind {kind!r} (expected 'dcgan' or 'vae')")
    if not isinstance(config, dict):
        raise WeightsFormatError(f"{p}: the generator 'config' in its metadata is not a JSON object")
    prefix = "" if meta.get("format") == FORMAT else f"model/{CHECKPOINT_MODULE[kind]}/"
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            skeleton = build(kind, config)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WeightsFormatError(f"{p}: the {kind} config in its metadata is invalid: {exc}") from exc
    expected = {k: v.shape for k, v in skeleton.state_dict().items()}
    check_shapes(p, expected, read_header(p), prefix, what=f"{kind} generator")
    tensors, meta = load_weights(p)
    if prefix:  # a training checkpoint: tensors are prefixed
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    model = build(kind, config)
    model.load_state_dict(tensors, strict=True)
    model.eval().requires_grad_(False)
    model.meta = meta  # provenance for callers (fid, epoch, data fingerprint)
    return model.to(device)


def generator_meta(path: str | Path) -> dict[str, Any]:
    return read_meta(resolve(path))


def generator_fingerprint(path: str | Path) -> str:
    """sha256 of the weights file: what direction sets record as ``generator``."""
    return sha256_file(resolve(path))
