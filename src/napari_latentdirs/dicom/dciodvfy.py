"""Run dicom3tools' ``dciodvfy`` on a file and collect its errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DCIODVFY = "/usr/bin/dciodvfy"


class DciodvfyMissingError(FileNotFoundError):
    """dciodvfy (package dicom3tools) is not installed."""


def find_dciodvfy() -> str:
    if Path(DCIODVFY).is_file():
        return DCIODVFY
    found = shutil.which("dciodvfy")
    if not found:
        raise DciodvfyMissingError("dciodvfy not found; install dicom3tools (apt-get install dicom3tools)")
    return found


def dciodvfy_output(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such DICOM file: {path}")
    proc = subprocess.run([find_dciodvfy(), str(path)], capture_output=True, text=True, timeout=120, check=False)
    return proc.stdout + proc.stderr


def dciodvfy_errors(path: str | Path) -> list[str]:
    """The ``Error`` lines dciodvfy reports for ``path`` (empty list = valid)."""
    return [ln.strip() for ln in dciodvfy_output(path).splitlines() if ln.strip().startswith("Error")]


def dciodvfy_warnings(path: str | Path) -> list[str]:
    return [ln.strip() for ln in dciodvfy_output(path).splitlines() if ln.strip().startswith("Warning")]
