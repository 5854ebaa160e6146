"""``latentdirs run``: the headless main job (README command 1)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="prepare data, train (or take the bundled) VAE and GAN, discover and label directions, write the report",
        description="The whole pipeline in one command. Without --data it runs on the embedded synthetic phantom; "
        "re-running with the same --out resumes from the last finished stage.",
    )
    p.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    p.add_argument("--data", default=None, metavar="LIDC_ROOT", help="DICOM tree (e.g. LIDC-IDRI); default: the embedded phantom")
    p.add_argument("--preset", default="tiny", choices=("tiny", "paper"), help="tiny: CPU minutes; paper: the paper's settings (GPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patients", type=int, default=None, help="phantom patients to generate")
    p.add_argument("--gan-epochs", type=int, default=None)
    p.add_argument("--vae-epochs", type=int, default=None)
    p.add_argument("--label-latents", type=int, default=None, help="latents per direction for the automatic labels")
    p.add_argument("--retrain", action="store_true",
                   help="train new generators on the phantom instead of starting from the bundled demo models")
    p.add_argument("--workers", type=int, default=None, help="direction sets trained at once on a CPU (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..runs.pipeline import RunFolderError, make_config, run_pipeline

    cfg = make_config(
        args.out,
        args.preset,
        data=args.data,
        device=args.device,
        seed=args.seed,
        patients=args.patients,
        gan_epochs=args.gan_epochs,
        vae_epochs=args.vae_epochs,
        label_latents=args.label_latents,
        retrain=args.retrain or None,
        workers=args.workers,
        progress=not args.no_progress,
    )
    try:
        path = run_pipeline(cfg)
    except RunFolderError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"report: {path.resolve()}")
    return 0
