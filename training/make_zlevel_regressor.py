"""Train the packaged z-level regressor on phantom slices (reproducible).

    .venv/bin/python training/make_zlevel_regressor.py [--n 6000] [--seed 1234]

Writes src/napari_latentdirs/assets/zlevel_regressor.safetensors (+ .json).
Training slices use seed ``--seed``; the probe tests evaluate on slices from
other seeds, so the scored slices are held out from this training.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from napari_latentdirs.phantom import sample_slices
from napari_latentdirs.probes.outline import polar_features
from napari_latentdirs.probes.zlevel import asset_path, save_regressor, train_regressor_features
from napari_latentdirs.utils.runtime import seed_everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", default=str(asset_path()))
    args = ap.parse_args()
    seed_everything(args.seed)
    t0 = time.time()
    x, f = sample_slices(args.n, seed=args.seed)
    feats = polar_features(x)
    print(f"rendered + featurised {args.n} slices in {time.time() - t0:.1f}s")
    model = train_regressor_features(feats, f["t"], epochs=args.epochs, seed=args.seed)
    xv, fv = sample_slices(500, seed=args.seed + 1)
    from napari_latentdirs.probes.zlevel import predict_features

    pv = predict_features(model, polar_features(xv))
    rho = spearmanr(pv, fv["t"])[0]
    mae = float(np.mean(np.abs(pv - fv["t"])))
    print(f"held-out: spearman rho {rho:.3f}, MAE {mae:.3f}")
    save_regressor(model, args.out, {"train_seed": args.seed, "n_train": args.n, "epochs": args.epochs, "heldout_rho": rho, "heldout_mae": mae})
    print("wrote", args.out)


if __name__ == "__main__":
    main()
