"""The engine child process shuts down quietly: no "Fatal Python error" at interpreter exit.

A stop listener blocked in a read of the child's stdin BufferedReader made every
finished run print ``Fatal Python error: _enter_buffered_busy`` (issue 12, part 4).
The child's stderr is inherited, so a parent script run here catches it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = """
import sys, threading, time
from napari_latentdirs.engine_process import EngineJob, run_in_process

print(list(run_in_process(EngineJob("_process_jobs:counting", {"n": 3}), threading.Event()))[-1].step)
stop = threading.Event()
threading.Timer(0.5, stop.set).start()
print(sum(1 for _ in run_in_process(EngineJob("_process_jobs:endless"), stop)) > 0)
try:
    list(run_in_process(EngineJob("_process_jobs:failing", {"message": "boom"}), threading.Event()))
except ValueError as exc:
    print("relayed", exc)
"""


def test_finished_stopped_and_failed_children_exit_without_a_fatal_error():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["2", "True", "relayed", "boom"], res.stdout + res.stderr
    assert "Fatal Python error" not in res.stderr and "_enter_buffered_busy" not in res.stderr, res.stderr
