"""The bridge between core engines (generators of events) and napari widgets.

Every long computation in the plugin is a core generator that takes a
``threading.Event`` stop request. :class:`EngineRunner` runs one in a napari
thread worker and delivers each yielded item to the widget on the GUI thread
(so layer changes only ever happen there), mirrors training progress into a
``napari.utils.progress`` bar, turns exceptions into a napari notification
and puts the widget back to ready, and stops the worker when the widget or
the viewer closes.

An :class:`~napari_latentdirs.engine_process.EngineJob` (a picklable engine)
runs in a child process by default, relayed by the worker thread: a training
loop in a thread of the napari process would share its interpreter lock and
stall the event loop. ``LATENTDIRS_ENGINE_IN_THREAD=1`` keeps it in the worker
thread instead (debugging); plain callables always run there.

``LATENTDIRS_SYNC_WORKERS=1`` runs the generator synchronously on the
calling thread instead, with exactly the same callbacks, for tests.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QApplication, QWidget

from ..engine_process import EngineJob, run_in_process
from ..events import Finished, Started, Step, Stopped
from ..utils.runtime import env_flag

log = logging.getLogger(__name__)

SYNC_ENV = "LATENTDIRS_SYNC_WORKERS"
IN_THREAD_ENV = "LATENTDIRS_ENGINE_IN_THREAD"

EngineFactory = Callable[[threading.Event], Iterator[Any]]


def sync_workers() -> bool:
    return env_flag(SYNC_ENV)


class Eta:
    """Steps per second and remaining time from the steps seen in this run."""

    def __init__(self) -> None:
        self._t0: float | None = None
        self._s0 = 0

    def reset(self, start_step: int = 0) -> None:
        self._t0 = time.perf_counter()
        self._s0 = start_step

    def remaining(self, step: int, total: int) -> float | None:
        if self._t0 is None or step <= self._s0:
            return None
        rate = (step - self._s0) / max(time.perf_counter() - self._t0, 1e-9)
        return max(total - step, 0) / rate

    @staticmethod
    def format(seconds: float | None) -> str:
        if seconds is None:
            return "--:--"
        m, s = divmod(int(round(seconds)), 60)
        h, m = divmod(m, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class EngineRunner(QObject):
    """Runs one core engine at a time off the GUI thread.

    Callbacks, all called on the GUI thread:
    ``on_event(item)`` for every yielded item, ``on_done(error)`` once when the
    run ends (``error`` is None unless it raised). The runner owns a napari
    progress bar for ``Started``/``Step`` events when ``progress_desc`` is set;
    the owner moves it to the newest step with :meth:`apply_progress`.
    """

    def __init__(
        self,
        owner: QWidget,
        on_event: Callable[[Any], None],
        on_done: Callable[[BaseException | None], None] | None = None,
        progress_desc: str | None = None,
        viewer: Any = None,
        name: str = "napari-latentdirs",
        background_nice: int = 0,
        reserve_gui_core: bool = False,
        isolate: bool = True,
    ) -> None:
        super().__init__(owner)
        self._isolate = isolate
        self._nice = background_nice
        self._reserve_core = reserve_gui_core
        self._saved_threads: int | None = None
        self._on_event = on_event
        self._on_done = on_done
        self._progress_desc = progress_desc
        self._name = name
        self._stop = threading.Event()
        self._thread_done = threading.Event()
        self._thread_done.set()
        self._worker: Any = None
        self._pbar: progress | None = None
        self._pbar_n: int | None = None
        self._child_pid: int | None = None
        self._running = False
        self._owner = owner
        self._filtering = False
        self.eta = Eta()
        # Whatever closes first -- the widget, the viewer window, the app --
        # must not leave a training thread behind.
        owner.destroyed.connect(self._on_owner_destroyed)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop_and_wait)

    # -- state -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def thread_alive(self) -> bool:
        return not self._thread_done.is_set()

    # -- control -----------------------------------------------------------------------------
    def start(self, factory: EngineFactory, description: str = "") -> None:
        if self._running:
            raise RuntimeError("a run is already in progress; stop it first")
        self._stop = threading.Event()
        self._running = True
        self._watch_close(True)
        if sync_workers():
            self._run_sync(factory)
            return
        stop = self._stop
        done = self._thread_done
        done.clear()
        nice = self._nice
        if self.isolates(factory):
            factory = functools.partial(run_in_process, factory, nice=nice, on_start=self._child_started)
            nice = 0  # the relaying thread only waits on a pipe
        else:
            self._limit_torch_threads()

        def body() -> Iterator[Any]:
            before = lower_thread_priority(nice)
            try:
                yield from factory(stop)
            finally:
                restore_thread_priority(before)
                done.set()

        self._worker = create_worker(
            body,
            _start_thread=False,
            _connect={"yielded": self._deliver, "errored": self._errored, "returned": self._returned},
        )
        # `finished` fires after errored/returned and after an abort: the one place to tidy up.
        self._worker.finished.connect(self._finished)
        self._error: BaseException | None = None
        self._worker.start()

    def isolates(self, factory: EngineFactory) -> bool:
        """Whether ``factory`` runs in a child process (see the module docstring)."""
        frozen = getattr(sys, "frozen", False)  # a frozen app's executable cannot run `python -c`
        return self._isolate and isinstance(factory, EngineJob) and not frozen and not env_flag(IN_THREAD_ENV)

    @property
    def child_pid(self) -> int | None:
        """Process id of the current or last engine child process, if any."""
        return self._child_pid

    def _child_started(self, pid: int) -> None:
        self._child_pid = pid

    def request_stop(self) -> None:
        """Ask the engine to stop; it checkpoints and yields Stopped within one iteration."""
        self._stop.set()

    def stop_and_wait(self, timeout_s: float = 30.0) -> bool:
        """Stop and block until the worker thread has left the engine (close paths)."""
        # The stop event, not worker.quit(): an aborted napari worker abandons the generator
        # without closing it, so the engine's own checkpoint-and-return path would not run.
        self._stop.set()
        ok = self._thread_done.wait(timeout_s)
        if not ok:
            log.warning("%s: worker did not stop within %.0f s", self._name, timeout_s)
        return ok

    # -- internals ---------------------------------------------------------------------------
    def _run_sync(self, factory: EngineFactory) -> None:
        error: BaseException | None = None
        self._thread_done.clear()
        try:
            for item in factory(self._stop):
                self._deliver(item)
        except Exception as exc:  # noqa: BLE001 - every engine error becomes a notification
            error = exc
            self._notify_error(exc)
        finally:
            self._thread_done.set()
        self._end(error)

    def _deliver(self, item: Any) -> None:
        try:
            self._progress(item)
            self._on_event(item)
        except Exception as exc:  # noqa: BLE001 - a widget bug must not kill the run silently
            log.exception("widget failed to handle %r", type(item).__name__)
            self._notify_error(exc)

    def _returned(self, _value: Any) -> None:
        pass

    def _errored(self, exc: BaseException) -> None:
        # napari's worker class means to relay errors to the notification manager, but its
        # mixin's __init__ is never reached through QRunnable here, so notify explicitly;
        # `finished` then reports the error to the widget, which goes back to ready.
        self._error = exc
        log.error("%s failed", self._name, exc_info=(type(exc), exc, exc.__traceback__))
        self._notify_error(exc)

    def _finished(self) -> None:
        self._worker = None
        self._end(getattr(self, "_error", None))

    def _limit_torch_threads(self) -> None:
        # Torch's intra-op pool would take every core; on a small machine the GUI thread
        # then waits for a time slice (and for the GIL) behind it. Leave it one core.
        import torch

        n = os.cpu_count() or 1
        if self._reserve_core and n > 1 and torch.get_num_threads() >= n:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(n - 1)

    def _restore_torch_threads(self) -> None:
        if self._saved_threads is not None:
            import torch

            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None

    def _end(self, error: BaseException | None) -> None:
        self._running = False
        self._restore_torch_threads()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._watch_close(False)
        if self._on_done is not None:
            self._on_done(error)

    def _notify_error(self, exc: BaseException) -> None:
        show_error(f"{self._name}: {type(exc).__name__}: {exc}")

    def _progress(self, item: Any) -> None:
        if self._progress_desc is None:
            return
        if isinstance(item, Started):
            if self._pbar is not None:
                self._pbar.close()
            self._pbar = progress(total=item.total_steps, desc=self._progress_desc)
            self._pbar.n = item.start_step
            self.eta.reset(item.start_step)
        elif isinstance(item, Step) and self._pbar is not None:
            # Applied by apply_progress(), from the owner's refresh timer: each refresh
            # repaints the window, so it must coincide with the owner's own repaint.
            self._pbar_n = min(item.step + 1, item.total_steps)
        elif isinstance(item, Stopped | Finished) and self._pbar is not None:
            self._pbar.close()
            self._pbar = None

    def apply_progress(self) -> None:
        """Bring the napari progress bar up to the newest step (call from a GUI timer)."""
        if self._pbar is not None and self._pbar_n is not None and self._pbar_n != self._pbar.n:
            self._pbar.n = self._pbar_n
            self._pbar.refresh()
        self._pbar_n = None

    def _watch_close(self, on: bool) -> None:
        # While a run is active, a Close of the widget or of the window holding it (the
        # napari viewer) stops it. The top-level window is looked up at start, when the
        # widget is already docked.
        if on == self._filtering:
            return
        try:
            targets = {id(w): w for w in (self._owner, self._owner.window())}.values()
        except RuntimeError:
            return
        for w in targets:
            if on:
                w.installEventFilter(self)
            else:
                w.removeEventFilter(self)
        self._filtering = on

    def eventFilter(self, obj: Any, event: Any) -> bool:  # Qt API
        if event.type() == QEvent.Type.Close and self._running:
            self.stop_and_wait()
        return False

    def _on_owner_destroyed(self, *_: Any) -> None:
        self.stop_and_wait()


def lower_thread_priority(nice: int) -> int | None:
    """Raise the calling thread's nice value (Linux: per thread, inherited by the
    intra-op threads torch starts from it), so a long training run yields the CPU
    to the GUI thread instead of competing with it on a small machine.
    Returns the previous value, or None when nothing changed."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return None
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
            return current
    except OSError:  # not permitted or not supported: run at normal priority
        log.debug("could not lower the worker thread's priority", exc_info=True)
    return None


def restore_thread_priority(previous: int | None) -> None:
    """Best effort: pool threads are reused, and lowering nice again may need privileges."""
    if previous is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), previous)
    except OSError:
        log.debug("thread keeps its lowered priority until the pool retires it", exc_info=True)


def info(text: str) -> None:
    show_info(text)


def defer(fn: Callable[[], None], ms: int = 0) -> None:
    """Run ``fn`` on the GUI thread after ``ms`` milliseconds."""
    QTimer.singleShot(ms, fn)
