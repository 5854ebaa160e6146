"""Longest stall of napari's GUI event loop while a generator trains in the background.

A 5 ms QTimer runs on the GUI thread; a stall is the gap between two ticks
beyond the timer interval. Measured in one run: with the viewer idle; while
the same training runs in a separate process (the control: the CPU load of
training without any GUI work); and while the training dock trains a DCGAN on
phantom slices through the worker machinery (engine in a child process, napari
progress bar, live loss plot and sample layer all updating). On a machine
shared with other work the control shows how much of the stall is the
machine's. A second bound is one drawn update of a samples-sized image layer
on the idle viewer (what the dock does every few seconds): with software
OpenGL a single napari frame is tens of milliseconds, so the longest stall
cannot be below it. ``--in-thread`` runs the engine in the worker thread
instead, for comparison. The one-off cost of creating the samples layer when training
starts is reported on its own line: it happens once, right after the click.

Goal: longest stall during training < 50 ms.

``--actions`` measures instead the longest stall of three one-off actions a user waits
for (issue 19): File > Open Sample (the synthetic thorax), the navigator's Load demo
(reading, building and probing the demo GAN, until its first stack is on screen) and a
GAN inversion of the CT slice on screen (for ``--seconds``, then cancelled where the
widget can cancel). Goal: no stall over 200 ms. Each action's stall is printed beside
the idle loop's and one drawn layer update (the floor of any change on screen).

    .venv/bin/python benchmarks/bench_gui_stall.py [--seconds 20] [--preset tiny]
    .venv/bin/python benchmarks/bench_gui_stall.py --actions [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gui import ensure_display, machine, wait_until  # noqa: E402


def measure(app, seconds: float, interval_ms: int = 5) -> tuple[float, float, int]:
    """(longest stall s, 99th percentile stall s, ticks) over ``seconds``."""
    import numpy as np
    from qtpy.QtCore import QEventLoop, QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(interval_ms)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    timer.start()
    loop.exec()
    timer.stop()
    gaps = np.diff(np.asarray(ticks)) - interval_ms / 1000.0
    gaps = np.clip(gaps, 0.0, None)
    return float(gaps.max()), float(np.percentile(gaps, 99)), len(ticks)


def measure_action(app, trigger, done, timeout_s: float = 120.0, settle_s: float = 0.3,
                   interval_ms: int = 5) -> tuple[float, float]:
    """(longest stall s, wall s) from ``trigger()`` (called from the event loop) until ``done()``
    holds, plus ``settle_s`` for the draws that follow."""
    import numpy as np
    from qtpy.QtCore import QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(interval_ms)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    fired: list[float] = []
    timer.start()
    app.processEvents()
    t0 = time.perf_counter()
    ticks.append(t0)

    def go() -> None:
        fired.append(time.perf_counter())
        trigger()

    QTimer.singleShot(0, go)
    t_end = None
    while True:
        app.processEvents()
        time.sleep(0.0005)
        now = time.perf_counter()
        if t_end is None and fired and done():
            t_end = now
        if t_end is not None and now - t_end >= settle_s:
            break
        if now - t0 > timeout_s:
            raise TimeoutError("action did not finish")
    timer.stop()
    ticks.append(time.perf_counter())
    gaps = np.clip(np.diff(np.asarray(ticks)) - interval_ms / 1000.0, 0.0, None)
    return float(gaps.max()), float(t_end - fired[0])


def actions(seconds: float) -> None:
    """The one-off actions' stalls (see the module doc)."""
    import napari

    os.environ["LATENTDIRS_SYNC_WORKERS"] = "0"
    viewer = napari.Viewer(show=True)
    app = napari.qt.get_qapp()
    app.processEvents()
    idle_max, _, _ = measure(app, 2.0)
    frame_med, frame_max = layer_refresh_cost(viewer, app)
    # the floor of showing a stack at all: napari adding a 5-D image layer (dims sliders, controls)
    import numpy as np

    t0 = time.perf_counter()
    volume = viewer.add_image(np.zeros((96, 256, 256), np.float32), name="3-D bound")  # a CT's size
    app.processEvents()
    ct_layer = time.perf_counter() - t0
    t0 = time.perf_counter()
    probe = viewer.add_image(np.zeros((4, 41, 1, 128, 128), np.float32), name="5-D bound")
    app.processEvents()
    stack_layer = time.perf_counter() - t0
    viewer.layers.remove(probe)
    viewer.layers.remove(volume)
    app.processEvents()
    rows = []
    stall, wall = measure_action(app, lambda: viewer.open_sample("napari-latentdirs", "synthetic_thorax"),
                                 lambda: len(viewer.layers) == 1)
    rows.append(("Open Sample (synthetic thorax)", stall, wall))
    ct = viewer.layers[0]
    viewer.dims.set_current_step(0, 47)
    _, nav = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Latent navigator")
    nav.n_spin.setValue(4)
    app.processEvents()
    stall, wall = measure_action(app, lambda: nav.load_demo("gan"),
                                 lambda: nav.model_name == "demo GAN" and nav.layer is not None and nav.view.state.written > 0)
    rows.append(("navigator: Load demo (GAN), first frames", stall, wall))
    nav.ct_combo.setCurrentText(ct.name)
    nav.source_combo.setCurrentIndex(2)
    t_start: list[float] = []

    def invert() -> None:
        t_start.append(time.perf_counter())
        nav.set_latents_from_source()

    cancels: list[float] = []

    def stopped() -> bool:
        if not t_start:
            return False
        if nav._jobs.running and time.perf_counter() - t_start[0] > seconds and hasattr(nav, "cancel_job") and not cancels:
            cancels.append(time.perf_counter())
            nav.cancel_job()
        return not nav._jobs.running

    stall, wall = measure_action(app, invert, stopped, timeout_s=600.0)
    cancelled = bool(cancels)
    rows.append((f"navigator: GAN inversion ({'cancelled after' if cancelled else 'ran'} {wall:.1f} s)", stall, wall))
    print(f"machine: {machine()}")
    print(f"bound    idle event loop, longest stall        {1000 * idle_max:7.1f} ms")
    print(f"bound    one drawn layer update (median)       {1000 * frame_med:7.1f} ms (max {1000 * frame_max:.1f} ms)")
    print(f"bound    napari adds a 96x256x256 image layer, drawn {1000 * ct_layer:7.1f} ms (any CT layer costs this)")
    print(f"bound    napari adds a 5-D stack layer beside it, drawn {1000 * stack_layer:7.1f} ms (any first stack costs this)")
    for name, st, wl in rows:
        print(f"action   {name:<44} longest stall {1000 * st:7.1f} ms  ({wl:.2f} s until done)  goal < 200 ms"
              f"{'  OK' if st < 0.2 else '  OVER'}")
    nav.shutdown()
    viewer.close()


