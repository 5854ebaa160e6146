"""Run an engine in a child process and relay its events, so training never shares a GIL
with a GUI.

A training loop is Python between torch kernels; run in a thread of the napari
process, it competes with the event loop for the interpreter lock, and on a
2-core VM it trained at 0.6x the speed it reaches in a process of its own
(``benchmarks/bench_gui_stall.py --in-thread``). Run in a child process, only
the small events cross over, and a crash of the engine is an error message
rather than a dead viewer.

:class:`EngineJob` is a picklable recipe (a module-level engine function and its
keyword arguments). :func:`run_in_process` starts it in a fresh interpreter
(safe with CUDA) and is itself an event generator with the engine's contract:
it yields the engine's events, returns its return value, raises its exception,
and a set stop event reaches the engine's own stop request, so the engine
checkpoints and returns as it would in-process.

The child is a plain ``python -c`` subprocess, not a ``multiprocessing`` spawn:
spawn re-imports the parent's main module, which re-runs any napari script
written without a ``__main__`` guard (most are) inside the child. Messages are
length-prefixed pickles over the child's stdin and stdout, between this process
and the child it started; nothing read from a file is unpickled. The child
sends its own prints to stderr so they cannot corrupt the channel.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<Q")
# The first line the child reads is the parent's sys.path as JSON, so the child imports
# exactly what the parent would (a source checkout, a test folder), as multiprocessing does.
# The channel is an *unbuffered* duplicate of stdin: the stop listener blocks in a read on it
# until the end, and a daemon thread blocked inside sys.stdin's BufferedReader holds that
# reader's lock, which interpreter shutdown then cannot take ("Fatal Python error:
# _enter_buffered_busy"). A raw FileIO has no lock, and it never reads ahead, so the bytes
# after the first line are still there for child_main. fd 0 itself becomes /dev/null.
_CHILD = (
    "import json, os, sys; ch = os.fdopen(os.dup(0), 'rb', buffering=0); "
    "nul = os.open(os.devnull, os.O_RDONLY); os.dup2(nul, 0); os.close(nul); "
    "sys.path[:] = json.loads(ch.readline()); "
    "from napari_latentdirs.engine_process import child_main; child_main(ch)"
)


class EngineProcessError(RuntimeError):
    """The child process failed in a way that could not be relayed as the engine's own error."""


