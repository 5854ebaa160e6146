"""Navigator update latency with the paper-size DCGAN generator (d = 32, 128x128, ~45M parameters).

Measured in one run, all on this machine:

* bound A: one single-latent forward G(z) (B = 1), median of repeats;
* bound B: one bare batched forward of the same 41 shifted latents (B = 41);
* navigator, threaded as in napari: from the control change (a new
  direction selected) until the layer's data holds the visible frame, and
  until it holds the whole 41-frame stack.

Goals: visible frame <= 1.3 x A; full stack <= 1.15 x B.

    .venv/bin/python benchmarks/bench_navigator.py [--repeats 7] [--chunk 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gui import ensure_display, machine, wait_until  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--frames", type=int, default=41)
    ap.add_argument("--chunk", type=int, default=20, help="frames per batched chunk after the visible one")
    args = ap.parse_args()
    ensure_display()
    os.environ["LATENTDIRS_SYNC_WORKERS"] = "0"

    import numpy as np
    import torch

    import napari
    from napari_latentdirs._napari.navigator import LatentNavigator
    from napari_latentdirs.analysis.navigation import shift_grid
    from napari_latentdirs.directions.set import DirectionSet
    from napari_latentdirs.models.dcgan import Generator, dcgan_config

    torch.manual_seed(0)
    G = Generator(dcgan_config("paper")).eval().requires_grad_(False)
    n_params = sum(p.numel() for p in G.parameters())
    A = np.random.default_rng(0).standard_normal((32, 8)).astype(np.float32)
    A /= np.linalg.norm(A, axis=0)
    ds = DirectionSet(A, "unit")
    z = torch.randn(1, 32)
    shifts = torch.from_numpy(shift_grid(-6, 6, args.frames))

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    with torch.inference_mode():
        for _ in range(2):  # warm-up: allocator, kernels
            G.generate(z)
            G.generate(z + shifts[:, None] * torch.from_numpy(A[:, 0]))

    viewer = napari.Viewer(show=True)
    app = napari.qt.get_qapp()
    nav = LatentNavigator(viewer)
    viewer.window.add_dock_widget(nav)
    nav.n_spin.setValue(1)
    nav.frames_spin.setValue(args.frames)
    nav.set_model(G, ds, "paper DCGAN (random weights)")
    nav.feed.streamer.chunk_size = args.chunk
    wait_until(app, lambda: nav.layer is not None and nav._written == args.frames, 120)

    marks: dict[str, float] = {}

    def on_chunk(ticket: int, written: int) -> None:
        marks.setdefault("first", time.perf_counter())
        if written == args.frames:
            marks["full"] = time.perf_counter()

    nav.chunk_applied.connect(on_chunk)
    single, batched, visible, full = [], [], [], []
    for r in range(args.repeats):
        k = 1 + r % (ds.K - 1)
        a = torch.from_numpy(A[:, k])
        # bounds, measured between navigator runs so they see the same machine state
        with torch.inference_mode():
            single.append(timed(lambda: G.generate(z)))
            batched.append(timed(lambda a=a: G.generate(z + shifts[:, None] * a)))
        app.processEvents()
        marks.clear()
        t0 = time.perf_counter()
        nav.direction_list.setCurrentRow(k)  # the control change
        wait_until(app, lambda: "full" in marks, 120)
        visible.append(marks["first"] - t0)
        full.append(marks["full"] - t0)
        assert np.isfinite(np.asarray(nav.layer.data)).all()

    med = statistics.median
    a_s, b_s, v_s, f_s = med(single), med(batched), med(visible), med(full)
    print(f"machine: {machine()}")
    print(f"generator: paper DCGAN, {n_params / 1e6:.1f}M parameters, 128x128; {args.frames} frames; chunk {args.chunk}; {args.repeats} repeats (medians)")
    print(f"bound A  single-latent forward            {1000 * a_s:8.1f} ms")
    print(f"bound B  bare batched forward of {args.frames:3d}      {1000 * b_s:8.1f} ms")
    print(f"navigator: visible frame in layer         {1000 * v_s:8.1f} ms  = {v_s / a_s:.2f} x A   (goal <= 1.30)")
    print(f"navigator: full stack in layer            {1000 * f_s:8.1f} ms  = {f_s / b_s:.2f} x B   (goal <= 1.15)")
    nav.shutdown()
    viewer.close()


if __name__ == "__main__":
    main()
