"""Render docs/demo_samples.png: 16 samples of the bundled demo GAN (two rows), 8 of the demo VAE and
8 held-out real phantom slices, all at the window -1000..400 HU.

    .venv/bin/python scripts/demo_samples.py [--out docs/demo_samples.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (-1000.0, 400.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "demo_samples.png")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    import imageio.v3 as iio

    from napari_latentdirs.analysis.demo import require_demo
    from napari_latentdirs.analysis.quality import PHANTOM_HELDOUT_SEEDS, sample_generator
    from napari_latentdirs.data.preprocess import DEFAULT
    from napari_latentdirs.models.registry import load_generator, preprocessing_of
    from napari_latentdirs.phantom.sampling import sample_slices

    def window(x: np.ndarray, prep=DEFAULT) -> np.ndarray:
        hu = prep.model_to_hu(x)
        return np.clip((hu - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0, 1)

    rows = []
    for kind, n in (("gan", 16), ("vae", 8)):
        G = load_generator(require_demo(kind).generator)
        x = window(sample_generator(G.generate, G.latent_dim, n, args.seed), preprocessing_of(G))
        rows += [np.concatenate(list(x[i:i + 8]), axis=1) for i in range(0, n, 8)]
    real, _ = sample_slices(8, PHANTOM_HELDOUT_SEEDS[0])
    rows.append(np.concatenate(list(window(real)), axis=1))
    img = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, img)
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
