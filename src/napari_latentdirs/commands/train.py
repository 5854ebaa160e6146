"""``latentdirs train gan|vae --data CACHE --out RUN [--preset tiny|paper] [--resume RUN]``.

The same arguments and run serve the torchrun entry ``python -m napari_latentdirs.training``
(``training/__main__.py``). They live here, above the jobs, because a finished run prints its
quality against its data (``jobs.with_quality``), which the training engines below cannot import.

Data sources (``--data``):
- a slice-cache folder written by ``latentdirs prepare`` (train + test splits);
- a DICOM folder: prepared into ``<run>/cache`` first (re-runs reuse finished series);
- ``phantom`` (or ``phantom:N``): N in-memory phantom slices (default 2048);
- a ``.npy`` file of (N, 128, 128) model-space slices (memory-mapped).

Bad input stops the command before any step with a message naming the
argument: slices of the wrong size, NaN/inf or out-of-range pixels, a bad
``--fid-weights`` file, or an ``--out`` folder holding files that are not ours.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import threading
from pathlib import Path

from torch.utils.data import Dataset

from ..console import stop_on_signals
from ..events import CheckpointSaved, Finished, Started, Stopped
from ..training import ddp
from ..training.config import TrainConfig, config_from_dict, load_config
from ..training.recipes import RECIPES, recipe

log = logging.getLogger(__name__)

DEFAULT_CONFIGS = {
    ("gan", "paper"): "gan_paper.yaml",
    ("vae", "paper"): "vae_paper.yaml",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the DCGAN or the ResNet-VAE (resumable; torchrun for several GPUs)",
        description=(
            "Train a generator on a slice cache (`latentdirs prepare`), on in-memory phantom slices "
            "(--data phantom[:N]) or on a .npy of model-space slices. Ctrl-C writes a checkpoint; "
            "--resume RUN continues it exactly. Multi-GPU: torchrun --nproc_per_node N "
            "-m napari_latentdirs.training gan|vae ... (same options)."
        ),
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", choices=["gan", "vae"], help="which generative model to train")
    p.add_argument("--data", required=False, help="slice cache folder, DICOM folder (prepared into RUN/cache), 'phantom[:N]', or a .npy of model-space slices")
    p.add_argument("--out", type=Path, help="run folder (checkpoints, metrics.csv, tb/, generator.safetensors)")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this folder (same as --out RUN)")
    p.add_argument("--config", type=Path, help="YAML/JSON training config (see training/*.yaml)")
    p.add_argument("--recipe", choices=sorted(RECIPES), help="a named recipe: paper (default) or cpu (README: "
                   "'The CPU recipe'); --config and flags override it")
    p.add_argument("--preset", choices=["tiny", "cpu", "paper"], help="model width preset (default: the recipe's)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch", type=int, dest="batch_size", help="global batch size")
    p.add_argument("--lr", type=float)
    p.add_argument("--max-steps", type=int, dest="max_steps")
    p.add_argument("--device", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision, CUDA only (default auto: bf16 autocast on GPUs with native bf16, "
                        "compute capability 8.0+, else fp16 with a gradient scaler; off = float32). "
                        "CPU and MPS always train in float32")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="CUDA: deterministic cuDNN/cuBLAS kernels instead of autotuned ones (slower); a run and its "
                        "resumption then repeat bit for bit on the same GPU model and software. CPU runs always do")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, dest="num_workers",
                   help="DataLoader workers (default: none on CPU, up to 8 per GPU with pinned memory)")
    p.add_argument("--no-augment", action="store_false", dest="augment", default=None)
    p.add_argument("--no-fid", action="store_false", dest="fid", default=None, help="skip FID selection")
    p.add_argument("--fid-weights", dest="fid_weights", help="TorchScript TF-Inception file (default: bundled)")
    p.add_argument("--fid-samples", type=int, dest="fid_samples")


OVERRIDES = ("preset", "epochs", "batch_size", "lr", "max_steps", "device", "amp", "seed", "num_workers",
             "augment", "fid", "fid_weights", "fid_samples", "deterministic")


def build_config(args: argparse.Namespace) -> TrainConfig:
    """--config file, else the resumed run's own config, else defaults; flags override."""
    overrides = {k: getattr(args, k, None) for k in OVERRIDES}
    if getattr(args, "recipe", None):
        overrides = {**recipe(args.recipe, args.model), **{k: v for k, v in overrides.items() if v is not None}}
    if args.config:
        return load_config(args.config, args.model, **overrides)
    if args.resume is not None:
        from ..training.state import RunDir
        from ..utils.weights import read_meta

        meta = read_meta(RunDir(args.resume, create=False).path("last"))
        base = dict(meta.get("train_config", {}))
        if base.get("kind") not in (None, args.model):
            raise SystemExit(f"--resume {args.resume} is a {base.get('kind')} run, not {args.model}")
        return config_from_dict(args.model, base, **overrides)
    return config_from_dict(args.model, {}, **overrides)


