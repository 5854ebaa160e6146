"""Names and paths read from a run folder stay inside it.

A run folder may be shared, copied from someone else or edited by hand: a set
named ``../../x`` or a path ``/home/you/x.safetensors`` in its manifest must
not make a command read or write outside the folder. Every such entry is
resolved (symbolic links followed) and checked to lie inside the run;
anything else is an :class:`OutsideRunError` that names the entry.
"""

from __future__ import annotations

import os
from pathlib import Path


class OutsideRunError(ValueError):
    """A name or path stored in a run folder points outside it (or is not a plain name)."""


def confined(run: str | os.PathLike, stored: str | os.PathLike, entry: str = "") -> Path:
    """``stored`` (relative to ``run``, or absolute) as a path inside ``run``; raises otherwise.

    ``entry`` says where the value came from (``manifest.json: sets[...].path``) for the message.
    """
    run_path = Path(run)
    where = entry or "a stored path"
    text = os.fspath(stored) if isinstance(stored, str | os.PathLike) else stored
    if not isinstance(text, str) or not text or "\x00" in text:
        raise OutsideRunError(f"{where} ({text!r}) is not a usable path inside the run folder {run_path}")
    p = Path(text)
    full = p if p.is_absolute() else run_path / p
    root = run_path.resolve()
    if not _is_within(full.resolve(), root):
        raise OutsideRunError(
            f"{where} ({text!r}) points outside the run folder {run_path}; nothing was read or written there. "
            "A run folder only refers to files inside it: fix or remove that entry")
    return full


def plain_name(name: str, entry: str = "") -> str:
    """A name used as a file name in the run (a set's name): no separators, not ``.``/``..``."""
    where = entry or "a stored name"
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
            or "\x00" in name or os.sep in name or (os.altsep and os.altsep in name)):
        raise OutsideRunError(f"{where} ({name!r}) is not a plain file name; it could lead outside the run folder")
    return name


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def rel_to(run: str | os.PathLike, path: str | os.PathLike) -> str:
    """``path`` as stored in manifest.json and summary.json: relative to the run when inside it,
    so a copied or moved run keeps pointing at its own files."""
    p = Path(path)
    try:
        inside = _is_within(p.resolve(), Path(run).resolve())
        return Path(os.path.relpath(p.resolve(), Path(run).resolve())).as_posix() if inside else str(p)
    except ValueError:  # another drive (Windows)
        return str(p)


def from_run(run: str | os.PathLike, stored: str | os.PathLike, entry: str = "") -> Path:
    """A stored path back: relative ones are under the run, absolute ones (older runs) as they are,
    and either must lie inside the run (:func:`confined`; ``entry`` names it in the error)."""
    return confined(run, stored, entry)


__all__ = ["OutsideRunError", "confined", "from_run", "plain_name", "rel_to"]
