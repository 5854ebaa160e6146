"""Atomic file writes: write to a temp file in the same folder, fsync, rename.

A reader never sees a half-written checkpoint or cache: either the old file
or the complete new one. The temporary file is ``.<name>.<pid>@<host>.<random>.tmp``;
a SIGKILL or power cut leaves it behind, and :func:`clean_stale_temps` removes
such files once their writer is known to be dead (same host, process gone).
The final file gets the usual umask-based mode, like any file the user creates.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
# What follows ".<name>." in a temp file name: ours, and the older mkstemp-only form.
_OURS = re.compile(r"(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[A-Za-z0-9_]+")
_LEGACY = re.compile(r"[a-z0-9_]{8}")
# A legacy temp name carries no pid; one untouched for this long has no live writer.
LEGACY_MAX_AGE_S = 3600.0


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` is racy across threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc (macOS): the only other way is to set it and put it back
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file."""
    return 0o666 & ~current_umask()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def clean_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temp files of ``path`` whose writer is dead; return the removed paths.

    Only files named like our temps *for this target* are touched: a live
    writer's file (its process exists, or it runs on another host) is kept.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        rest = name[len(prefix) : -len(".tmp")]
        stale = False
        m = _OURS.fullmatch(rest)
        if m:
            stale = m["host"] == _HOST and not _pid_alive(int(m["pid"]))
        elif _LEGACY.fullmatch(rest):
            with contextlib.suppress(OSError):
                stale = now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_MAX_AGE_S
        if stale and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


_ANY_OURS = re.compile(r"\.(?P<target>.+)\.\d+@[A-Za-z0-9-]+\.[A-Za-z0-9_]+\.tmp")
_ANY_LEGACY = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def clean_stale_temps_in(folder: str | os.PathLike) -> list[Path]:
    """:func:`clean_stale_temps` for every target that has temp files in ``folder``.

    Only for folders whose temp files can only be ours (a run folder, checked first):
    the legacy pattern ``.<name>.<8 chars>.tmp`` carries no pid.
    """
    folder = Path(folder)
    try:
        names = [e.name for e in os.scandir(folder)]
    except OSError:
        return []
    targets = set()
    for name in names:
        m = _ANY_OURS.fullmatch(name) or _ANY_LEGACY.fullmatch(name)
        if m:
            targets.add(m["target"])
    removed: list[Path] = []
    for target in sorted(targets):
        removed += clean_stale_temps(folder / target)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, clean_stale: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` atomically.

    ``clean_stale`` first removes temp files of ``path`` left by killed writers
    (one directory listing; leave it off for folders of many files).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if clean_stale:
            clean_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    mode = file_mode()  # mkstemp creates 0600
    os.chmod(tmp_path, mode)
    try:
        yield tmp_path
        # Again: a writer may have replaced the temp file rather than written into it.
        os.chmod(tmp_path, mode)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _naming(exc, path) from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` naming the file being written (a full disk's write() error names none, and the
    temporary name means nothing to the user), same errno and so the same OSError subclass."""
    if exc.errno is None or (exc.filename is not None and not str(exc.filename).endswith(".tmp")
                             and Path(exc.filename) != path.parent):
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes, clean_stale: bool = False) -> None:
    with atomic_path(path, clean_stale=clean_stale) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, clean_stale: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), clean_stale=clean_stale)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
