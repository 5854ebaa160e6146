"""The one terminal renderer for engine events: tqdm bars, and log lines when bars are off."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C / SIGTERM: ask the engine to stop after the current step (it checkpoints
    first; a KeyboardInterrupt raised inside a step would kill the generator). Second: abort."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("stopping after this step (again to abort without a checkpoint)", file=sys.stderr, flush=True)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM as Ctrl-C: a job stopped by ``kill`` or a scheduler unwinds like an interrupted one
    (its worker processes killed, its folder lock released, temp files removed) instead of vanishing.
    Engines that stop gracefully (``stop_on_signals``) override it while they run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


#: errno values that mean "this folder cannot take the write" (read-only, no permission, disk or quota full).
_DISK_ERRORS = {errno.EROFS: "the folder is read-only: choose a writable folder",
                errno.EACCES: "no permission to write there: choose a folder you can write",
                errno.EPERM: "no permission to write there: choose a folder you can write",
                errno.ENOSPC: "the disk is full: free some space (or choose another disk) and run the command "
                              "again; finished steps are kept",
                errno.EDQUOT: "the disk quota is used up: free some space (or choose another disk) and run the "
                              "command again; finished steps are kept"}


def disk_error_line(exc: OSError) -> str | None:
    """One line for a write that the disk refused, naming the path; None for other errors."""
    what = _DISK_ERRORS.get(exc.errno) if exc.errno is not None else None
    if what is None:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    return f"error: cannot write {where}: {exc.strerror or os.strerror(exc.errno)}; {what}"


def event_line(ev: Any, log_every: int = 1) -> str | None:
    """One terminal line for an engine event, or None for events a line-log skips."""
    from .events import EpochEnd, Finished, Message, Step, Stopped

    if isinstance(ev, Step):
        if ev.step % max(log_every, 1) == 0 or ev.step == ev.total_steps:
            return f"step {ev.step}/{ev.total_steps} " + " ".join(f"{k}={v:.4g}" for k, v in ev.losses.items())
        return None
    if isinstance(ev, EpochEnd):
        return f"epoch {ev.epoch}: " + " ".join(f"{k}={v:.4g}" for k, v in ev.metrics.items())
    if isinstance(ev, Message):
        return ev.text
    if isinstance(ev, Stopped):
        return f"stopped at step {ev.step}"
    if isinstance(ev, Finished):
        figures = " ".join(f"{k}={v:.4g}" for k, v in ev.metrics.items())  # never a bare "{}"
        return f"finished at step {ev.step}: {ev.output}" + (f" {figures}" if figures else "")
    return None


class Progress:
    """tqdm bars over engine events; silent when disabled (tests)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def stage(self, text: str) -> None:
        """A stage line: on the terminal beside the bars, or in the log when bars are off."""
        if self.enabled:
            from tqdm import tqdm

            tqdm.write(f"[latentdirs] {text}")
        else:
            log.info("== %s", text)

    def drive(self, events: Iterable[Any], desc: str) -> Any:
        """Consume an engine's events; return the last one (Finished or Stopped)."""
        from .events import CheckpointSaved, Finished, Message, Started, Step, Stopped

        bar = None
        last = None
        try:
            for ev in events:
                last = ev
                if isinstance(ev, Started) and self.enabled:
                    from tqdm import tqdm

                    bar = tqdm(total=ev.total_steps, initial=ev.start_step, desc=desc, unit="step", leave=True,
                               dynamic_ncols=True, file=sys.stderr)
                elif isinstance(ev, Step) and bar is not None:
                    bar.n = min(ev.step + 1, bar.total or ev.step + 1)
                    if ev.losses:
                        bar.set_postfix({k: f"{v:.3g}" for k, v in list(ev.losses.items())[:3]}, refresh=False)
                    bar.refresh()
                elif isinstance(ev, CheckpointSaved):
                    log.debug("%s: checkpoint %s", desc, ev.path)
                elif isinstance(ev, Message):
                    if self.enabled:
                        from tqdm import tqdm

                        tqdm.write(f"{desc}: {ev.text}", file=sys.stderr)
                    else:
                        log.info("%s: %s", desc, ev.text)
                    if self.enabled:
                        from tqdm import tqdm

                        tqdm.write(f"{desc}: {ev.text}", file=sys.stderr)
                elif isinstance(ev, CheckpointSaved):
                    log.debug("%s: checkpoint %s", desc, ev.path)
                elif isinstance(ev, (Finished, Stopped)) and bar is not None:
                    bar.n = max(bar.n, getattr(ev, "step", bar.n))
                    bar.refresh()
        finally:
            if bar is not None:
                bar.close()
        return last

    def loop(self, total: int, desc: str) -> Callable[[int, int], None]:
        if not self.enabled:
            return lambda i, n: None
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit="dir", leave=True, dynamic_ncols=True)

        def update(i: int, n: int) -> None:
            bar.n = i
            bar.refresh()
            if i >= n:
                bar.close()

        return update
