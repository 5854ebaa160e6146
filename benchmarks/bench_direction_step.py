"""One direction-training step (Voynov & Babenko) with the paper-size DCGAN and LeNet, batch 32.

Times, in the same run and on the same machine:

- ``ours``: ``training.directions.direction_step``: G frozen, G(z) under
  no_grad, gradients reach A through G's input only;
- ``reference``: a straightforward implementation of the reference code's
  step: G's parameters require grad, both G(z) and G(z + shift) run under
  autograd, and backward computes G's weight gradients (then discarded);
- ``bound``: one no-grad forward of G plus one forward and backward of G to
  its input, the least any implementation of this step can cost on top of
  the (small) reconstructor.

Prints each time, the speed-up ``reference / ours`` (goal >= 1.8x) and
``ours / bound``. Usage: ``python benchmarks/bench_direction_step.py [--repeats N] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from napari_latentdirs.directions.matrix import DirectionModel
from napari_latentdirs.directions.voynov import direction_step, freeze, sample_inputs
from napari_latentdirs.models.dcgan import Generator, dcgan_config
from napari_latentdirs.models.reconstructors import build_reconstructor


def reference_step(G, A, R, optimizers, z, k, alpha, gamma):
    """The reference code's step: G not frozen, two autograd forwards, weight gradients computed."""
    G.zero_grad()
    for opt in optimizers:
        opt.zero_grad()
    x = G.generate(z)
    x_shifted = G.generate(z + A(k, alpha))
    logits, alpha_hat = R(x, x_shifted)
    loss = F.cross_entropy(logits, k) + gamma * (alpha_hat - alpha).abs().mean()
    loss.backward()
    for opt in optimizers:
        opt.step()
    return loss.detach()


def bound_step(G, z):
    with torch.no_grad():
        G.generate(z)
    zz = z.clone().requires_grad_(True)
    G.generate(zz).sum().backward()
    return zz.grad


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timeit(fns: dict, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Interleaved timings (one of each per round), so load changes on a shared machine hit all alike."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats + 1):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            if r:  # round 0 warms up (allocator, kernel selection)
                out[name].append(time.perf_counter() - t)
    return out


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--preset", default="paper", help="DCGAN preset (paper = the paper's 45M-parameter generator)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = Generator(dcgan_config(args.preset)).to(device).eval()
    A = DirectionModel(G.latent_dim, 32, "unit").to(device)
    R = build_reconstructor("lenet", 32).to(device)
    opts = [torch.optim.Adam(A.parameters(), 1e-4), torch.optim.Adam(R.parameters(), 1e-4)]
    gen = torch.Generator(device=device).manual_seed(0)
    z, k, alpha = sample_inputs(gen, args.batch, G.latent_dim, 32, 6.0, 0.5, device)

    def reference() -> None:
        G.requires_grad_(True)
        reference_step(G, A, R, opts, z, k, alpha, 0.25)
        freeze(G)

    freeze(G)
    times = timeit({"reference": reference,
                    "ours": lambda: direction_step(G, A, R, opts, z, k, alpha, 0.25),
                    "bound": lambda: bound_step(G, z)}, args.repeats, device)
    med = {name: statistics.median(v) for name, v in times.items()}
    n_params = sum(p.numel() for p in G.parameters())
    print(f"machine: {machine(device)}")
    print(f"generator: DCGAN preset {args.preset!r} ({n_params / 1e6:.1f}M parameters), LeNet reconstructor, "
          f"batch {args.batch}, median of {args.repeats}")
    for name, t in med.items():
        print(f"  {name:9s} {t * 1000:9.1f} ms/step")
    print(f"speed-up reference / ours: {med['reference'] / med['ours']:.2f}x (goal >= 1.8x)")
    print(f"ours / bound: {med['ours'] / med['bound']:.2f} (bound = no-grad forward + forward/backward to the input)")
    print(f"reference / bound: {med['reference'] / med['bound']:.2f} (the best speed-up attainable)")


if __name__ == "__main__":
    main()
