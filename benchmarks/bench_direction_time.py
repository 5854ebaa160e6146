"""Time to a learned direction set: K = 32, LeNet, the CPU direction recipe, on a bundled demo
generator, until RCA >= 0.9 (issue 11: goal at most 5 minutes on the 2-core CPU).

The set is trained with the library's own step (``directions.voynov.direction_step``) and scored
every ``--check-every`` steps with its own measurement (``directions.voynov.evaluate``, precise
BatchNorm statistics, fresh latents). Scoring time is reported apart and not counted.

Figures, in the same run on the same machine:

- ``time``: training seconds until the first check with RCA >= the target;
- ``bound``: that many steps of the part no implementation can skip (one no-grad forward of G and
  one forward and backward of G to its input per step, timed here); ``time / bound`` says how much
  the reconstructor, the optimiser and the sampling add on top;
- ``goal``: ``time / 300 s``.

Usage: ``python benchmarks/bench_direction_time.py [--generator vae|gan] [--threads N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import _machine


def main(argv: list[str] | None = None) -> int:
    from napari_latentdirs.analysis.demo import require_demo
    from napari_latentdirs.directions.matrix import DirectionModel
    from napari_latentdirs.directions.voynov import direction_step, evaluate, freeze, sample_inputs
    from napari_latentdirs.models.reconstructors import build_reconstructor
    from napari_latentdirs.models.registry import load_generator
    from napari_latentdirs.training.recipes import direction_recipe

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", choices=("vae", "gan"), default="vae")
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--check-every", type=int, default=100)
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rec = direction_recipe("cpu")
    K, batch, lr = 32, rec["batch_size"], rec["lr"]
    G = freeze(load_generator(require_demo(args.generator).generator))
    d = G.latent_dim
    torch.manual_seed(args.seed)
    A = DirectionModel(d, K, "unit", "random", 0.1, generator=torch.Generator().manual_seed(args.seed))
    R = build_reconstructor(rec["reconstructor"], K, 1, rec["reconstructor_input"])
    opts = [torch.optim.Adam(A.parameters(), lr=lr), torch.optim.Adam(R.parameters(), lr=lr)]
    sampler = torch.Generator().manual_seed(args.seed + 1)

    train_s = check_s = 0.0
    step, rca, history = 0, 0.0, []
    A.train()
    R.train()
    while step < args.max_steps:
        t = time.perf_counter()
        for _ in range(args.check_every):
            z, k, alpha = sample_inputs(sampler, batch, d, K, 6.0, 0.5, torch.device("cpu"))
            direction_step(G, A, R, opts, z, k, alpha, 0.25, None)
        step += args.check_every
        train_s += time.perf_counter() - t
        t = time.perf_counter()
        rca = evaluate(G, A, R, batches=rec["eval_batches"], batch_size=batch, gamma=0.25, seed=args.seed + 10_007)["rca"]
        A.train()
        R.train()
        check_s += time.perf_counter() - t
        history.append((step, rca, train_s))
        print(f"  step {step:5d}  RCA {rca:.3f}  training {train_s:6.1f} s", flush=True)
        if rca >= args.target:
            break

    # The bound: per step, G forward without grad and G forward + backward to its input.
    times = []
    for r in range(6):
        z = torch.randn(batch, d, generator=sampler)
        t = time.perf_counter()
        with torch.no_grad():
            G.generate(z)
        zz = z.clone().requires_grad_(True)
        G.generate(zz).sum().backward()
        if r:
            times.append(time.perf_counter() - t)
    per_step = statistics.median(times)
    bound = per_step * step

    print(f"machine: {_machine.machine()}; torch {torch.__version__} with {torch.get_num_threads()} threads")
    print(f"demo {args.generator.upper()}, K = {K}, LeNet at {rec['reconstructor_input']}x{rec['reconstructor_input']}, "
          f"batch {batch}, lr {lr:g}; scored every {args.check_every} steps ({check_s:.0f} s of scoring not counted)")
    reached = rca >= args.target
    print(f"time to RCA >= {args.target:g}: {train_s:.1f} s over {step} steps" if reached
          else f"RCA {rca:.3f} < {args.target:g} after {step} steps ({train_s:.1f} s)")
    print(f"bound (G forward + G forward/backward to z, {per_step * 1e3:.1f} ms/step x {step}): {bound:.1f} s; "
          f"time / bound = {train_s / bound:.2f}")
    print(f"goal 300 s: time / goal = {train_s / 300:.2f}")
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
