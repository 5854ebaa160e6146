"""Worker processes that die with their parent.

A killed or interrupted job must not leave workers writing into a run folder
(issue 22): each worker arms ``PR_SET_PDEATHSIG`` (Linux: SIGKILL the moment
the parent dies) and a watchdog thread that notices re-parenting on any POSIX
system; :func:`worker_pool` stops its workers at once when the parent stops
(Ctrl-C, SIGTERM), instead of waiting for their tasks to finish; :func:`completed`
waits for their results so that a signal cannot land inside the executor's locks.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator


def die_with_parent(parent_pid: int) -> None:
    """Exit when ``parent_pid`` dies: PR_SET_PDEATHSIG (Linux) plus a watchdog thread.

    The signal is immediate but Linux-only (and tied to the thread that forked us);
    the watchdog notices re-parenting within a second on any POSIX system.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    die_with_parent(parent_pid)
    # A Ctrl-C in the terminal reaches the whole process group: the parent decides, workers stay quiet.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[cf.ProcessPoolExecutor]:
    """A spawn ProcessPoolExecutor whose workers die with this process.

    On an exception in the body (KeyboardInterrupt from Ctrl-C or SIGTERM included), the
    pending tasks are cancelled and the workers are killed before the exception goes on:
    a plain ``with ProcessPoolExecutor()`` would wait for the running tasks (minutes).
    """
    import multiprocessing as mp

    pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                  initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        # The executor has no public way to stop running tasks; its worker processes are in _processes.
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            with contextlib.suppress(Exception):
                p.kill()
        for p in procs:
            with contextlib.suppress(Exception):
                p.join(5)
        raise
    else:
        pool.shutdown(wait=True)


@contextlib.contextmanager
def _signals_set(flag: threading.Event) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM set ``flag`` and raise nothing (main thread only)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: flag.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def completed(futures: Iterable[cf.Future], poll_s: float = 0.2) -> Iterator[cf.Future]:
    """The futures as they finish (``as_completed``); a Ctrl-C or SIGTERM meanwhile is raised as
    KeyboardInterrupt from here, within ``poll_s``.

    A signal handler that raises does so at whatever bytecode the main thread is on, and while
    ``as_completed`` waits that can be inside the locks the executor's manager thread needs to hand
    over a result: the job then deadlocked on its way out now and then, workers killed but the
    process never exiting. Here the signal only sets a flag, and the wait polls it between waits,
    holding no lock, and also while the caller handles a result."""
    interrupted = threading.Event()
    pending = set(futures)
    with _signals_set(interrupted):
        while pending:
            done, pending = cf.wait(pending, timeout=poll_s, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                if interrupted.is_set():
                    break
                yield fut
            if interrupted.is_set():
                raise KeyboardInterrupt


__all__ = ["completed", "die_with_parent", "worker_pool"]