def load_data(spec: str, seed: int = 0, run_dir: Path | None = None) -> tuple[Dataset, Dataset | None]:
    from ..training.data import NpySlices, open_cache, phantom_slices

    if spec.startswith("phantom"):
        n = int(spec.split(":", 1)[1]) if ":" in spec else 2048
        n_test = max(n // 8, 16)
        return phantom_slices(n, seed), phantom_slices(n_test, seed + 1_000_003)
    p = Path(spec)
    if p.suffix == ".npy":
        if not p.is_file():
            raise FileNotFoundError(f"--data {spec}: no such file")
        return NpySlices(p), None
    if not p.exists():
        raise FileNotFoundError(f"--data {spec}: no such slice cache (run `latentdirs prepare` first)")
    if run_dir is not None and p.is_dir() and not (p / "index.json").exists():
        from ..jobs import DATA_SOURCES, check_training_data, prepare_dicom_cache

        try:  # a DICOM folder: prepared into <run>/cache (the same function the training dock uses)
            check_training_data(DATA_SOURCES[2], p)
        except ValueError as exc:
            raise SystemExit(f"--data {spec}: neither a slice cache nor a DICOM folder ({exc})") from None
        gen = prepare_dicom_cache(p, run_dir)
        while True:
            try:
                print(next(gen).text, flush=True)
            except StopIteration as done:
                p = done.value
                break
    return open_cache(p)


def run(args: argparse.Namespace) -> int:
    from ..training.state import ForeignFolderError, RunDir, check_run_folder

    out = args.resume or args.out
    if out is None:
        raise SystemExit("give --out RUN (new run) or --resume RUN")
    if args.resume is not None and not RunDir(args.resume, create=False).has("last"):
        raise SystemExit(f"--resume {args.resume}: no checkpoint there")
    if args.data is None:
        raise SystemExit("give --data CACHE|phantom|slices.npy")
    from ..utils.folderlock import hold_folder

    try:
        check_run_folder(out)  # before the lock file or anything else is written into it
    except ForeignFolderError as exc:
        raise SystemExit(f"error: {exc}") from exc
    # One writer per run folder (issue 22): rank 0 holds it; the other ranks of a torchrun never write.
    with hold_folder(out) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext():
        return _train(args, out)


def _train(args: argparse.Namespace, out: Path) -> int:
    from ..models.fid import FIDWeightsError
    from ..training.data import BadSlicesError, check_slices
    from ..training.engine import ChangedSettingsError, NonFiniteLossError
    from ..training.gan import GANTrainer
    from ..training.state import ForeignFolderError, check_run_folder
    from ..training.vae import VAETrainer
    from ..utils.weights import WeightsFormatError

    try:
        check_run_folder(out)  # before anything (data preparation included) writes into it
        cfg = build_config(args)
        info = ddp.DistInfo.from_env(device=cfg.device)
        if info.world_size > 1 and Path(args.data).is_dir() and not (Path(args.data) / "index.json").exists():
            raise SystemExit("--data: prepare DICOM first (`latentdirs prepare`) when training on several processes")
        train, test = load_data(args.data, cfg.seed, run_dir=Path(out))
        mcfg = cfg.model_config()
        check_slices(train, mcfg.image_size, mcfg.channels, f"--data {args.data}")
        cls = GANTrainer if args.model == "gan" else VAETrainer
        trainer = cls(cfg, train, out, test_data=test, dist=info)
    except (BadSlicesError, ForeignFolderError, FIDWeightsError, WeightsFormatError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    stop = threading.Event()
    main = info.is_main
    try:
        with stop_on_signals(stop):
            for ev in trainer.run(stop):
                if main:
                    if isinstance(ev, Finished) and ev.output is not None:
                        ev = _with_quality(ev, args.data, Path(out), cfg.seed)
                    _print_event(ev, args.model, trainer, info, cfg, out)
    except (NonFiniteLossError, ChangedSettingsError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    if stop.is_set() and info.enabled:
        # Every rank stopped at the same step and the checkpoint is written. Exit 0: torchrun takes
        # any other code for a crash and kills the ranks still finishing (rank 0's log lines).
        return 0
    return 130 if stop.is_set() else 0


def _with_quality(fin: Finished, data: str, run_dir: Path, seed: int) -> Finished:
    """Print the finished generator's quality against the data it imitates (the phantom, the
    cache, or the cache prepared from a DICOM folder); a ``.npy`` has no held-out reference."""
    from ..jobs import RUN_CACHE, with_quality

    if str(data).startswith("phantom"):
        reference: str | None = "phantom"
    elif Path(data).suffix == ".npy":
        reference = None
    elif (Path(data) / "index.json").exists():
        reference = str(data)
    else:
        reference = str(run_dir / RUN_CACHE)
    note, fin = with_quality(fin, reference, seed)
    if note is not None:
        print(note.text, flush=True)
    return fin


def _print_event(ev, model, trainer, info, cfg, out) -> None:
    from ..console import event_line

    if isinstance(ev, Started):
        print(f"{model}: {ev.total_steps} steps on {trainer.device} x{info.world_size}, "
              f"starting at {ev.start_step}; run folder {ev.run_dir}", flush=True)
    elif isinstance(ev, CheckpointSaved):
        log.debug("checkpoint %s", ev.path)
    elif isinstance(ev, Stopped):
        print(f"stopped at step {ev.step}; resume with --resume {out}", flush=True)
    elif isinstance(ev, Finished):
        print(finished_line(ev), flush=True)
    else:
        line = event_line(ev, cfg.log_every)
        if line is not None:
            print(line, flush=True)


def finished_line(ev: Finished) -> str:
    """The last line of a run: where the generator is and, when FID chose it, which epoch. The quality
    figures are printed as sentences just before (``jobs.with_quality``): no raw metric keys here."""
    text = f"finished at step {ev.step}: generator {ev.output}"
    fid, epoch = ev.metrics.get("best_fid"), ev.metrics.get("best_epoch")
    if fid is not None and epoch is not None:
        text += f" (epoch {int(epoch)}, the best FID of the selection window: {fid:.1f})"
    return text
