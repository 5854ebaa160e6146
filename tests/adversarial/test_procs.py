"""The tests' own view of processes (_procs.py) against processes in known states."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _procs import descendants, running, stat_fields  # noqa: E402

_SYS_EXIT = {"x86_64": 60, "aarch64": 93}.get(platform.machine())

# The main thread leaves through the exit *syscall*, which ends only the calling thread: the
# process lives on in its other thread, with its files open. This is the state a killed worker
# is in for a moment, its main thread a zombie while its other threads are still on their way out.
_LEADER_EXITS = f"""
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(600,)).start()
ctypes.CDLL(None).syscall({_SYS_EXIT}, 0)
"""


def _wait(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.02)
    return condition()


def _main_thread_state(pid: int) -> str:
    return (stat_fields(f"/proc/{pid}/stat") or ["gone"])[0]


@pytest.mark.skipif(not sys.platform.startswith("linux") or _SYS_EXIT is None, reason="reads /proc; Linux syscall")
def test_a_process_whose_main_thread_is_a_zombie_is_still_running_until_its_last_thread_ends():
    proc = subprocess.Popen([sys.executable, "-c", _LEADER_EXITS])
    try:
        assert _wait(lambda: _main_thread_state(proc.pid) == "Z"), "the main thread never exited"
        assert proc.poll() is None  # the process has not ended ...
        assert running(proc.pid)  # ... and running() says so, though its main thread is a zombie
        os.kill(proc.pid, signal.SIGKILL)
        assert _wait(lambda: not running(proc.pid))  # every thread gone: not running, reaped or not
    finally:
        proc.kill()
        proc.wait()
    assert not running(proc.pid)


def _parent(pid: int) -> int:
    return int(stat_fields(f"/proc/{pid}/stat")[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_descendants_finds_grandchildren_and_not_the_process_itself():
    # proc -> sh -> sleep: a child and a grandchild.
    proc = subprocess.Popen([sys.executable, "-c",
                             "import subprocess, time; subprocess.Popen(['sh', '-c', 'sleep 600; :']); time.sleep(600)"])
    try:
        assert _wait(lambda: len(descendants(proc.pid)) == 2), descendants(proc.pid)
        found = descendants(proc.pid)
        (child,) = [p for p in found if _parent(p) == proc.pid]
        (grandchild,) = found - {child}
        assert _parent(grandchild) == child and proc.pid not in found
        assert running(child) and running(grandchild)
        assert descendants(child) == {grandchild} and descendants(grandchild) == set()
    finally:
        for pid in descendants(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