class RemoteTraceback(Exception):
    """Carries the child's formatted traceback as the ``__cause__`` of a relayed exception."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


@dataclass(frozen=True)
class EngineJob:
    """``target`` is ``"package.module:function"``; the function is called as
    ``function(stop, **kwargs)`` and returns an event iterator."""

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> Any:
        module, _, name = self.target.partition(":")
        if not module or not name:
            raise ValueError(f"engine target must be 'module:function', got {self.target!r}")
        fn: Any = importlib.import_module(module)
        for part in name.split("."):
            fn = getattr(fn, part)
        return fn

    def __call__(self, stop: threading.Event) -> Iterator[Any]:
        return self.resolve()(stop, **self.kwargs)


def default_threads() -> int:
    """Torch threads for a child beside a GUI: every core but one, which the GUI keeps."""
    n = os.cpu_count() or 1
    return max(1, n - 1)


def write_frame(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: BinaryIO) -> Any:
    """The next message; EOFError when the other side has gone."""
    (n,) = _FRAME.unpack(_read_exact(stream, _FRAME.size))
    return pickle.loads(_read_exact(stream, n))  # noqa: S301 - our own child's messages


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError("channel closed")
        buf += chunk
    return bytes(buf)


def run_in_process(
    job: EngineJob,
    stop: threading.Event,
    *,
    threads: int | None = None,
    nice: int = 0,
    stop_timeout_s: float = 60.0,
    on_start: Callable[[int], None] | None = None,
) -> Iterator[Any]:
    """Run ``job`` in a child process; yield its events here (see the module docstring).
    ``on_start`` gets the child's process id.

    If this generator is closed early (its consumer went away), the child is asked to
    stop, given ``stop_timeout_s`` to checkpoint, and killed after that.
    """
    proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    if on_start is not None:
        on_start(proc.pid)
    lock = threading.Lock()
    done = threading.Event()

    def send_stop() -> None:
        with lock, contextlib.suppress(OSError, ValueError):  # the child may be gone already
            write_frame(proc.stdin, "stop")

    def watch_stop() -> None:
        while not done.is_set():
            if stop.wait(0.1):
                send_stop()
                return

    finished = False
    try:
        with lock:
            proc.stdin.write(json.dumps(list(sys.path)).encode() + b"\n")
            write_frame(proc.stdin, {"job": job, "threads": threads or default_threads(), "nice": nice})
        threading.Thread(target=watch_stop, name="engine-stop-watch", daemon=True).start()
        while True:
            try:
                kind, payload = read_frame(proc.stdout)
            except EOFError:
                try:
                    code: int | str = proc.wait(10)
                except subprocess.TimeoutExpired:
                    code = "none yet: it closed its channel but still runs"
                raise EngineProcessError(f"the engine process exited unexpectedly (exit code {code})") from None
            if kind == "event":
                yield payload
            elif kind == "done":
                finished = True
                return payload
            elif kind == "error":
                finished = True
                raise _rebuild_error(payload)
    finally:
        done.set()
        if not finished:
            send_stop()
        with lock, contextlib.suppress(OSError):
            proc.stdin.close()  # EOF: a stop request too, and the end of a header never sent
        # keep reading, so a child still writing events is never blocked on a full pipe
        threading.Thread(target=proc.stdout.read, name="engine-drain", daemon=True).start()
        try:
            proc.wait(stop_timeout_s if not finished else 10.0)
        except subprocess.TimeoutExpired:
            log.warning("engine process %d did not stop in time: killing it", proc.pid)
            proc.kill()
            proc.wait(10)


def child_main(channel_in: BinaryIO | None = None) -> None:
    """The child's side: read the job, run it, send back events and the outcome.
    ``channel_in``: the parent's end, unbuffered (see ``_CHILD``)."""
    if channel_in is None:
        channel_in = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
    channel_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints, even from C, go to stderr
    sys.stdout = sys.stderr
    # Ctrl-C in a terminal reaches the whole process group: the parent decides, and stops
    # this process through the channel, after a checkpoint.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    header = read_frame(channel_in)
    stop = threading.Event()

    def listen() -> None:
        # A stop message, or the parent going away (EOF), is a stop request: the engine
        # then checkpoints and returns instead of training on for nobody.
        try:
            while read_frame(channel_in) != "stop":
                pass
        except (EOFError, OSError):
            pass
        stop.set()

    threading.Thread(target=listen, name="stop-listener", daemon=True).start()
    if header["nice"] > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(header["nice"])
    import torch

    torch.set_num_threads(max(1, int(header["threads"])))
    try:
        engine = header["job"](stop)
        while True:
            try:
                ev = next(engine)
            except StopIteration as end:
                write_frame(channel_out, ("done", end.value))
                return
            write_frame(channel_out, ("event", ev))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        with contextlib.suppress(OSError, ValueError):
            write_frame(channel_out, ("error", _error_record(exc)))
    finally:
        with contextlib.suppress(OSError):
            channel_out.close()


def _error_record(exc: BaseException) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "exception": None,
    }
    try:  # relay the exception itself when it survives the trip (most do)
        exc.__traceback__ = None
        pickle.loads(pickle.dumps(exc))
        record["exception"] = exc
    except Exception:  # noqa: BLE001 - fall back to its name and message
        pass
    return record


def _rebuild_error(record: dict[str, Any]) -> BaseException:
    exc = record.get("exception")
    if not isinstance(exc, BaseException):
        exc = EngineProcessError(f"{record.get('type', 'error')}: {record.get('message', '')}")
    exc.__cause__ = RemoteTraceback(record.get("traceback", ""))
    return exc
