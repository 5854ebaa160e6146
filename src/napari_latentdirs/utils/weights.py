"""Weights as safetensors files. Nothing here ever unpickles.

A weights file is one self-contained unit: the tensors, plus, in the
safetensors header's ``__metadata__``, the JSON metadata (:data:`META_KEY`)
and the sha256 of the tensor data (:data:`DATA_SHA_KEY`). It is written to a
temporary file and renamed, so a kill at any moment leaves either the
previous file or the new one, complete (:func:`save_weights`).

``path.with_suffix('.json')``, the *sidecar*, is a readable copy of that
metadata written after the rename, plus the whole file's sha256. The header
is authoritative: a sidecar left stale or missing by a kill between the two
renames is rewritten from the header on the next read. Files written before
the metadata moved into the header (the sidecar alone holds it) still load,
and then the sidecar's sha256 must match the file.

Neither copy of the metadata is covered by a hash: loaders that build a
network from it check it against the tensor shapes in the header first
(:func:`check_shapes`), so a forged architecture fails before allocating.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from .atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"}
META_KEY = "napari_latentdirs.meta"
DATA_SHA_KEY = "napari_latentdirs.data_sha256"
# Keys the sidecar adds to the metadata (they describe the file, not the model).
SIDECAR_KEYS = ("weights_sha256", "weights_file", "data_sha256")
#: The largest header we read: safetensors' own limit (its MAX_HEADER_SIZE), so a file we accept is one
#: the library loads, and nothing is written (a sidecar) for a file it will refuse.
MAX_HEADER = 100_000_000


class UnsafeWeightsError(ValueError):
    """Raised for files that would need unpickling (torch.save / pickle / zip)."""


class IncompleteCheckpointError(ValueError):
    """Raised when a weights file is truncated, corrupt, or its metadata is missing."""


class WeightsFormatError(ValueError):
    """Raised when a weights file or its sidecar is readable but not what it should be."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    with open(path, "rb") as fh:
        return _sha256_from(fh, 0, chunk)


