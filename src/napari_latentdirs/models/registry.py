"""Save and load generators as safetensors + JSON; never unpickle.

A generator file holds the state dict of a :class:`dcgan.Generator` or of a
whole :class:`vae.VAE` (decoder = G, encoder for ``encode``); its JSON sidecar
holds ``kind``, the architecture config, ``latent_dim`` and the
preprocessing (in the file's header, copied to a JSON sidecar), so
:func:`load_generator` rebuilds the network from the file alone, and
:func:`preprocessing_of` decodes its images to HU with the window of the data
it was trained on. Training checkpoints (``<run>/checkpoints/*.safetensors``) and run
folders (``<run>/generator.safetensors``) load the same way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.preprocess import DEFAULT, Preprocessing
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

log = logging.getLogger(__name__)

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


def save_generator(path: str | Path, model: nn.Module, meta: dict[str, Any] | None = None,
                   preprocessing: Preprocessing | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically.

    The recorded preprocessing is ``meta["preprocessing"]`` when given, else
    ``preprocessing``, else the model's own record (a loaded generator saved again),
    else the default window."""
    model = getattr(model, "module", model)
    info = describe(model)
    meta = dict(meta or {})
    if "preprocessing" in meta:
        prep = Preprocessing.from_dict(meta.pop("preprocessing"))
    elif preprocessing is not None:
        prep = preprocessing
    else:
        own = getattr(model, "meta", None)
        prep = preprocessing_of(model) if isinstance(own, dict) and "preprocessing" in own else DEFAULT
    full = {"preprocessing": prep.to_dict(), **meta, "format": FORMAT, **info}
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
    meta = read_meta(p, repair=False)  # write nothing (a sidecar) before the file has proved loadable
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
    except (TypeError, ValueError, OverflowError, RuntimeError) as exc:  # RuntimeError: sizes beyond any storage
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


def preprocessing_of(source: Any, what: str | None = None) -> Preprocessing:
    """The preprocessing a generator, generator file, direction set or cache records.

    ``source`` may be a loaded generator (its ``meta``), a metadata dict, a
    ``Preprocessing``, an object with a ``preprocessing`` attribute (a
    ``SliceCache``, a ``DirectionSet``, a dataset over a cache) or the path of a
    generator file / run folder. A source without a record (a file from before
    the window was recorded, an in-memory model) decodes with the default window
    [-1000, 2000] HU, and a note says so in the log; a malformed record raises
    ``ValueError`` rather than silently decoding with the wrong window.
    """
    if isinstance(source, Preprocessing):
        return source
    name = what
    if isinstance(source, (str, os.PathLike)):
        name = name or str(source)
        meta: Any = generator_meta(source)
    elif isinstance(source, dict):
        meta = source
    else:
        own = getattr(source, "preprocessing", None)
        if isinstance(own, Preprocessing):
            return own
        if isinstance(own, dict):
            meta = {"preprocessing": own}
        else:
            meta = getattr(getattr(source, "module", source), "meta", None)
            if meta is None:  # a dataset over a cache
                cache_prep = getattr(getattr(source, "cache", None), "preprocessing", None)
                if isinstance(cache_prep, Preprocessing):
                    return cache_prep
        name = name or type(source).__name__
    record = meta.get("preprocessing") if isinstance(meta, dict) else None
    if record is None:
        log.info("%s records no preprocessing (an older file?); decoding with the default HU window %g..%g",
                 name or "the generator", DEFAULT.hu_min, DEFAULT.hu_max)
        return DEFAULT
    try:
        return Preprocessing.from_dict(record)
    except ValueError as exc:
        raise ValueError(f"{name or 'the generator'}: {exc}") from exc
