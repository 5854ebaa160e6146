"""No orphans after SIGTERM (issue 22, item 4).

A real ``latentdirs run`` (the tiny preset on one phantom patient, two direction sets at a time in
worker processes) gets SIGTERM (or SIGINT) while it discovers directions. It must stop cleanly (exit 130 with a
message) and leave no process of its own behind: its workers used to live on with PPID 1, writing
``directions/*``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _procs import descendants, running  # noqa: E402
from _tiny_runs import ENV, PY  # noqa: E402


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_directions_stops_cleanly_and_leaves_no_worker(tmp_path, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen([PY, "-m", "napari_latentdirs.cli", "run", "--out", str(out), "--patients", "1",
                             "--workers", "2", "--device", "cpu", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, text=True)
    lines = []
    workers: set[int] = set()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 240:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "at a time" in line:  # the pool is starting
                break
        assert any("at a time" in line for line in lines), "".join(lines)[-3000:]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:  # until both workers are busy
            workers = {p for p in descendants(proc.pid) if running(p)}
            if len(workers) >= 3 and any((out / "directions").glob("*/metrics.csv")):  # + resource tracker
                break
            time.sleep(0.2)
        assert len(workers) >= 2, workers
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(running(p) for p in workers):
            time.sleep(0.2)
        left = sorted(p for p in workers if running(p))
        for p in left:  # do not leave them to the next test either
            os.kill(p, signal.SIGKILL)
    assert not left, f"orphans still alive 10 s after the job ended: {left}"
    rest = proc.stdout.read()  # EOF: nobody else holds the pipe
    assert proc.returncode == 130, "".join(lines)[-2000:] + rest[-2000:]
    assert "interrupted" in rest, rest[-2000:]


def test_a_signal_while_waiting_on_workers_is_raised_between_waits_not_inside_them():
    """The cause of a rare hang after SIGINT: an exception raised by a signal handler lands at any
    bytecode, and inside ``as_completed`` that can be within the locks the executor's manager thread
    needs, which then deadlocks the exit. ``completed`` turns the signal into a flag and raises
    KeyboardInterrupt from its own poll, restores the handlers, and the pool's workers are killed."""
    import threading
    import traceback

    from napari_latentdirs.utils.processes import completed, worker_pool

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    task_s = 60.0
    procs = []
    with pytest.raises(KeyboardInterrupt) as info, worker_pool(2) as pool:
        futures = [pool.submit(time.sleep, task_s) for _ in range(2)]
        procs = list(pool._processes.values())
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        for fut in completed(futures):
            fut.result()
    assert time.monotonic() - t0 < task_s  # the interrupt did not wait for the tasks
    assert traceback.extract_tb(info.value.__traceback__)[-1].name == "completed"  # raised at the poll
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    # Asked of the kernel: Process.is_alive() can say True for a worker that the executor's manager
    # thread has just reaped.
    pids = [p.pid for p in procs]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.1)
    assert pids and not [pid for pid in pids if running(pid)]