def layer_refresh_cost(viewer, app, repeats: int = 10) -> tuple[float, float]:
    """(median, max) seconds for one in-place update of an 8 x 128 x 128 image layer, drawn:
    what the dock does to show new samples, i.e. one napari frame on this display."""
    import numpy as np

    rng = np.random.default_rng(0)
    layer = viewer.add_image(rng.uniform(-1000, 200, (8, 128, 128)).astype(np.float32), name="frame-bound", contrast_limits=(-1350, 150))
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        layer.data[...] = rng.uniform(-1000, 200, layer.data.shape)
        layer.refresh()
        app.processEvents()
        times.append(time.perf_counter() - t0)
        time.sleep(0.05)
    viewer.layers.remove(layer)
    app.processEvents()
    return float(np.median(times)), float(max(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--preset", default="tiny", choices=("tiny", "paper"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--phantom", type=int, default=256, help="phantom slices to train on")
    ap.add_argument("--nice", type=int, default=None, help="override the worker thread's nice value")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads during training")
    ap.add_argument("--flush-ms", type=int, default=None, help="override the dock's widget refresh period")
    ap.add_argument("--no-napari-progress", action="store_true", help="diagnosis: no napari.utils.progress bar")
    ap.add_argument("--in-thread", action="store_true", help="run the engine in the worker thread, not a child process")
    ap.add_argument("--actions", action="store_true", help="stalls of Open Sample, Load demo and GAN inversion instead")
    args = ap.parse_args()
    ensure_display()
    # the docks remember their settings: not into the user's own config folder from a benchmark
    os.environ.setdefault("LATENTDIRS_CONFIG_DIR", tempfile.mkdtemp(prefix="latentdirs-bench-config-"))
    if args.actions:
        actions(args.seconds)
        return
    os.environ["LATENTDIRS_SYNC_WORKERS"] = "0"
    os.environ["LATENTDIRS_ENGINE_IN_THREAD"] = "1" if args.in_thread else "0"

    import napari
    from napari_latentdirs._napari.training_dock import TrainingDock
    from napari_latentdirs.events import Step

    viewer = napari.Viewer(show=True)
    app = napari.qt.get_qapp()
    dock = TrainingDock(viewer)
    if args.nice is not None:
        dock.runner._nice = args.nice
    if args.no_napari_progress:
        dock.runner._progress_desc = None
    if args.flush_ms is not None:
        dock._flush_timer.setInterval(args.flush_ms)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    handler: list[float] = []
    kinds: dict[str, list[float]] = {}
    deliver = dock.runner._deliver

    def timed_deliver(item):
        t0 = time.perf_counter()
        deliver(item)
        handler.append(time.perf_counter() - t0)
        kinds.setdefault(type(item).__name__, []).append(handler[-1])

    dock.runner._deliver = timed_deliver
    viewer.window.add_dock_widget(dock)
    app.processEvents()
    idle_max, idle_p99, _ = measure(app, min(5.0, args.seconds / 2))
    frame_med, frame_max = layer_refresh_cost(viewer, app)
    # Control: the same training in a separate process. It loads the CPU exactly like the
    # in-process run but shares no GIL and no event loop with the GUI, so the difference
    # to it is what running training inside napari costs.
    import subprocess

    code = (
        "import threading, torch\n"
        f"torch.set_num_threads({max(1, (os.cpu_count() or 2) - 1)})\n"
        "from napari_latentdirs.training.config import config_from_dict\n"
        "from napari_latentdirs.training.data import phantom_slices\n"
        "from napari_latentdirs.training.gan import train_gan\n"
        f"cfg = config_from_dict('gan', preset={args.preset!r}, epochs=1000, batch_size={args.batch}, device='cpu', fid=False, log_every=1, sample_every=100, n_samples=8)\n"
        f"data = phantom_slices({args.phantom}, 0)\n"
        "print('ready', flush=True)\n"
        f"for ev in train_gan(cfg, data, {tempfile.mkdtemp(prefix='latentdirs-stall-ctl-')!r}, threading.Event()): pass\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(3.0)  # past model set-up
    ctl_max, ctl_p99, _ = measure(app, args.seconds)
    proc.kill()
    proc.wait()

    out = tempfile.mkdtemp(prefix="latentdirs-stall-")
    dock.data_combo.setCurrentIndex(0)
    dock.phantom_n.setValue(args.phantom)
    dock.preset_combo.setCurrentText(args.preset)
    dock.epochs_spin.setValue(1000)
    dock.batch_spin.setValue(args.batch)
    dock.max_steps_spin.setValue(0)
    dock.device_combo.setCurrentText("cpu")
    dock.out_edit.value = out
    steps: list[int] = []
    orig = dock.on_event
    dock.runner._on_event = lambda ev: (steps.append(ev.step) if isinstance(ev, Step) else None, orig(ev))
    dock.start()
    wait_until(app, lambda: len(steps) >= 2, 300)  # past data preparation and model set-up
    s0 = len(steps)
    train_max, train_p99, ticks = measure(app, args.seconds)
    n_steps = len(steps) - s0
    dock.stop()
    wait_until(app, lambda: not dock.runner.running, 300)
    print(f"machine: {machine()}")
    where = "worker thread" if args.in_thread else "child process"
    print(f"training: DCGAN preset {args.preset!r}, batch {args.batch}, {args.phantom} phantom slices, engine in a {where}, {n_steps} steps in {args.seconds:.0f} s ({n_steps / args.seconds:.1f} steps/s) in the background")
    print(f"bound    idle event loop, longest stall      {1000 * idle_max:7.1f} ms (p99 {1000 * idle_p99:.1f} ms)")
    print(f"control  same training in another process   {1000 * ctl_max:7.1f} ms (p99 {1000 * ctl_p99:.1f} ms)")
    print(f"bound    one samples-layer update, drawn      {1000 * frame_med:7.1f} ms (max {1000 * frame_max:.1f} ms over 10, idle viewer)")
    print(f"training longest GUI stall                   {1000 * train_max:7.1f} ms (p99 {1000 * train_p99:.1f} ms, {ticks} ticks)  goal < 50 ms; "
          f"{train_max / max(ctl_max, 1e-3):.2f} x control, {train_max / max(frame_med, 1e-3):.2f} x one layer update")
    print(f"one-off   samples layer created on Started   {1000 * max(kinds.get('Started', [0.0])):7.1f} ms (once per run, right after Start; not napari's first layer of the session)")
    print(f"GUI-thread work per engine event: longest {1000 * max(handler):.1f} ms over {len(handler)} events; " + ", ".join(f"{k} {1000 * max(v):.1f}" for k, v in kinds.items()))
    viewer.close()


if __name__ == "__main__":
    main()
