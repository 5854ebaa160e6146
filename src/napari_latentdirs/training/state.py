"""Run folders: resumable checkpoints and scalar logs shared by every engine.

A checkpoint ``<run>/checkpoints/<name>.safetensors`` holds the modules'
state dicts, the optimisers' state, the global RNG states (torch, numpy,
python) and any named ``torch.Generator`` an engine draws from, so a resumed
run continues bit for bit. Tensors are the safetensors data; everything else
(step, config, scalar optimiser fields, metrics) is the JSON metadata in the
same file's header, so one rename commits a checkpoint (``utils.weights``);
``<name>.json`` beside it is a readable copy.
"""

from __future__ import annotations

import csv
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..utils.atomic import clean_stale_temps_in
from ..utils.folderlock import LOCK_NAME
from ..utils.weights import load_weights, read_header, save_weights, sidecar

log = logging.getLogger(__name__)


# -- RNG state ---------------------------------------------------------------

def capture_rng(generators: dict[str, torch.Generator] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (tensors, json) describing every global RNG plus ``generators``."""
    tensors: dict[str, torch.Tensor] = {"rng/torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s.clone()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    tensors["rng/python"] = torch.tensor(py_state, dtype=torch.int64)
    for name, gen in (generators or {}).items():
        tensors[f"rng/gen/{name}"] = gen.get_state().clone()
    meta = {
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": py_version, "gauss": py_gauss},
    }
    return tensors, meta


def cuda_states(tensors: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The saved per-GPU CUDA RNG states in device order (``rng/cuda/10`` after ``rng/cuda/9``)."""
    found = {}
    for key in tensors:
        if key.startswith("rng/cuda/") and key[len("rng/cuda/"):].isdigit():
            found[int(key[len("rng/cuda/"):])] = tensors[key]
    return [found[i] for i in sorted(found)]


def restore_cuda_rng(tensors: dict[str, torch.Tensor], device_count: int | None = None,
                     set_state=None) -> int:
    """Restore the saved CUDA RNG states onto the GPUs there are now; returns how many.

    A run saved on 8 GPUs may resume on 1 (or on none): the engines draw every
    random number from their own seeded generators, so the global CUDA states
    are restored as far as devices exist and the rest are dropped.
    """
    states = cuda_states(tensors)
    if device_count is None:
        device_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    set_state = set_state or torch.cuda.set_rng_state
    n = min(len(states), device_count)
    for i in range(n):
        set_state(states[i], i)
    return n


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                generators: dict[str, torch.Generator] | None = None) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    restore_cuda_rng(tensors)
    npm = meta["numpy"]
    np.random.set_state((npm["kind"], tensors["rng/numpy"].numpy().astype(np.uint32), npm["pos"],
                         npm["has_gauss"], npm["cached"]))
    py = meta["python"]
    random.setstate((py["version"], tuple(int(v) for v in tensors["rng/python"].tolist()), py["gauss"]))
    for name, gen in (generators or {}).items():
        key = f"rng/gen/{name}"
        if key not in tensors:
            raise KeyError(f"checkpoint has no state for generator {name!r}")
        gen.set_state(tensors[key])


# -- optimiser state -----------------------------------------------------------

