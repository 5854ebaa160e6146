"""``latentdirs train gan|vae --data CACHE --out RUN [--preset tiny|paper] [--resume RUN]``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..training.runner import add_arguments

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
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..training.runner import run

    return run(args)
