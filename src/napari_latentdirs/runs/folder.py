"""Run folders (``latentdirs run --out``): which folders are ours.

A run folder is refused unless it is new, empty, or holds a manifest.json we
wrote, so a run never merges into or writes over someone else's files. How
paths are stored inside a run (``rel_to``/``from_run``) is :mod:`..utils.paths`,
below the analysis that reads them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..utils.folderlock import LOCK_NAME

#: Marks a manifest.json as ours (older runs are recognised by their keys).
RUN_FORMAT = "napari-latentdirs/run/1"


class RunFolderError(FileExistsError):
    """``--out`` is a non-empty folder that is not a run of ours: nothing there was changed."""


def _is_our_manifest(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    if doc.get("format") == RUN_FORMAT:
        return True
    cfg = doc.get("config")  # runs written before the format key
    return isinstance(cfg, dict) and "preset" in cfg and "out" in cfg and all(
        isinstance(doc.get(k, {}), dict) for k in ("generators", "sets", "timings")
    )


def check_run_folder(out: Path) -> None:
    """Refuse a folder we would merge into or write over without having made it.

    New, empty, and our own run folders (resumed as before) pass.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise RunFolderError(f"--out {out} exists and is not a folder")
    entries = sorted(e.name for e in os.scandir(out) if e.name != LOCK_NAME)  # a lock file alone: empty
    if not entries:
        return
    man = out / "manifest.json"
    if man.is_file():
        try:
            doc = json.loads(man.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if _is_our_manifest(doc):
            return
        raise RunFolderError(
            f"--out {out} holds a manifest.json that latentdirs did not write; nothing was changed. "
            "Choose a new or empty folder (or a folder of an earlier `latentdirs run` to resume it)"
        )
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise RunFolderError(
        f"--out {out} is not empty ({len(entries)} entries: {shown}) and is not a latentdirs run folder "
        "(no manifest.json); nothing was changed. Choose a new or empty folder"
    )


__all__ = ["RUN_FORMAT", "RunFolderError", "check_run_folder"]