def _flatten_optimizer(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim/{name}/{idx}/{key}"] = val.detach()
            else:
                scalars.setdefault(str(idx), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim/{name}/"
    for key, val in tensors.items():
        if key.startswith(prefix):
            idx, field = key[len(prefix):].split("/", 1)
            state.setdefault(int(idx), {})[field] = val
    for idx, fields in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(fields)
    return {"state": state, "param_groups": meta["param_groups"]}


# -- run folder ----------------------------------------------------------------

# Everything an engine (or the napari job that prepares its cache) puts in a run folder, and the
# labels that labelling a run's set writes beside it (analysis.label_set.labels_path_of), so a
# labelled run still resumes.
RUN_ENTRIES = frozenset({
    "checkpoints", "metrics.csv", "tb", "cache", "generator.safetensors", "generator.json",
    "directions.safetensors", "directions.json", "reconstructor.safetensors", "reconstructor.json",
    "directions.labels.json",
})
METRICS_HEADER = ["step", "tag", "value"]


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or inf; the run stops before writing anything from it."""


class ForeignFolderError(ValueError):
    """The run folder holds files that no napari-latentdirs engine wrote."""


class RunFolderMovedError(FileNotFoundError):
    """The run folder was moved or deleted while a job wrote it; nothing more is written at the old path."""


def _ours(name: str) -> bool:
    if name in RUN_ENTRIES or name == LOCK_NAME or name.startswith("directions.review-"):  # reviews live beside the set
        return True
    # a temp file of one of ours, left by a kill: ".<our name>.<...>.tmp"
    return name.startswith(".") and name.endswith(".tmp") and any(name.startswith(f".{e}.") for e in RUN_ENTRIES)


def check_run_folder(root: str | Path) -> None:
    """Refuse to write into a non-empty folder that is not a run folder of ours.

    A new or empty folder is fine, and so is one holding only what our engines
    write (a finished, stopped or killed run). Anything else, or a
    ``metrics.csv`` that is not our log, would be appended to or overwritten.
    """
    root = Path(root)
    if not root.exists():
        return
    if not root.is_dir():
        raise ForeignFolderError(f"{root} exists and is not a folder; choose a new or empty run folder")
    foreign = sorted(p.name for p in root.iterdir() if not _ours(p.name))
    metrics = root / "metrics.csv"
    if metrics.is_file() and metrics.stat().st_size:
        with open(metrics, newline="", errors="replace") as fh:
            first = next(csv.reader(fh), [])
        if first != METRICS_HEADER:
            foreign.append("metrics.csv (not one of our metric logs)")
    ckpts = root / "checkpoints"
    if ckpts.exists():
        if not ckpts.is_dir():
            foreign.append("checkpoints (not a folder)")
        else:
            foreign += [f"checkpoints/{p.name}" for p in sorted(ckpts.iterdir())
                        if not (p.suffix in (".safetensors", ".json") or p.name.endswith(".tmp"))]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ForeignFolderError(
            f"{root} is not empty and is not a napari-latentdirs run folder (it holds {shown}); refusing to write "
            "into it. Choose a new or empty folder for the run.")

class RunDir:
    """A training run's folder: ``checkpoints/``, ``metrics.csv``, ``tb/``."""

    def __init__(self, root: str | Path, create: bool = True) -> None:
        self.root = Path(root)
        self._identity: tuple[int, int] | None = None
        if create:
            (self.root / "checkpoints").mkdir(parents=True, exist_ok=True)
            st = self.root.stat()
            self._identity = (st.st_dev, st.st_ino)

    def check_in_place(self) -> None:
        """Raise :class:`RunFolderMovedError` when the folder is no longer where the job started it.

        Called before every write: a write would otherwise recreate the old path (``atomic_path``
        makes missing folders) with a generator and no checkpoint, while the moved copy resumes."""
        if self._identity is None:
            return
        try:
            st = self.root.stat()
            here = (st.st_dev, st.st_ino) == self._identity
        except OSError:
            here = False
        if not here:
            raise RunFolderMovedError(
                f"run folder {self.root} was moved or deleted while the job was writing it; nothing more was "
                "written there. Resume the moved copy where it is now (--resume NEW_PATH), or start a new run")

    def clean_stale_temps(self) -> list[Path]:
        """Remove temp files that killed writers left in the run folder (call after check_run_folder)."""
        return clean_stale_temps_in(self.root) + clean_stale_temps_in(self.root / "checkpoints")

    def path(self, name: str) -> Path:
        return self.root / "checkpoints" / f"{name}.safetensors"

    def has(self, name: str) -> bool:
        """A checkpoint is there: its file, with metadata in its header or (older files) a sidecar."""
        p = self.path(name)
        if not p.is_file():
            return False
        if sidecar(p).is_file():
            return True
        try:
            return read_header(p).embedded
        except (OSError, ValueError):
            return True  # present but unreadable: let load() say why rather than start over it

    def save(self, name: str, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer] | None = None,
             meta: dict[str, Any] | None = None, generators: dict[str, torch.Generator] | None = None,
             include_rng: bool = True) -> Path:
        tensors: dict[str, torch.Tensor] = {}
        for mname, module in modules.items():
            for key, val in module.state_dict().items():
                tensors[f"model/{mname}/{key}"] = val.detach()  # save_weights copies to the CPU
        optim_meta: dict[str, Any] = {}
        for oname, opt in (optimizers or {}).items():
            t, m = _flatten_optimizer(oname, opt)
            tensors.update(t)
            optim_meta[oname] = m
        rng_meta: dict[str, Any] | None = None
        if include_rng:
            t, rng_meta = capture_rng(generators)
            tensors.update(t)
        full_meta = dict(meta or {})
        full_meta["_state"] = {"modules": sorted(modules), "optimizers": optim_meta, "rng": rng_meta}
        return save_weights(self.path(name), tensors, full_meta)

    def load(self, name: str, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer] | None = None,
             map_location: str | torch.device = "cpu", generators: dict[str, torch.Generator] | None = None,
             restore_rngs: bool = True) -> dict[str, Any]:
        tensors, meta = load_weights(self.path(name))
        state = meta.get("_state", {})
        for mname, module in modules.items():
            prefix = f"model/{mname}/"
            sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if not sd:
                raise KeyError(f"checkpoint {self.path(name)} has no module {mname!r}")
            module.load_state_dict(sd)
        for oname, opt in (optimizers or {}).items():
            osd = _unflatten_optimizer(oname, tensors, state["optimizers"][oname])
            opt.load_state_dict(osd)
            _move_optimizer(opt, map_location)
        if restore_rngs and state.get("rng") is not None:
            restore_rng(tensors, state["rng"], generators)
        return meta


def _move_optimizer(opt: torch.optim.Optimizer, device: str | torch.device) -> None:
    for st in opt.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and k != "step":
                st[k] = v.to(device)


# -- scalar logging --------------------------------------------------------------

class ScalarLogger:
    """Scalars to ``metrics.csv`` (long format: step, tag, value) and TensorBoard."""

    def __init__(self, root: str | Path, tensorboard: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.root / "metrics.csv"
        new = not self.csv_path.exists()
        self._fh = open(self.csv_path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(["step", "tag", "value"])
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.root / "tb"))
            except Exception as exc:  # noqa: BLE001 - TensorBoard is optional; CSV always works
                log.warning("TensorBoard logging disabled: %s", exc)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for tag, value in scalars.items():
            self._csv.writerow([step, tag, f"{float(value):.8g}"])
            if self._tb is not None:
                self._tb.add_scalar(tag, float(value), step)
        self._fh.flush()

    def log_images(self, step: int, tag: str, images: np.ndarray) -> None:
        """``images``: (N, H, W) in [-1, 1]."""
        if self._tb is not None:
            imgs = (np.clip(np.asarray(images, dtype=np.float32), -1, 1) + 1) / 2
            self._tb.add_images(tag, imgs[:, None], step, dataformats="NCHW")

    def close(self) -> None:
        if self._tb is not None:
            try:
                self._tb.close()
            except OSError as exc:  # the folder moved or the disk filled: the CSV has every value
                log.warning("TensorBoard log not closed cleanly: %s", exc)
            self._tb = None
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> ScalarLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["tag"], []).append((int(row["step"]), float(row["value"])))
    return out