def _sha256_from(fh: BinaryIO, offset: int, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    fh.seek(offset)
    while block := fh.read(chunk):
        h.update(block)
    return h.hexdigest()


def sidecar(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


# -- the header ---------------------------------------------------------------------

@dataclass(frozen=True)
class Header:
    """A safetensors header: tensor entries, string metadata, where the data starts."""

    entries: dict[str, dict[str, Any]]
    metadata: dict[str, str]
    data_offset: int

    def shapes(self, prefix: str = "") -> dict[str, tuple[int, ...]]:
        return {k[len(prefix):]: tuple(int(s) for s in v["shape"]) for k, v in self.entries.items()
                if k.startswith(prefix)}

    @property
    def embedded(self) -> bool:
        return META_KEY in self.metadata


def _read_header(fh: BinaryIO, path: Path, size: int) -> Header:
    raw = fh.read(8)
    n = int.from_bytes(raw, "little") if len(raw) == 8 else -1
    if n > MAX_HEADER and 8 + n <= size:
        raise WeightsFormatError(f"{path}: its safetensors header is {n:,} bytes, more than the {MAX_HEADER:,} "
                                 "the format allows; refused without reading it")
    if n < 2 or n > MAX_HEADER or 8 + n > size:
        raise IncompleteCheckpointError(f"{path} is not a readable safetensors file (truncated or another format)")
    try:
        header = json.loads(fh.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompleteCheckpointError(f"{path} is not a readable safetensors file: bad header ({exc})") from exc
    if not isinstance(header, dict):
        raise IncompleteCheckpointError(f"{path} is not a readable safetensors file: its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise IncompleteCheckpointError(f"{path}: safetensors __metadata__ is not a JSON object")
    for name, entry in header.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("shape"), list)
                and all(isinstance(s, int) and s >= 0 for s in entry["shape"])):
            raise IncompleteCheckpointError(f"{path}: safetensors header entry {name!r} is malformed")
    return Header(header, {str(k): str(v) for k, v in metadata.items()}, 8 + n)


def read_header(path: str | Path) -> Header:
    """The header of a safetensors file, read without touching the tensor data."""
    path = Path(path)
    _refuse_unsafe(path)
    with open(path, "rb") as fh:
        return _read_header(fh, path, os.fstat(fh.fileno()).st_size)


def _refuse_unsafe(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    with open(path, "rb") as fh:
        head = fh.read(9)
        size = os.fstat(fh.fileno()).st_size
    # A safetensors file starts with its header length (u64, little endian) and then "{". Its first
    # bytes can equal a pickle's magic (a 1152-byte header starts 80 04), so test that shape first.
    n = int.from_bytes(head[:8], "little") if len(head) == 9 else -1
    looks_safetensors = head[8:9] == b"{" and 2 <= n <= MAX_HEADER and 8 + n <= size
    if path.suffix in PICKLE_SUFFIXES or (not looks_safetensors and head.startswith(PICKLE_MAGIC)):
        raise UnsafeWeightsError(
            f"{path} looks like a pickle/torch.save file; napari-latentdirs only loads "
            "safetensors weights (convert it in a trusted environment first)"
        )


# -- metadata -------------------------------------------------------------------------

def _parse_json_object(text: str, where: str) -> dict[str, Any]:
    if not text.strip():
        raise WeightsFormatError(f"{where} is empty; expected a JSON object")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WeightsFormatError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                                 f"column {exc.colno})") from exc
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
            type(obj), "null")
        raise WeightsFormatError(f"{where} holds {kind}; expected a JSON object of metadata")
    return obj


def _read_sidecar(path: Path) -> dict[str, Any]:
    meta_path = sidecar(path)
    if not meta_path.is_file():
        raise IncompleteCheckpointError(
            f"{path} has no JSON sidecar {meta_path.name} and no metadata in its header; the write may have "
            "been interrupted")
    try:
        text = meta_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WeightsFormatError(f"{meta_path} (JSON sidecar of {path.name}) is not UTF-8 text") from exc
    return _parse_json_object(text, f"{meta_path} (JSON sidecar of {path.name})")


def _embedded_meta(header: Header, path: Path) -> dict[str, Any]:
    return _parse_json_object(header.metadata[META_KEY], f"{path}: the metadata in its safetensors header")


def _sidecar_is_current(path: Path, meta: Mapping[str, Any], data_sha: str) -> bool:
    try:
        side = json.loads(sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(side, dict) or side.get("data_sha256") != data_sha:
        return False
    return {k: v for k, v in side.items() if k not in SIDECAR_KEYS} == dict(meta)


def _sidecar_text(meta: Mapping[str, Any], file_sha: str, name: str, data_sha: str) -> str:
    full = {**meta, "weights_sha256": file_sha, "weights_file": name, "data_sha256": data_sha}
    return json.dumps(full, indent=2, sort_keys=True)


def _repair_sidecar(path: Path, header: Header, meta: Mapping[str, Any]) -> None:
    """Rewrite a sidecar a kill left stale or missing (best effort: the folder may be read-only)."""
    data_sha = header.metadata.get(DATA_SHA_KEY, "")
    if _sidecar_is_current(path, meta, data_sha):
        return
    with contextlib.suppress(OSError):
        atomic_write_text(sidecar(path), _sidecar_text(meta, sha256_file(path), path.name, data_sha),
                          clean_stale=True)
        log.info("rewrote %s from the metadata in %s", sidecar(path).name, path.name)


def read_meta(path: str | Path, repair: bool = True) -> dict[str, Any]:
    """The metadata of a weights file (header first, else the sidecar), without loading tensors.

    ``repair=False``: leave a stale or missing sidecar alone (a loader that may still refuse the
    file writes nothing; :func:`load_weights` repairs it once the file has loaded)."""
    path = Path(path)
    header = read_header(path)
    if header.embedded:
        meta = _embedded_meta(header, path)
        if repair:
            _repair_sidecar(path, header, meta)
        return meta
    return _read_sidecar(path)


# -- save and load ------------------------------------------------------------------------

def save_weights(path: str | Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write ``path`` (tensors + metadata in one file, one rename), then its sidecar."""
    path = Path(path)
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta_json = json.dumps(dict(meta), sort_keys=True, default=json_default)
    blob = st_save(cpu)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    data = memoryview(blob)[8 + n :]
    data_sha = hashlib.sha256(data).hexdigest()
    header["__metadata__"] = {META_KEY: meta_json, DATA_SHA_KEY: data_sha}
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)  # keep the data 8-byte aligned, as safetensors does
    prefix = len(head).to_bytes(8, "little")
    file_sha = hashlib.sha256()
    with atomic_path(path, clean_stale=True) as tmp, open(tmp, "wb") as fh:
        for part in (prefix, head, data):
            fh.write(part)
            file_sha.update(part)
    # The rename above is the commit point; the sidecar is a convenience copy.
    atomic_write_text(sidecar(path), _sidecar_text(json.loads(meta_json), file_sha.hexdigest(), path.name, data_sha),
                      clean_stale=True)
    return path


def load_weights(path: str | Path, verify: bool = True, expected: Callable[[str], bool] | None = None,
                 ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``path`` and its metadata; refuse pickles, corrupt and incomplete files.

    ``expected(name)`` says which tensor names the kind of file holds: any other is refused as
    soon as the header is read (a header of a million empty entries costs nothing then)."""
    path = Path(path)
    _refuse_unsafe(path)
    for _attempt in range(3):
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            header = _read_header(fh, path, st.st_size)
            if header.embedded:
                meta = _embedded_meta(header, path)
                _refuse_unexpected(header, path, expected)  # before the data is hashed or loaded
                want = header.metadata.get(DATA_SHA_KEY)
                if verify and want is not None and _sha256_from(fh, header.data_offset) != want:
                    raise IncompleteCheckpointError(
                        f"{path}: the tensor data does not match the sha256 in its header (corrupt file)")
            else:
                meta = _read_sidecar(path)
                _refuse_unexpected(header, path, expected)
                if verify and meta.get("weights_sha256") not in (None, _sha256_from(fh, 0)):
                    raise IncompleteCheckpointError(
                        f"{path} does not match the sha256 recorded in {sidecar(path).name}")
        try:
            tensors = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for corrupt files
            raise IncompleteCheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
        now = os.stat(path)
        if (now.st_ino, now.st_mtime_ns, now.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size):
            break  # the tensors come from the file that was checked
    else:
        raise IncompleteCheckpointError(f"{path} kept being replaced while it was read; try again")
    if header.embedded:
        _repair_sidecar(path, header, meta)
    return tensors, meta


def _refuse_unexpected(header: Header, path: Path, expected: Callable[[str], bool] | None) -> None:
    """Refuse tensors the kind of file does not hold (a header of a million empty entries costs
    seconds of loading and gigabytes of memory otherwise)."""
    if expected is None:
        return
    extra = [name for name in header.entries if not expected(name)]
    if extra:
        raise WeightsFormatError(f"{path}: {len(extra):,} unexpected tensor(s) for this kind of file "
                                 f"(e.g. {extra[0][:80]!r}); refused")


def check_shapes(path: str | Path, expected: Mapping[str, torch.Size | tuple[int, ...]], header: Header,
                 prefix: str = "", what: str = "network") -> None:
    """Refuse a file whose tensors do not fit the ``expected`` state-dict shapes."""
    actual = header.shapes(prefix)
    want = {k: tuple(v) for k, v in expected.items()}
    missing = sorted(set(want) - set(actual))
    extra = sorted(set(actual) - set(want))
    wrong = [f"{k}: file {actual[k]}, metadata {want[k]}" for k in sorted(set(want) & set(actual))
             if actual[k] != want[k]]
    if missing or extra or wrong:
        parts = []
        if wrong:
            parts.append("shape mismatch " + "; ".join(wrong[:4]) + (" ..." if len(wrong) > 4 else ""))
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {prefix}{missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected tensors (e.g. {prefix}{extra[0]})")
        raise WeightsFormatError(f"{path}: the {what} described by its metadata does not match the tensors in the "
                                 f"file: {', '.join(parts)}")


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for paths, arrays, tensors, numpy scalars and dataclasses."""
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
