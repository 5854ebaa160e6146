"""Weights as safetensors plus a JSON sidecar. Nothing here ever unpickles.

``save_weights(path, tensors, meta)`` writes ``path`` (``.safetensors``) and
``path.with_suffix('.json')``, each atomically; the JSON is written last, so
a checkpoint counts as complete only when its JSON exists and its recorded
sha256 matches the tensor file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_path, atomic_write_text

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


class UnsafeWeightsError(ValueError):
    """Raised for files that would need unpickling (torch.save / pickle / zip)."""


class IncompleteCheckpointError(ValueError):
    """Raised when a checkpoint's sidecar is missing or does not match its weights."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sidecar(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_weights(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    meta = dict(meta)
    meta["weights_sha256"] = sha256_file(path)
    meta["weights_file"] = path.name
    atomic_write_text(sidecar(path), json.dumps(meta, indent=2, sort_keys=True, default=_json_default))
    return path


def load_weights(path: str | Path, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``path`` and its JSON sidecar; refuse pickles and incomplete writes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if path.suffix in {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"} or head.startswith(PICKLE_MAGIC):
        raise UnsafeWeightsError(
            f"{path} looks like a pickle/torch.save file; napari-latentdirs only loads "
            "safetensors weights (convert it in a trusted environment first)"
        )
    meta_path = sidecar(path)
    if not meta_path.is_file():
        raise IncompleteCheckpointError(f"{path} has no JSON sidecar {meta_path.name}; the write may have been interrupted")
    meta = json.loads(meta_path.read_text())
    if verify and meta.get("weights_sha256") not in (None, sha256_file(path)):
        raise IncompleteCheckpointError(f"{path} does not match the sha256 recorded in {meta_path.name}")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise IncompleteCheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
    return tensors, meta


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
