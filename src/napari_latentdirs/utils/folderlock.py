"""One writer per folder: the lock every command that writes a run folder (or a cache) takes.

The lock is an advisory ``flock`` on ``<folder>/.latentdirs-lock``, which
also names its holder (pid, host, command) for the message a second writer
gets. The kernel drops the lock when its process dies, so a lock left by a
killed job is simply taken over. Within one process the lock is re-entrant
(``latentdirs run`` holds its folder while the report inside it takes it
again); the file is removed when the outermost holder lets go. Without
``fcntl`` (Windows) there is no lock: one job per folder is then the user's rule.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The lock file in a locked folder (our run-folder and cache checks accept it).
LOCK_NAME = ".latentdirs-lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_held: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of a folder -> depth, this process
_guard = threading.Lock()


class FolderBusyError(FileExistsError):
    """Another process is writing the folder; the message names the folder and that process."""


def _key(folder: Path) -> tuple[int, int]:
    st = os.stat(folder)
    return st.st_dev, st.st_ino


def _command() -> str:
    return " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200] or "python"


def _describe(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return "another process"
    pid, host, cmd = doc.get("pid"), doc.get("host"), doc.get("command")
    who = f"process {pid}" if isinstance(pid, int) else "another process"
    if isinstance(host, str) and host != socket.gethostname():
        who += f" on {host}"
    if isinstance(cmd, str) and cmd:
        who += f" ({cmd[:120]})"
    return who


def _busy(folder: Path, fd: int) -> FolderBusyError:
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        return FolderBusyError(f"{folder} is in use by {_describe(text)}: one job at a time writes a folder. "
                               "Wait for it to finish or stop it, or choose another folder")
    return FolderBusyError(f"{folder} is in use by another process; wait for it or choose another folder")


def holder_of(folder: str | os.PathLike) -> str | None:
    """Who holds ``folder``'s lock (``"process 123 (latentdirs train ...)"``), None when nobody does.
    Reads only: a free folder is left as it was."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return None
    with contextlib.suppress(OSError):
        if _key(Path(folder)) in _held:
            return None  # this process: not a second writer
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        return None  # a file left by a dead process
    finally:
        os.close(fd)


def check_free(folder: str | os.PathLike) -> None:
    """Raise :class:`FolderBusyError` when another process holds ``folder`` (the docks' Start)."""
    who = holder_of(folder)
    if who is not None:
        raise FolderBusyError(f"{folder} is in use by {who}: one job at a time writes a folder. "
                              "Wait for it to finish or stop it, or choose another folder")


@contextlib.contextmanager
def hold_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Create ``folder`` if needed and hold its lock for the block; :class:`FolderBusyError` if busy."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield folder
        return
    key = _key(folder)
    with _guard:
        depth = _held.get(key, 0)
        if depth:
            _held[key] = depth + 1
    if depth:
        try:
            yield folder
        finally:
            with _guard:
                _held[key] -= 1
        return
    path = folder / LOCK_NAME
    fd = _acquire(folder, path)
    with _guard:
        _held[key] = 1
    try:
        yield folder
    finally:
        with _guard:
            _held.pop(key, None)
        # Unlink while still holding the lock: a process that opened the old file then finds,
        # after taking its lock, that the path is another file (or none), and tries again.
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                os.unlink(path)
        os.close(fd)
        if created:  # a job refused before it wrote anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def locked_events(folder: str | os.PathLike, events: Iterator[Any]) -> Iterator[Any]:
    """An engine's events with ``folder`` held from the first event to the last (or a stop)."""
    with hold_folder(folder):
        yield from events


def _acquire(folder: Path, path: Path) -> int:
    for _attempt in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            err = _busy(folder, fd)
            os.close(fd)
            raise err from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if not same:  # the holder we waited on removed this file as it finished: take the new one
            os.close(fd)
            continue
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with contextlib.suppress(OSError):  # who holds it is for messages only (a full disk may refuse it)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        return fd
    raise FolderBusyError(f"{folder}: could not take its lock (it kept being replaced); try again")


__all__ = ["LOCK_NAME", "FolderBusyError", "check_free", "hold_folder", "holder_of", "locked_events"]
