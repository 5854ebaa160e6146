"""What the kernel says about processes (Linux /proc), for the tests that kill jobs and count workers."""

from __future__ import annotations

import os
from pathlib import Path


def stat_fields(path: str) -> list[str] | None:
    """The fields of a /proc ``stat`` file after the name (state first, then the parent); None if gone."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now: children, grandchildren, ..."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = stat_fields(f"{entry.path}/stat")
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether any thread of ``pid`` still runs.

    The main thread's own state is not enough: a killed process's main thread can be a zombie
    while its other threads are still on their way out, and until the last one has gone the
    process keeps its files open (and with them any ``flock`` it holds).
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False  # reaped
    for tid in tasks:
        fields = stat_fields(f"/proc/{pid}/task/{tid}/stat")
        if fields is not None and fields[0] not in "ZX":
            return True
    return False
